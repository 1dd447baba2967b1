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
    """What a line's discounts depend on besides the client: its tariff, kind and period."""

    tariff_id: int
    tariff_name: str
    daily: bool
    kind: str
    period: int


@dataclass(frozen=True)
class CompiledDiscount:
    id: int
    promotion_id: int
    tariffs: frozenset[int] | None  # None: every tariff of the provider
    action: str
    periods: tuple[int, ...]  # empty: every period
    percentage: Decimal
    validity_months: int | None
    broken: str | None = None
    # Where a line keeps this discount's amount: discounts alike in percentage (and, on new
    # orders, validity) share one, so a line computes each amount once (see quote._LinePrices).
    slot_new: int = 0
    slot_renewal: int = 0

    @property
    def label(self) -> str:
        return format(self.percentage.normalize(), "f")

    def shape_refusal(self, shape: Shape) -> str | None:
        if self.broken:
            return f"discount {self.id} cannot be used: {self.broken}"
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
        """Orders a line's discounts as their amounts order them (the amount is monotone in it)."""
        return self.percentage * self.share(shape)

    def amount(self, price: Decimal, shape: Shape, minor_units: int) -> Decimal:
        share = self.share(shape)
        amount = money_round(price * self.percentage / 100 * share, minor_units=minor_units)
        return min(amount, price)

    def applied(self, amount: Decimal, shape: Shape) -> str:
        if self.validity_months is not None and shape.kind == Kind.NEW:
            months = min(shape.period, self.validity_months)
            if months < shape.period:
                return f"{self.label}% off for {months} of {shape.period} months ({amount})"
        return f"{self.label}% off ({amount})"
