"""Which discount of a promotion covers an order line, and how much it takes off.

Coverage is a strategy per Discount.Type; the other rules (new or renewal, order period,
validity) are small checks run in turn. Each answers with the reason it refused.
"""

from dataclasses import dataclass
from decimal import Decimal

from billing.models import Tariff
from common.money import money_round
from common.periods import add_months
from promotions.engine.facts import ClientFacts
from promotions.engine.types import Kind, Line
from promotions.models import Discount


@dataclass(frozen=True)
class LineDiscount:
    amount: Decimal | None
    reason: str


COVERAGE = {
    Discount.Type.ALL: lambda discount, tariff_ids, line: True,
    Discount.Type.PRICELIST: lambda discount, tariff_ids, line: line.tariff_id in tariff_ids,
}

ACTION_KINDS = {
    Discount.ActionType.ORDER: {Kind.NEW},
    Discount.ActionType.PROLONG: {Kind.RENEWAL},
    Discount.ActionType.ALL: {Kind.NEW, Kind.RENEWAL},
}


def _refusal(discount: Discount, tariff_ids, line: Line, tariff: Tariff, facts) -> str | None:
    if not COVERAGE[discount.type](discount, tariff_ids, line):
        return f"discount {discount.pk} does not cover tariff {tariff.name}"
    if line.kind not in ACTION_KINDS[discount.actiontype]:
        return f"discount {discount.pk} is for {discount.get_actiontype_display()}"
    if line.kind == Kind.RENEWAL and tariff.charge == Tariff.Charge.DAILY:
        return f"tariff {tariff.name} is charged daily: renewals get no discount"
    if discount.period and line.period not in discount.period:
        months = ", ".join(str(p) for p in discount.period)
        return f"discount {discount.pk} is for periods of {months} months, not {line.period}"
    if discount.validity == Discount.Validity.MONTHS and line.kind == Kind.RENEWAL:
        service = facts.services_by_id.get(line.service_id) if line.service_id else None
        if service is None:
            return f"discount {discount.pk} lasts {discount.validitylength} months from the order: name the renewed service"
        if add_months(service.opened_at, discount.validitylength) < facts.at:
            return f"discount {discount.pk} ended {discount.validitylength} months after the order"
    return None


def line_discount(
    discount: Discount,
    tariff_ids: frozenset[int],
    line: Line,
    tariff: Tariff,
    minor_units: int,
    facts: ClientFacts,
) -> LineDiscount:
    refusal = _refusal(discount, tariff_ids, line, tariff, facts)
    if refusal:
        return LineDiscount(None, refusal)
    share = Decimal(1)
    if discount.validity == Discount.Validity.MONTHS and line.kind == Kind.NEW:
        # A discount valid for fewer months than the period ordered covers only those months.
        share = Decimal(min(line.period, discount.validitylength)) / Decimal(line.period)
    amount = money_round(line.price * discount.percentage / 100 * share, minor_units=minor_units)
    amount = min(amount, line.price)
    pct = format(discount.percentage.normalize(), "f")
    if share < 1:
        months = min(line.period, discount.validitylength)
        return LineDiscount(amount, f"{pct}% off for {months} of {line.period} months ({amount})")
    return LineDiscount(amount, f"{pct}% off ({amount})")
