"""Quote an order against the provider's compiled rules: which promotions discount each line, and
why others do not.

The ordering rule: a line's applicable promotions are taken by priority (higher first), then
discount (larger first), then promotion id. The first always applies; if it is exclusive nothing
else does; otherwise every following combinable promotion applies too, each on the price the ones
before it left, and the exclusive ones below are skipped. The line's discount never exceeds its
price nor the provider's `max_discount` percent of it. The default answer walks the line's
ranked discounts only until the first is certain (and, when it is combinable, the combinable
ones), and carries the first, the runner-up, the promotions ranked above the first that missed
(a failed condition or code: the near misses), the stacked ones and the promotions of the codes
the order names. With `explain`, every live promotion's verdict on every line is given.
"""

import datetime
import functools
import heapq
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from billing.models import Client, Currency, Provider, Tariff
from common.money import money_round
from common.rawsql import Columns
from promotions.engine.budgets import budget_period_key, budgets_left
from promotions.engine.codes import CodeRow, code_refusal
from promotions.engine.conditions import ConditionCheck, Outcome, safely
from promotions.engine.discounts import CompiledDiscount, Shape
from promotions.engine.facts import ClientFacts, Fact, load_facts
from promotions.engine.rules import CompiledPromotion, Ranked, RuleSet, ShapeRules, rules_for
from promotions.engine.types import (
    Applied,
    BudgetView,
    CodeVerdict,
    CurrencyRow,
    Kind,
    Line,
    LineQuote,
    Order,
    Quote,
    TariffRow,
    Verdict,
)
from promotions.models import PromoCode, Promotion, RulesVersion

# Near misses reported per line in the default answer: those that would have given the most.
NEAR_MISSES = 10
NEEDS_A_CODE = Outcome(False, "needs one of its promo codes")


@dataclass(frozen=True)
class OrderContext:
    """What an order's quote reads besides its rules: its client (with the provider's currency
    and cap), tariffs, currencies and codes, and the provider's rules version."""

    client_id: int
    registered_at: datetime.datetime
    max_discount: Decimal
    currency: str
    rules_version: int
    tariffs: dict[int, TariffRow]
    currencies: dict[str, CurrencyRow]
    codes: dict[str, CodeRow]
    read_with: tuple = ()  # the values of the caller's expressions (order_context's read_with)


_CLIENT = Columns(Client, "id", "registration_date", "provider_id", alias="c")
_PROVIDER = Columns(Provider, "max_discount", alias="p")
_PROVIDER_CURRENCY = Columns(Currency, "iso", alias="pc")
_LINE_CURRENCY = Columns(Currency, "id", "name", "iso", "minor_units", alias="lc")
_TARIFF = Columns(Tariff, "id", "name", "provider_id", "charge", alias="t")
_CODE = Columns(PromoCode, *CodeRow.COLUMNS[:3], alias="k")
_CODE_PROVIDER = Columns(Promotion, "provider_id", alias="kp")
_CODE_STATE = Columns(PromoCode, *CodeRow.COLUMNS[4:], alias="k")
# A context row's parts: client, provider, its currency, rules version (None: one column), line
# currency, tariff, then code, code's provider, code's state; and where each part starts.
_PARTS = (_CLIENT, _PROVIDER, _PROVIDER_CURRENCY, None, _LINE_CURRENCY, _TARIFF)
_CODE_PARTS = (_CODE, _CODE_PROVIDER, _CODE_STATE)
_PROVIDER_AT, _PROVIDER_CURRENCY_AT, _VERSION_AT, _LINE_CURRENCY_AT, _TARIFF_AT, _CODE_AT = (
    itertools.accumulate(len(p.fields) if p else 1 for p in _PARTS)
)


@functools.lru_cache(maxsize=64)
def _context_sql(
    vendor: str, currencies: int, tariffs: int, codes: int, read_with: tuple[str, ...]
) -> str:
    """The context's statement for an order of this shape (built once per shape). Each LEFT JOIN
    adds the rows the order names, so the statement answers one row per (currency, tariff,
    code) found, or one row of NULLs where none is: at most one currency and one tariff are
    joined (an order of more is read by `_named`), so the rows are at most the codes'."""
    q = connection.ops.quote_name
    columns = ", ".join(
        f"(SELECT version FROM {q(RulesVersion._meta.db_table)} WHERE provider_id = p.id)"
        if part is None
        else part.sql()
        for part in (*_PARTS, *(_CODE_PARTS if codes else ()))
    )
    columns += "".join(f", {expression}" for expression in read_with)
    sql = (
        f"SELECT {columns} "
        f"FROM {_CLIENT.table} c JOIN {_PROVIDER.table} p ON p.id = c.provider_id "
        f"JOIN {_PROVIDER_CURRENCY.table} pc ON pc.id = p.currency_id "
        f"LEFT JOIN {_LINE_CURRENCY.table} lc ON lc.iso IN ({_params(currencies)}) "
        f"LEFT JOIN {_TARIFF.table} t ON t.id IN ({_params(tariffs)}) "
    )
    if codes:
        sql += (
            f"LEFT JOIN {_CODE.table} k ON k.code IN ({_params(codes)}) "
            f"LEFT JOIN {_CODE_PROVIDER.table} kp ON kp.id = k.promotion_id "
        )
    # The client by its key alone (its provider is compared by the caller): with the provider in
    # the WHERE too, PostgreSQL may scan the client table's provider index, filtering every
    # client of the provider (measured: 0.25 ms of 0.5 on 2,000 clients without statistics).
    return sql + "WHERE c.id = %s"


def _params(count: int) -> str:
    return ", ".join(["%s"] * count) or "NULL"  # IN (NULL) matches nothing


def _named(columns: Columns, column: str, values: list) -> list:
    """The rows of `columns`' table whose `column` is one of `values` (an order of several
    tariffs or currencies)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns.sql()} FROM {columns.table} {columns.alias} "
            f"WHERE {columns.alias}.{column} IN ({_params(len(values))})",
            values,
        )
        return [columns.record(row) for row in cursor.fetchall()]


def order_context(order: Order, *, read_with: Sequence[tuple[str, list]] = ()) -> OrderContext:
    """The order's context, or a ValidationError naming what is wrong: one hand-written
    statement for the client with its provider, the rules version, and the currencies, tariffs
    and codes the order names (see common.rawsql). `read_with`: scalar SQL expressions (with
    their parameters) the caller wants read in the same statement (the guessing brakes), their
    values in `read_with` of the answer; quote_order takes the answer as its `context`."""
    isos = sorted({line.currency for line in order.lines})
    tariff_ids = sorted({line.tariff_id for line in order.lines})
    texts = sorted(set(order.codes))
    joined_isos = isos if len(isos) == 1 else []
    joined_tariffs = tariff_ids if len(tariff_ids) == 1 else []
    sql = _context_sql(
        connection.vendor,
        len(joined_isos),
        len(joined_tariffs),
        len(texts),
        tuple(expression for expression, _ in read_with),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                *(p for _, params in read_with for p in params),
                *joined_isos,
                *joined_tariffs,
                *texts,
                order.client_id,
            ],
        )
        rows = cursor.fetchall()
    client = _CLIENT.convert(rows[0][:_PROVIDER_AT]) if rows else None
    if client is None or client[2] != order.provider_id:
        raise ValidationError(
            {"client": f"Client {order.client_id} is not a client of provider {order.provider_id}."}
        )
    if not order.lines:
        raise ValidationError({"lines": "An order has at least one line."})
    line_currency, tariff, code = _LINE_CURRENCY_AT, _TARIFF_AT, _CODE_AT
    tariffs: dict[int, TariffRow] = {}
    currencies: dict[str, CurrencyRow] = {}
    codes: dict[str, CodeRow] = {}
    for row in rows:
        if row[line_currency] is not None and row[line_currency + 2] not in currencies:
            found = _LINE_CURRENCY.record(row[line_currency:tariff])
            currencies[found.iso] = found
        if row[tariff] is not None and row[tariff] not in tariffs:
            tariffs[row[tariff]] = _TARIFF.record(row[tariff:code])
        if texts and row[code] is not None and row[code + 1] not in codes:
            parts, at = [], code
            for part in _CODE_PARTS:
                parts += part.convert(row[at : at + len(part.fields)])
                at += len(part.fields)
            codes[row[code + 1]] = CodeRow(*parts)
    if len(tariff_ids) > 1:
        tariffs = {t.pk: t for t in _named(_TARIFF, "id", tariff_ids)}
    if len(isos) > 1:
        currencies = {c.iso: c for c in _named(_LINE_CURRENCY, "iso", isos)}
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
    unknown = sorted(set(isos) - set(currencies))
    if unknown:
        raise ValidationError({"lines": f"Unknown currency {', '.join(unknown)}."})
    if len(isos) > 1:
        raise ValidationError({"lines": "An order is in one currency."})
    client_id, registered_at, _ = client
    (max_discount,) = _PROVIDER.convert(rows[0][_PROVIDER_AT:_PROVIDER_CURRENCY_AT])
    (currency,) = _PROVIDER_CURRENCY.convert(rows[0][_PROVIDER_CURRENCY_AT:_VERSION_AT])
    return OrderContext(
        client_id=client_id,
        registered_at=registered_at,
        max_discount=max_discount,
        currency=currency,
        rules_version=rows[0][_VERSION_AT] or 0,
        tariffs=tariffs,
        currencies=currencies,
        codes=codes,
        read_with=tuple(rows[0][len(rows[0]) - len(read_with) :]),
    )


class _Evaluation:
    """One quote's evaluation: what is decided once per promotion (codes, conditions) is
    remembered across the order's lines."""

    def __init__(
        self,
        rules: RuleSet,
        order: Order,
        facts: ClientFacts,
        codes: dict,
        *,
        currency: str,
        max_discount: Decimal,
    ):
        self.rules, self.order, self.facts = rules, order, facts
        self.currency, self.max_discount = currency, max_discount
        # Promotions that do not apply to this order whatever the line (a budget too short).
        self.excluded: dict[int, str] = {}
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
        if pid in self.excluded:
            found = self._eligible[pid] = (Outcome(False, self.excluded[pid]), None)
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

    def exclude(self, pid: int, reason: str) -> None:
        """The promotion does not apply to this order (its budget is short): quote the lines again."""
        self.excluded[pid] = reason
        self._eligible.pop(pid, None)
        self._every = None

    def line(self, line: Line, tariff: TariffRow, minor_units: int, explain: bool) -> LineQuote:
        foreign = None if line.currency == self.currency else line.currency
        shape = Shape(
            tariff.pk,
            tariff.name,
            tariff.charge == Tariff.Charge.DAILY,
            line.kind,
            line.period,
            foreign,
        )
        priced = _LinePrices(line.price, shape, minor_units, self.rules.price_slots)
        rules = self.rules.shape(shape)
        first, best, runner, near, stacked = self._walk(line, rules, priced)
        applied, left_out = self._stack(first, stacked, line, shape, minor_units)
        if explain:
            outcomes = self.every_outcome()
        else:
            shown = {p for p in (first, runner, *near, *self.coded, *stacked) if p is not None}
            outcomes = [(pid, self.eligible(pid)[0]) for pid in sorted(shown)]
        verdicts = []
        # Each losing verdict is this line's words around its own amount: made once per line
        # (an explained quote of a large catalogue makes thousands).
        if first is None:
            losing = "not applied: "
        elif not self.rules.promotions[first].combinable:
            losing = (
                f"not applied: promotion {first} is exclusive and goes first "
                f"(it gives {best}, this one "
            )
        else:
            losing = (
                f"not applied: below promotion {first} in priority "
                "(this one is exclusive and would give "
            )
        closing = "" if first is None else ")"
        cap_note = (
            f"; capped at the provider's maximum of {_percent(self.max_discount)}% of the price"
        )
        offers = rules.offers
        for pid, outcome in outcomes:
            if not outcome.holds:
                verdicts.append(Verdict(pid, False, outcome.reason))
                continue
            if pid in applied:
                discount, amount, capped = applied[pid]
                text = discount.applied(amount, shape) + (cap_note if capped else "")
                if pid == first:
                    verdicts.append(Verdict(pid, True, f"applied: {text}"))
                else:
                    verdicts.append(Verdict(pid, True, f"{_combined(applied, pid)}: {text}"))
                continue
            if pid in left_out:
                verdicts.append(Verdict(pid, False, left_out[pid]))
                continue
            top, _, refusal, per_line = offers[pid]
            if per_line:
                _, top, refusal = self._offer(pid, line, rules, priced)
            if top is None:
                verdicts.append(Verdict(pid, False, refusal))
                continue
            # The promotion's best amount is its best-ranked discount's (amounts follow ranks).
            amount, text = priced.priced(top)
            if amount <= 0:
                verdicts.append(Verdict(pid, False, "its discount comes to nothing on this line"))
            else:
                verdicts.append(Verdict(pid, False, losing + text + closing))
        parts = tuple(
            Applied(pid, self.eligible(pid)[1], amount) for pid, (_, amount, _) in applied.items()
        )
        return LineQuote(
            line=line,
            discount=sum((a.discount for a in parts), Decimal(0) * line.price),
            # The first that gave something (a cap of 0% leaves nothing applied).
            promotion_id=parts[0].promotion_id if parts else None,
            code=parts[0].code if parts else None,
            verdicts=verdicts,
            applied=parts,
        )

    def _usable(self, discount: CompiledDiscount, line: Line) -> bool:
        return not discount.needs_service(line.kind) or not discount.service_refusal(
            line, self.facts
        )

    def _entries(self, ranked: Ranked, priced: "_LinePrices") -> Iterator[tuple]:
        """(minus priority, promotion id, discount) for the line's discounts in the order they
        apply: priority, then amount, then promotion id. Percentage discounts come ranked from
        the rule set; fixed amounts and prices are placed by their amounts on this line."""
        percent = self.rules.ranked(ranked, self.coded)
        fixed = self.rules.fixed(ranked, self.coded)
        if not fixed:
            for neg_priority, _, pid, discount in percent:
                yield neg_priority, pid, discount
            return
        placed = sorted(((p, -priced.amount(d), pid, d.id), pid, d) for p, pid, d in fixed)
        keyed = (((e[0], -priced.amount(e[3]), e[2], e[3].id), e[2], e[3]) for e in percent)
        for key, pid, discount in heapq.merge(keyed, placed, key=lambda k: k[0]):
            yield key[0], pid, discount

    def _walk(self, line: Line, rules: ShapeRules, priced: "_LinePrices"):
        """The promotion that applies first and its amount, the runner-up, the near misses ranked
        above it, and (when the first is combinable) the combinable promotions that stack on it.

        The line's discounts are taken in order (priority, amount, id), so the walk for the first
        stops once it is certain; the stacking walk reads only the combinable promotions."""
        first, first_priority, best, tied, runner = None, None, None, [], None
        chosen: dict[int, CompiledDiscount] = {}
        near: dict[int, None] = {}  # ranked above the first, missing a condition or a code
        unserved: dict[int, None] = {}  # ranked above the first, missing the renewed service
        looked = 0  # entries below the first looked at for a runner-up
        if line.price <= 0:
            return None, None, None, near, {}
        for neg_priority, pid, discount in self._entries(rules.ranked, priced):
            if pid in chosen or pid in near:
                continue  # its best discount came first
            if first is not None:
                # Past the first only a tie (same priority and amount, a lower id) can change
                # it; a runner-up is looked for among the next few, not through the catalogue.
                amount = priced.amount(discount)
                same = neg_priority == first_priority and amount == best
                if not same:
                    if looked >= NEAR_MISSES:
                        break
                    looked += 1
                if amount > 0 and self.eligible(pid)[0].holds and self._usable(discount, line):
                    chosen[pid] = discount
                    if same:
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
                continue  # a lower priority may still give something
            chosen[pid] = discount
            first, first_priority, best = pid, neg_priority, amount
        if tied:
            everyone = sorted({first, *tied})
            first, runner = everyone[0], everyone[1]
        for pid in unserved:
            if pid not in chosen and len(near) < NEAR_MISSES:
                near[pid] = None
        stacked: dict[int, CompiledDiscount] = {}
        if first is not None:
            stacked[first] = chosen[first]
            if self.rules.promotions[first].combinable:
                stacked.update(self._stacking(line, rules, priced, first))
        return first, best, runner, near, stacked

    def _stacking(self, line: Line, rules: ShapeRules, priced: "_LinePrices", first: int):
        """Every combinable promotion that applies after the first, in order (priority, amount,
        id): each one's best discount on the line's price."""
        found, done = [], {first}
        for neg_priority, pid, discount in self._entries(rules.stacking, priced):
            if pid in done:
                continue
            amount = priced.amount(discount)
            if amount <= 0 or not self.eligible(pid)[0].holds:
                done.add(pid)  # its best discount comes to nothing, or it does not apply
                continue
            if not self._usable(discount, line):
                continue  # its next discount may serve
            done.add(pid)
            found.append(((neg_priority, -amount, pid), discount))
        found.sort(key=lambda f: f[0])  # equal amounts of unequal ranks: by id
        return {key[2]: discount for key, discount in found}

    def _stack(
        self,
        first: int | None,
        stacked: dict[int, CompiledDiscount],
        line: Line,
        shape: Shape,
        minor_units: int,
    ) -> tuple[dict[int, tuple[CompiledDiscount, Decimal, bool]], dict[int, str]]:
        """Each stacked promotion's amount on the price the ones before it left, within the
        provider's cap; and why a stacked promotion was left with nothing."""
        applied, left_out = {}, {}
        if first is None:
            return applied, left_out
        remaining = line.price
        cap_left = money_round(line.price * self.max_discount / 100, minor_units=minor_units)
        for pid, discount in stacked.items():
            amount = discount.amount(remaining, shape, minor_units)
            capped = amount > cap_left
            amount = min(amount, cap_left)
            if amount <= 0:
                left_out[pid] = (
                    f"not applied: the line's discount is capped at {_percent(self.max_discount)}% "
                    "of its price"
                    if capped
                    else "not applied: nothing is left of the price to take off"
                )
                continue
            applied[pid] = (discount, amount, capped)
            remaining -= amount
            cap_left -= amount
        return applied, left_out

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


def _percent(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _combined(applied: dict, pid: int) -> str:
    """ "combined with promotion 3" (or "promotions 3, 5"): the promotions stacked before it."""
    before = []
    for other in applied:
        if other == pid:
            break
        before.append(str(other))
    return f"combined with promotion{'s' if len(before) > 1 else ''} {', '.join(before)}"


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


def quote_order(
    *,
    order: Order,
    explain: bool = False,
    rules: RuleSet | None = None,
    budget_refusals: dict[int, str] | None = None,
    context: OrderContext | None = None,
) -> Quote:
    """Read-only: decides every line's discount against the provider's rules for the order's day.

    `explain` gives every live promotion's verdict on every line; otherwise the first's, the
    runner-up's, the near misses', the stacked ones' and those of the promotions of the codes
    named. A budgeted promotion applies only when what is left of its budget covers all it
    gives the order (no partial discounts); `budget_refusals` names promotions a redemption
    found short under its lock, which do not apply whatever the quote reads.
    """
    context = context or order_context(order)
    rules = rules or rules_for(
        order.provider_id, timezone.localdate(order.at), version=context.rules_version
    )
    codes = context.codes
    needs = rules.needs
    if rules.validity_discounts and any(ln.service_id for ln in order.lines):
        needs = needs | {Fact.SERVICES}
    facts = load_facts(
        client_id=context.client_id,
        registered_at=context.registered_at,
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
        tariffs=context.tariffs,
        currencies=context.currencies,
        currency=context.currency,
        max_discount=context.max_discount,
        codes=codes,
        explain=explain,
        budget_refusals=budget_refusals,
    )


# What the budgeted promotions applied to an order need and have left: (rules, order, its lines,
# minor units) -> one view per budgeted promotion applied.
BudgetsLeft = Callable[[RuleSet, Order, list[LineQuote], int], list[BudgetView]]


def quote_evaluate(
    *,
    order: Order,
    rules: RuleSet,
    facts: ClientFacts,
    tariffs: dict[int, TariffRow],
    currencies: dict[str, CurrencyRow],
    currency: str,
    max_discount: Decimal,
    codes: dict[str, CodeRow] | None = None,
    explain: bool = False,
    budget_refusals: dict[int, str] | None = None,
    budgets_left: "BudgetsLeft | None" = None,
) -> Quote:
    """The quote of an order whose client, tariffs, currencies, codes and facts are already read
    (`currency` and `max_discount` are its provider's): `quote_order` reads them for one order;
    a backtest reads them for many orders at once and replays each through here, so both decide
    alike. Budgets are read by `budgets_left` (by default what the database holds; a backtest
    keeps its own)."""
    order = replace(
        order,
        lines=tuple(
            replace(
                ln, price=money_round(ln.price, minor_units=currencies[ln.currency].minor_units)
            )
            for ln in order.lines
        ),
    )
    evaluation = _Evaluation(
        rules, order, facts, codes or {}, currency=currency, max_discount=max_discount
    )
    for pid, reason in (budget_refusals or {}).items():
        evaluation.exclude(pid, reason)
    minor_units = currencies[order.lines[0].currency].minor_units
    while True:
        lines = [
            evaluation.line(line, tariffs[line.tariff_id], minor_units, explain)
            for line in order.lines
        ]
        budgets = (budgets_left or _budgets)(rules, order, lines, minor_units)
        short = [(b.promotion_id, b.refusal()) for b in budgets if b.refusal()]
        if not short:
            break
        for pid, reason in short:  # each round leaves one more promotion out: it ends
            evaluation.exclude(pid, reason)
    return Quote(
        order=order,
        lines=lines,
        codes=evaluation.codes,
        rules_version=rules.version,
        explained=explain,
        budgets=budgets,
    )


def _budgets(
    rules: RuleSet, order: Order, lines: list[LineQuote], minor_units: int
) -> list[BudgetView]:
    """What the budgeted promotions applied to the order need, and what they have left."""
    needs: dict[int, Decimal] = {}
    for lq in lines:
        for part in lq.applied:
            if rules.promotions[part.promotion_id].budgeted:
                needs[part.promotion_id] = needs.get(part.promotion_id, Decimal(0)) + part.discount
    if not needs:
        return []
    return budgets_left(
        client_id=order.client_id,
        needs={
            pid: (
                budget_period_key(rules.promotions[pid].budget_period, order.at),
                need,
                rules.promotions[pid].budget,
                rules.promotions[pid].client_budget,
            )
            for pid, need in needs.items()
        },
        minor_units=minor_units,
    )
