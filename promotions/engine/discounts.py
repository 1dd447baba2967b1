"""Which discount of a promotion covers an order line, and how much it takes off.

A compiled discount is plain values. What depends only on the line's tariff, kind and period (its
"shape") is decided once per rule set and shape (`shape_refusal`); what depends on the client's
renewed service is decided per quote (`service_refusal`). Each refusal is the reason shown.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from common.money import money_round
from common.periods import add_months
from promotions.engine.facts import ClientFacts
from promotions.engine.types import Kind, Line

ACTION_KINDS = {
    "order": frozenset({Kind.NEW}),
    "prolong": frozenset({Kind.RENEWAL}),
    "all": frozenset({Kind.NEW, Kind.RENEWAL}),
}
ACTION_LABELS = {"order": "new orders", "prolong": "renewals", "all": "new orders and renewals"}


class Shape(NamedTuple):
    """What a line's discounts depend on besides the client: its tariff, kind, period, and the
    currency when it is not the provider's (fixed amounts are in the provider's currency)."""

    tariff_id: int
    tariff_name: str
    daily: bool
    kind: str
    period: int
    foreign_currency: str | None = None


class ValueType:
    PERCENT = "percent"
    AMOUNT = "amount"
    PRICE = "price"


def _percent_off(value: Decimal, price: Decimal) -> Decimal:
    return price * value / 100


def _amount_off(value: Decimal, price: Decimal) -> Decimal:
    return min(value, price)


def _price_set(value: Decimal, price: Decimal) -> Decimal:
    return max(price - value, Decimal(0))


# What each value type takes off a price, before its share and rounding: one function per type.
VALUE_TYPES = {
    ValueType.PERCENT: _percent_off,
    ValueType.AMOUNT: _amount_off,
    ValueType.PRICE: _price_set,
}


@dataclass(frozen=True)
class CompiledDiscount:
    id: int
    promotion_id: int
    tariffs: frozenset[int] | None  # None: every tariff of the provider
    action: str
    periods: tuple[int, ...]  # empty: every period
    percentage: Decimal  # the value: a percentage, an amount off or a final price
    validity_months: int | None
    broken: str | None = None
    valuetype: str = ValueType.PERCENT
    # Where a line keeps this discount's amount: discounts alike in percentage (and, on new
    # orders, validity) share one, so a line computes each amount once (see quote._LinePrices).
    slot_new: int = 0
    slot_renewal: int = 0

    @property
    def label(self) -> str:
        return format(self.percentage.normalize(), "f")

    @property
    def fixed(self) -> bool:
        """An amount or a price: its amount on a line is not ordered by a percentage."""
        return self.valuetype != ValueType.PERCENT

    def shape_refusal(self, shape: Shape) -> str | None:
        if self.broken:
            return f"discount {self.id} cannot be used: {self.broken}"
        if self.fixed and shape.foreign_currency:
            return (
                f"discount {self.id} is in the provider's currency, "
                f"the line is in {shape.foreign_currency}"
            )
        if self.tariffs is not None and shape.tariff_id not in self.tariffs:
            return f"discount {self.id} does not cover tariff {shape.tariff_name}"
        if shape.kind not in ACTION_KINDS[self.action]:
            return f"discount {self.id} is for {ACTION_LABELS[self.action]}"
        if shape.kind == Kind.RENEWAL and shape.daily:
            return f"tariff {shape.tariff_name} is charged daily: renewals get no discount"
        if self.periods and shape.period not in self.periods:
            months = ", ".join(str(p) for p in self.periods)
            return f"discount {self.id} is for periods of {months} months, not {shape.period}"
        return None

    def needs_service(self, kind: str) -> bool:
        """A renewal of a discount valid N months from the order depends on the renewed service."""
        return self.validity_months is not None and kind == Kind.RENEWAL

    def service_refusal(self, line: Line, facts: ClientFacts) -> str | None:
        service = facts.services_by_id.get(line.service_id) if line.service_id else None
        if service is None:
            return f"discount {self.id} lasts {self.validity_months} months from the order: name the renewed service"
        if add_months(service.opened_at, self.validity_months) < facts.at:
            return f"discount {self.id} ended {self.validity_months} months after the order"
        return None

    def share(self, shape: Shape) -> Decimal:
        """A discount valid for fewer months than a new order's period covers only those months."""
        if self.validity_months is not None and shape.kind == Kind.NEW:
            return Decimal(min(shape.period, self.validity_months)) / Decimal(shape.period)
        return Decimal(1)

    def rank(self, shape: Shape) -> Decimal:
        """Orders a line's percentage discounts as their amounts order them (the amount is
        monotone in it); fixed amounts and prices are ordered per line, by their amounts."""
        return self.percentage * self.share(shape)

    def amount(self, price: Decimal, shape: Shape, minor_units: int) -> Decimal:
        """What the discount takes off `price` (the line's, or what earlier combinable
        promotions left of it), never more than the price."""
        off = VALUE_TYPES[self.valuetype](self.percentage, price) * self.share(shape)
        return min(max(money_round(off, minor_units=minor_units), Decimal(0)), price)

    def applied(self, amount: Decimal, shape: Shape) -> str:
        what = {
            ValueType.PERCENT: f"{self.label}% off",
            ValueType.AMOUNT: f"{self.label} off",
            ValueType.PRICE: f"price {self.label}",
        }[self.valuetype]
        if self.validity_months is not None and shape.kind == Kind.NEW:
            months = min(shape.period, self.validity_months)
            if months < shape.period:
                return f"{what} for {months} of {shape.period} months ({amount})"
        return f"{what} ({amount})"
