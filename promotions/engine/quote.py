"""Quote an order against the provider's compiled rules: which promotion discounts each line, and
why others do not.

A line's discount is the largest any applicable promotion gives (ties go to the lower promotion
id). The default answer walks the line's ranked discounts only until the winner is certain, and
carries the winner, the runner-up, the promotions ranked above the winner that missed (a failed
condition or code: the near misses) and the promotions of the codes the order names. With
`explain`, every live promotion's verdict on every line is given.
"""

from dataclasses import replace
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils import timezone

from billing.models import Client, Currency, Tariff
from common.money import money_round
from promotions.engine.codes import CodeRow, code_refusal
from promotions.engine.conditions import ConditionCheck, Outcome, safely
from promotions.engine.discounts import CompiledDiscount, Shape
from promotions.engine.facts import ClientFacts, Fact, load_facts
from promotions.engine.rules import CompiledPromotion, RuleSet, ShapeRules, rules_for
from promotions.engine.types import CodeVerdict, Kind, Line, LineQuote, Order, Quote, Verdict
from promotions.models import PromoCode

# Near misses reported per line in the default answer: those that would have given the most.
NEAR_MISSES = 10
NEEDS_A_CODE = Outcome(False, "needs one of its promo codes")


def _resolve(order: Order) -> tuple[Client, dict[int, Tariff], dict[str, Currency]]:
    """The order's client, tariffs and currencies, or a ValidationError naming what is wrong."""
    client = (
        Client.objects.filter(pk=order.client_id, provider_id=order.provider_id)
        .only("id", "registration_date")
        .first()
    )
    if client is None:
        raise ValidationError(
            {"client": f"Client {order.client_id} is not a client of provider {order.provider_id}."}
        )
    if not order.lines:
        raise ValidationError({"lines": "An order has at least one line."})
    tariffs = Tariff.objects.only("id", "name", "provider_id", "charge").in_bulk(
        {line.tariff_id for line in order.lines}
    )
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
    return client, tariffs, currencies


class _Evaluation:
    """One quote's evaluation: what is decided once per promotion (codes, conditions) is
    remembered across the order's lines."""

    def __init__(self, rules: RuleSet, order: Order, facts: ClientFacts, codes: dict):
        self.rules, self.order, self.facts = rules, order, facts
        self.codes = self._check_codes(codes)
        self.by_promotion: dict[int, list[CodeVerdict]] = {}
        for verdict in self.codes:
            if verdict.promotion_id in rules.promotions:
                self.by_promotion.setdefault(verdict.promotion_id, []).append(verdict)
        # The promotions of the codes named, in id order: their verdicts are always reported.
        self.coded = sorted(self.by_promotion)
        self._eligible: dict[int, tuple[Outcome, str | None]] = {}
        self._conditions: dict[tuple, Outcome] = {}
        self._every: list[tuple[int, Outcome]] | None = None
        self._terms: dict[tuple, Outcome] = {}

    def _check_codes(self, codes: dict[str, CodeRow]) -> list[CodeVerdict]:
        verdicts = []
        for text in self.order.codes:
            code = codes.get(text)
            if code is None or code.provider_id != self.order.provider_id:
                verdicts.append(CodeVerdict(text, False, f"there is no promo code {text}"))
                continue
            pid = code.promotion_id
            if pid not in self.rules.promotions:
                reason = f"code {text} belongs to promotion {pid}, which is not active now"
            else:
                try:
                    reason = code_refusal(code, self.facts)
                except Exception:  # a code stored around the services refuses itself
                    reason = f"code {text} cannot be used: its settings are broken"
            verdicts.append(
                CodeVerdict(
                    text, reason is None, reason or f"code {text} is valid", pid, code.id, code
                )
            )
        return verdicts

    def _condition(self, check: ConditionCheck) -> Outcome:
        found = self._conditions.get(check.signature)
        if found is None:
            found = self._conditions[check.signature] = safely(check, self.facts, self.order)
        return found

    def eligible(self, pid: int) -> tuple[Outcome, str | None]:
        """Whether the promotion may apply to this order at all, and the code it applies with."""
        found = self._eligible.get(pid)
        if found is not None:
            return found
        promotion = self.rules.promotions[pid]
        code = None
        outcome = None
        if promotion.needs_code:
            mine = self.by_promotion.get(pid, ())
            valid = [v for v in mine if v.valid]
            if valid:
                code = valid[0].code
            else:
                outcome = Outcome(False, mine[0].reason) if mine else NEEDS_A_CODE
        if outcome is None:
            outcome = self._conditions_of(promotion)
        found = self._eligible[pid] = (outcome, code)
        return found

    def _conditions_of(self, promotion: CompiledPromotion) -> Outcome:
        key = self.rules.conditions_keys[promotion.id]
        found = self._terms.get(key)
        if found is None:
            failing = promotion.conditions.first_failing(lambda c: self._condition(c).holds)
            found = self._terms[key] = (
                Outcome(True, "conditions met")
                if failing is None
                else Outcome(
                    False,
                    "condition not met: " + " OR ".join(self._condition(c).reason for c in failing),
                )
            )
        return found

    def every_outcome(self) -> list[tuple[int, Outcome]]:
        """Every live promotion's outcome, in id order (an explained quote reads them per line)."""
        if self._every is None:
            self._every = [(pid, self.eligible(pid)[0]) for pid in self.rules.order]
        return self._every

    def line(self, line: Line, tariff: Tariff, minor_units: int, explain: bool) -> LineQuote:
        shape = Shape(
            tariff.pk, tariff.name, tariff.charge == Tariff.Charge.DAILY, line.kind, line.period
        )
        priced = _LinePrices(line.price, shape, minor_units, self.rules.price_slots)
        rules = self.rules.shape(shape)
        winner, best, runner, near = self._walk(line, shape, rules, priced)
        if explain:
            outcomes = self.every_outcome()
        else:
            shown = {p for p in (winner, runner, *near, *self.coded) if p is not None}
            outcomes = [(pid, self.eligible(pid)[0]) for pid in sorted(shown)]
        verdicts = []
        losing = f"not chosen: promotion {winner} gives {best}, this one " if winner else ""
        offers = rules.offers
        for pid, outcome in outcomes:
            if not outcome.holds:
                verdicts.append(Verdict(pid, False, outcome.reason))
                continue
            if pid == winner:
                _, discount, _ = self._offer(pid, line, rules, priced)
                verdicts.append(Verdict(pid, True, f"applied: {discount.applied(best, shape)}"))
                continue
            top, _, refusal, served = offers[pid]
            if served:
                _, top, refusal = self._offer(pid, line, rules, priced)
            if top is None:
                verdicts.append(Verdict(pid, False, refusal))
                continue
            # The promotion's best amount is its best-ranked discount's (amounts follow ranks).
            amount, text = priced.priced(top)
            if amount <= 0:
                verdicts.append(Verdict(pid, False, "its discount comes to nothing on this line"))
            else:
                verdicts.append(Verdict(pid, False, losing + text))
        return LineQuote(
            line=line,
            discount=best if winner else Decimal(0) * line.price,
            promotion_id=winner,
            code=self.eligible(winner)[1] if winner else None,
            verdicts=verdicts,
        )

    def _usable(self, discount: CompiledDiscount, line: Line) -> bool:
        return not discount.needs_service(line.kind) or not discount.service_refusal(
            line, self.facts
        )

    def _walk(self, line: Line, shape: Shape, rules: ShapeRules, priced: "_LinePrices"):
        """The winner and its amount, the runner-up, and the near misses ranked above the winner:
        the line's discounts are taken best first, so the walk stops once the winner is certain."""
        winner, best, tied, runner = None, None, [], None
        near: dict[int, None] = {}  # ranked above the winner, missing a condition or a code
        unserved: dict[int, None] = {}  # ranked above the winner, missing the renewed service
        offered: set[int] = set()
        looked = 0  # entries below the winner looked at for a runner-up
        for _, pid, discount in self.rules.ranked(rules, self.coded):
            if pid in offered or pid in near:
                continue  # its best discount came first
            if winner is not None:
                # Past the winner only a tie (a lower id at the same amount) can change it;
                # a runner-up is looked for among the next few, not through the catalogue.
                amount = priced.amount(discount)
                if amount < best:
                    if looked >= NEAR_MISSES or amount <= 0:
                        break
                    looked += 1
                if self.eligible(pid)[0].holds and self._usable(discount, line):
                    offered.add(pid)
                    if amount == best:
                        tied.append(pid)
                    else:
                        runner = pid
                        break
                continue
            if not self.eligible(pid)[0].holds:
                if len(near) < NEAR_MISSES:
                    near[pid] = None
                continue
            if not self._usable(discount, line):
                unserved[pid] = None
                continue
            amount = priced.amount(discount)
            if amount <= 0:
                break  # every discount ranked below comes to nothing too
            offered.add(pid)
            winner, best = pid, amount
        if tied:
            everyone = sorted({winner, *tied})
            winner, runner = everyone[0], everyone[1]
        for pid in unserved:
            if pid not in offered and len(near) < NEAR_MISSES:
                near[pid] = None
        return winner, best, runner, near

    def _offer(self, pid: int, line: Line, rules: ShapeRules, priced: "_LinePrices"):
        """The promotion's best discount on the line as (amount, discount, None), or
        (None, None, why none of its discounts applies)."""
        _, usable, refusal, served = rules.offers[pid]
        if served:  # a discount depends on the renewed service: decided for this line
            usable, reasons = [], []
            for discount, why in rules.refusals[pid]:
                if why is None and discount.needs_service(line.kind):
                    why = discount.service_refusal(line, self.facts)
                if why is None:
                    usable.append(discount)
                else:
                    reasons.append(why)
            refusal = "; ".join(reasons) or "the promotion has no discounts"
        if not usable:
            return None, None, refusal
        best, chosen = None, None
        for discount in usable:
            amount = priced.amount(discount)
            if best is None or amount > best:
                best, chosen = amount, discount
        return best, chosen, None


class _LinePrices:
    """A line's discount amounts (and their text), computed once per percentage and share."""

    def __init__(self, price: Decimal, shape: Shape, minor_units: int, slots: int):
        self.price, self.shape, self.minor_units = price, shape, minor_units
        self.renewal = shape.kind == Kind.RENEWAL
        self._priced: list[tuple[Decimal, str] | None] = [None] * slots

    def priced(self, discount: CompiledDiscount) -> tuple[Decimal, str]:
        slot = discount.slot_renewal if self.renewal else discount.slot_new
        found = self._priced[slot]
        if found is None:
            amount = discount.amount(self.price, self.shape, self.minor_units)
            found = self._priced[slot] = (amount, str(amount))
        return found

    def amount(self, discount: CompiledDiscount) -> Decimal:
        return self.priced(discount)[0]


def _codes(order: Order) -> dict[str, CodeRow]:
    if not order.codes:
        return {}
    rows = PromoCode.objects.filter(code__in=order.codes).values_list(*CodeRow.COLUMNS)
    return {row[1]: CodeRow(*row) for row in rows}


def quote_order(*, order: Order, explain: bool = False, rules: RuleSet | None = None) -> Quote:
    """Read-only: decides every line's discount against the provider's rules for the order's day.

    `explain` gives every live promotion's verdict on every line; otherwise the winner's, the
    runner-up's, the near misses' and those of the promotions of the codes named.
    """
    client, tariffs, currencies = _resolve(order)
    rules = rules or rules_for(order.provider_id, timezone.localdate(order.at))
    codes = _codes(order)
    needs = rules.needs
    if rules.validity_discounts and any(ln.service_id for ln in order.lines):
        needs = needs | {Fact.SERVICES}
    facts = load_facts(
        client_id=client.pk,
        registered_at=client.registration_date,
        at=order.at,
        needs=needs,
        windows=rules.windows,
        # A client's uses matter only to codes with a per-client limit or a discount period.
        code_ids=[
            c.id
            for c in codes.values()
            if c.provider_id == order.provider_id
            and (c.account_uselimit is not None or c.expiretype == "period")
        ],
    )
    return quote_evaluate(
        order=order,
        rules=rules,
        facts=facts,
        tariffs=tariffs,
        currencies=currencies,
        codes=codes,
        explain=explain,
    )


def quote_evaluate(
    *,
    order: Order,
    rules: RuleSet,
    facts: ClientFacts,
    tariffs: dict[int, Tariff],
    currencies: dict[str, Currency],
    codes: dict[str, CodeRow] | None = None,
    explain: bool = False,
) -> Quote:
    """The quote of an order whose client, tariffs, currencies, codes and facts are already
    read: no queries. `quote_order` reads them for one order; a backtest reads them for many
    orders at once and replays each through here, so both decide alike."""
    order = replace(
        order,
        lines=tuple(
            replace(
                ln, price=money_round(ln.price, minor_units=currencies[ln.currency].minor_units)
            )
            for ln in order.lines
        ),
    )
    evaluation = _Evaluation(rules, order, facts, codes or {})
    lines = [
        evaluation.line(
            line, tariffs[line.tariff_id], currencies[line.currency].minor_units, explain
        )
        for line in order.lines
    ]
    return Quote(
        order=order,
        lines=lines,
        codes=evaluation.codes,
        rules_version=rules.version,
        explained=explain,
    )
