"""Quote an order: which promotion discounts each line, and why every other one does not."""

from dataclasses import replace
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.utils import timezone

from billing.models import Client, Currency, Tariff
from common.money import money_round
from promotions.codegen import normalize_code
from promotions.engine.codes import code_refusal
from promotions.engine.conditions import Outcome, conditions_hold
from promotions.engine.discounts import line_discount
from promotions.engine.facts import ClientFacts, load_facts
from promotions.engine.types import CodeVerdict, LineQuote, Order, Quote, Verdict
from promotions.models import Condition, Discount, PromoCode, Promotion


def _live_promotions(order: Order) -> list[Promotion]:
    day = timezone.localdate(order.at)
    return list(
        Promotion.objects.filter(provider_id=order.provider_id, archived=False, fromdate__lte=day)
        .filter(Q(todate__isnull=True) | Q(todate__gte=day))
        .annotate(needs_code=Exists(PromoCode.objects.filter(promotion=OuterRef("pk"))))
        .prefetch_related(
            "discounts",
            Prefetch(
                "conditions",
                queryset=Condition.objects.select_related(
                    "pricelist", "currency", "account_group", "affiliate"
                ),
            ),
        )
        .order_by("id")
    )


def _resolve(order: Order) -> tuple[Client, dict[int, Tariff], dict[str, Currency]]:
    """The order's client, tariffs and currencies, or a ValidationError naming what is wrong."""
    client = (
        Client.objects.filter(pk=order.client_id, provider_id=order.provider_id)
        .select_related("provider")
        .first()
    )
    if client is None:
        raise ValidationError(
            {"client": f"Client {order.client_id} is not a client of provider {order.provider_id}."}
        )
    if not order.lines:
        raise ValidationError({"lines": "An order has at least one line."})
    tariffs = Tariff.objects.in_bulk({line.tariff_id for line in order.lines})
    foreign = sorted(
        str(line.tariff_id)
        for line in order.lines
        if line.tariff_id not in tariffs or tariffs[line.tariff_id].provider_id != order.provider_id
    )
    if foreign:
        raise ValidationError(
            {
                "lines": f"Tariff {', '.join(foreign)} is not a tariff of provider {order.provider_id}."
            }
        )
    currencies = Currency.objects.in_bulk({line.currency for line in order.lines}, field_name="iso")
    unknown = sorted({line.currency for line in order.lines} - set(currencies))
    if unknown:
        raise ValidationError({"lines": f"Unknown currency {', '.join(unknown)}."})
    if len({line.currency for line in order.lines}) > 1:
        raise ValidationError({"lines": "An order is in one currency."})
    if any(line.price < 0 for line in order.lines):
        raise ValidationError({"lines": "A price is zero or more."})
    if any(line.period < 1 for line in order.lines):
        raise ValidationError({"lines": "A period is one month or more."})
    return client, tariffs, currencies


def _check_codes(
    order: Order, promotions: dict[int, Promotion], codes: dict[str, PromoCode], facts: ClientFacts
) -> list[CodeVerdict]:
    verdicts = []
    for text in dict.fromkeys(normalize_code(c) for c in order.codes):
        code = codes.get(text)
        if code is None or code.promotion.provider_id != order.provider_id:
            verdicts.append(CodeVerdict(text, False, f"there is no promo code {text}"))
            continue
        pid = code.promotion_id
        if pid not in promotions:
            reason = f"code {text} belongs to promotion {pid}, which is not active now"
        else:
            reason = code_refusal(code, facts)
        verdicts.append(CodeVerdict(text, reason is None, reason or f"code {text} is valid", pid))
    return verdicts


def _promotion_outcome(
    promotion: Promotion, code_verdicts: list[CodeVerdict], facts: ClientFacts, order: Order
) -> tuple[Outcome, str | None]:
    """Whether the promotion may apply to this order at all, and the code it applies with."""
    code = None
    if promotion.needs_code:
        mine = [v for v in code_verdicts if v.promotion_id == promotion.pk]
        valid = [v for v in mine if v.valid]
        if not valid:
            reason = mine[0].reason if mine else "needs one of its promo codes"
            return Outcome(False, reason), None
        code = valid[0].code
    return conditions_hold(list(promotion.conditions.all()), facts, order), code


def _tariffs_of_discounts(promotions) -> dict[int, frozenset[int]]:
    ids = [d.pk for p in promotions for d in p.discounts.all() if d.type == Discount.Type.PRICELIST]
    pairs = Discount.pricelist.through.objects.filter(discount_id__in=ids).values_list(
        "discount_id", "tariff_id"
    )
    covered: dict[int, set[int]] = {}
    for discount_id, tariff_id in pairs:
        covered.setdefault(discount_id, set()).add(tariff_id)
    return {k: frozenset(v) for k, v in covered.items()}


def quote_order(*, order: Order) -> Quote:
    """Read-only: decides every line's discount; the largest wins, ties go to the lower id."""
    client, tariffs, currencies = _resolve(order)
    order = replace(
        order,
        lines=tuple(
            replace(
                ln, price=money_round(ln.price, minor_units=currencies[ln.currency].minor_units)
            )
            for ln in order.lines
        ),
    )
    promotions = {p.pk: p for p in _live_promotions(order)}
    wanted = {normalize_code(c) for c in order.codes}
    codes = {
        c.code: c for c in PromoCode.objects.filter(code__in=wanted).select_related("promotion")
    }
    conditions = [c for p in promotions.values() for c in p.conditions.all()]
    facts = load_facts(
        client=client, at=order.at, conditions=conditions, codes=list(codes.values())
    )
    code_verdicts = _check_codes(order, promotions, codes, facts)
    outcomes = {
        pid: _promotion_outcome(p, code_verdicts, facts, order) for pid, p in promotions.items()
    }

    # Materialised once: per-line loops must not touch related managers or build querysets.
    covered = _tariffs_of_discounts(promotions.values())
    discounts = {
        pid: [(d, covered.get(d.pk, frozenset())) for d in p.discounts.all()]
        for pid, p in promotions.items()
    }
    lines = []
    for line in order.lines:
        tariff = tariffs[line.tariff_id]
        minor_units = currencies[line.currency].minor_units
        offers: dict[int, tuple[Decimal, str]] = {}
        refusals: dict[int, str] = {}
        for pid in promotions:
            outcome, _ = outcomes[pid]
            if not outcome.holds:
                refusals[pid] = outcome.reason
                continue
            tried = [
                line_discount(d, tariff_ids, line, tariff, minor_units, facts)
                for d, tariff_ids in discounts[pid]
            ]
            priced = [t for t in tried if t.amount is not None]
            if not priced:
                refusals[pid] = (
                    "; ".join(t.reason for t in tried) or "the promotion has no discounts"
                )
            elif max(t.amount for t in priced) <= 0:
                refusals[pid] = "its discount comes to nothing on this line"
            else:
                best = max(priced, key=lambda t: t.amount)
                offers[pid] = (best.amount, best.reason)
        winner = min(offers, key=lambda pid: (-offers[pid][0], pid)) if offers else None
        verdicts = []
        for pid in promotions:
            if pid == winner:
                verdicts.append(Verdict(pid, True, f"applied: {offers[pid][1]}"))
            elif pid in offers:
                verdicts.append(
                    Verdict(
                        pid,
                        False,
                        f"not chosen: promotion {winner} gives {offers[winner][0]}, this one {offers[pid][0]}",
                    )
                )
            else:
                verdicts.append(Verdict(pid, False, refusals[pid]))
        lines.append(
            LineQuote(
                line=line,
                discount=offers[winner][0] if winner else Decimal(0) * line.price,
                promotion_id=winner,
                code=outcomes[winner][1] if winner else None,
                verdicts=verdicts,
            )
        )
    return Quote(order=order, lines=lines, codes=code_verdicts)
