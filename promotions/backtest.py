"""A backtest: what one promotion would have given over a past window, before it goes live.

Each charge of the provider's services in the window is replayed as the order it paid for (a
service's first charge as a new order, later ones as renewals), at the moment just before it was
charged, with the client's facts as of that moment, through the engine's own quote
(`quote_evaluate`) twice: against the promotion alone (does it qualify, and if not, why) and
against the promotions live that day plus this one (would it have won, and against whom).

The rule set of a past day is compiled for the backtest alone (`compile_rules(..., also=...)`),
never through the live rules' caches, from the rules as they are now (the database keeps no past
versions of them). A promotion with codes is tested as if each order had entered one of them
(the others live then still need theirs: past orders named none); code limits are not replayed.

A new order is replayed just before its service opened (the service it orders is not yet the
client's), a renewal just before its charge (the charge itself is not yet spent). Orders are read in chunks in (charged at, id) order (keyset), with one query
per kind of fact per chunk, so memory stays flat however long the window.
"""

import datetime
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from billing.models import Currency, Expense, Provider, Tariff
from common.money import money_round
from promotions.engine import Kind, Line, Order
from promotions.engine.budgets import budget_period_key
from promotions.engine.facts import Fact, FactsAsked, load_facts_many
from promotions.engine.quote import quote_evaluate
from promotions.engine.rules import RuleSet, compile_rules, rules_version
from promotions.engine.types import BudgetView, LineQuote
from promotions.models import Promotion

BACKTEST = "promotion.backtest"  # its job's kind
CHUNK = 2000
# Orders begin no earlier (it keeps every moment a window names far from the calendar's edges).
EARLIEST = datetime.date(1970, 1, 1)
# A past order is replayed this long before its charge (or its service's opening, a new order).
BEFORE = datetime.timedelta(microseconds=1)
TOP = 10


def backtest_max_days() -> int:
    """The longest window a backtest replays (setting BACKTEST_MAX_DAYS)."""
    return settings.BACKTEST_MAX_DAYS


def backtest_window_clean(*, start: datetime.date, end: datetime.date) -> None:
    """A window is whole past days, `start` to `end` included, at most BACKTEST_MAX_DAYS long."""
    if start < EARLIEST:
        raise ValidationError({"from": f"The window starts before {EARLIEST}."})
    if start > end:
        raise ValidationError({"to": "The window ends before it starts."})
    if start > timezone.localdate():
        raise ValidationError({"from": "The window starts in the future: there are no orders."})
    days = (end - start).days + 1
    if days > backtest_max_days():
        raise ValidationError(
            {"to": f"The window is {days} days long; at most {backtest_max_days()} are replayed."}
        )


def window_bounds(start: datetime.date, end: datetime.date) -> tuple:
    """The window's first moment and the moment after its last (local midnights)."""
    first = timezone.make_aware(datetime.datetime.combine(start, datetime.time.min))
    after = timezone.make_aware(
        datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time.min)
    )
    return first, after


def charges_in(*, provider_id: int, start: datetime.date, end: datetime.date):
    """The provider's charges for services in the window: the orders a backtest replays."""
    first, after = window_bounds(start, end)
    return Expense.objects.filter(
        client__provider_id=provider_id,
        service__isnull=False,
        refunds__isnull=True,
        amount__gt=0,
        created_at__gte=first,
        created_at__lt=after,
    )


@dataclass(frozen=True)
class Replayed:
    """One past order as the backtest replayed it."""

    expense_id: int
    charged_at: datetime.datetime
    order: Order
    currency_id: int
    qualified: bool  # the promotion alone discounts it
    discount_alone: Decimal
    reason: str  # why it does not qualify ("" when it does)
    winner: int | None  # the promotion that discounts it beside the live ones
    discount: Decimal  # what this promotion gives beside them (0 where another wins)
    displaced: int | None  # the promotion that would have won without this one, where it wins
    first: int | None = None  # the promotion applied first on the line (another where stacked)

    @property
    def line(self) -> Line:
        return self.order.lines[0]


class _Rules:
    """The backtest's rule sets: per day, the promotions live then plus the one tested, compiled
    once per distinct set of promotions (most days share one)."""

    def __init__(self, promotion: Promotion, budget: "BudgetReplay"):
        self.promotion = promotion
        self.provider_id = promotion.provider_id
        self.version = rules_version(self.provider_id)
        provider = Provider.objects.select_related("currency").get(pk=self.provider_id)
        self.currency, self.max_discount = provider.currency.iso, provider.max_discount
        self.budget = budget
        self._days: dict[datetime.date, RuleSet] = {}
        self._by_ids: dict[frozenset[int], RuleSet] = {}
        # Keyed by the day's set (kept in _by_ids for the whole run, so its id stays its own).
        self._alone: dict[int, RuleSet] = {}
        self._without: dict[int, RuleSet] = {}

    def day(self, day: datetime.date) -> RuleSet:
        found = self._days.get(day)
        if found is None:
            live = frozenset(
                Promotion.objects.live(day)
                .filter(provider_id=self.provider_id)
                .values_list("id", flat=True)
            ) | {self.promotion.pk}
            found = self._by_ids.get(live)
            if found is None:
                found = self._by_ids[live] = compile_rules(
                    self.provider_id, self.version, day, also=[self.promotion.pk]
                ).without_codes({self.promotion.pk})
            self._days[day] = found
        return found

    def alone(self, rules: RuleSet) -> RuleSet:
        found = self._alone.get(id(rules))
        if found is None:
            found = self._alone[id(rules)] = rules.restricted({self.promotion.pk})
        return found

    def without(self, rules: RuleSet) -> RuleSet:
        found = self._without.get(id(rules))
        if found is None:
            others = set(rules.promotions) - {self.promotion.pk}
            found = self._without[id(rules)] = rules.restricted(others)
        return found


def backtest_replay(
    *,
    promotion: Promotion,
    start: datetime.date,
    end: datetime.date,
    progress: Callable[[int], None] | None = None,
    budget: "BudgetReplay | None" = None,
) -> Iterator[Replayed]:
    """Every charge in the window replayed, in the order they were charged; `budget` keeps what
    the tested promotion spent of its budgets (and when they ran short)."""
    rules = _Rules(promotion, budget or BudgetReplay(promotion))
    tariffs = Tariff.objects.filter(provider_id=promotion.provider_id).in_bulk()
    currencies = Currency.objects.in_bulk()
    by_iso = {c.iso: c for c in currencies.values()}
    charges = charges_in(provider_id=promotion.provider_id, start=start, end=end).order_by(
        "created_at", "id"
    )
    columns = (
        "id",
        "created_at",
        "client_id",
        "client__registration_date",
        "service_id",
        "service__tariff_id",
        "service__period",
        "service__opened_at",
        "amount",
        "currency_id",
    )
    after: tuple[datetime.datetime, int] | None = None
    done = 0
    while True:
        page = charges
        if after is not None:
            page = page.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], id__gt=after[1]))
        chunk = list(page.values_list(*columns)[:CHUNK])
        if not chunk:
            return
        yield from _replay_chunk(chunk, rules, tariffs, currencies, by_iso)
        after = (chunk[-1][1], chunk[-1][0])
        done += len(chunk)
        if progress is not None:
            progress(done)


def _replay_chunk(chunk, rules: _Rules, tariffs, currencies, by_iso) -> Iterator[Replayed]:
    first_at, first_id = chunk[0][1], chunk[0][0]
    # Services charged before this chunk: their charges here are renewals.
    renewed = set(
        Expense.objects.filter(
            service_id__in={row[4] for row in chunk},
            refunds__isnull=True,
            amount__gt=0,
        )
        .filter(Q(created_at__lt=first_at) | Q(created_at=first_at, id__lt=first_id))
        .values_list("service_id", flat=True)
        .distinct()
    )
    day_rules = {}
    asked, new_orders = [], []
    for _, created_at, client_id, registered_at, service_id, *_, opened_at, _, _ in chunk:
        new = service_id not in renewed
        renewed.add(service_id)
        at = (min(created_at, opened_at) if new else created_at) - BEFORE
        day = timezone.localdate(at)
        if day not in day_rules:
            day_rules[day] = rules.day(day)
        asked.append(FactsAsked(client_id, registered_at, at))
        new_orders.append(new)
    sets = list({id(r): r for r in day_rules.values()}.values())
    needs = frozenset().union(*(r.needs for r in sets))
    if any(r.validity_discounts for r in sets):
        needs |= {Fact.SERVICES}
    windows = tuple(sorted({w for r in sets for w in r.windows}))
    facts = load_facts_many(asked=asked, needs=needs, windows=windows)
    pid = rules.promotion.pk
    for row, a, client_facts, new in zip(chunk, asked, facts, new_orders, strict=True):
        expense_id, created_at, client_id, _, service_id, tariff_id, period, _, amount, cur = row
        kind = Kind.NEW if new else Kind.RENEWAL
        if tariff_id not in tariffs:
            continue  # a service of another provider's tariff: not an order of this provider
        currency = currencies[cur]
        order = Order(
            client_id=client_id,
            provider_id=rules.provider_id,
            at=a.at,
            lines=(
                Line(
                    tariff_id=tariff_id,
                    period=period,
                    price=amount,
                    currency=currency.iso,
                    kind=kind,
                    service_id=service_id if kind == Kind.RENEWAL else None,
                ),
            ),
        )
        full = day_rules[timezone.localdate(a.at)]

        def quote(rule_set: RuleSet, *, explain: bool = False, order=order, facts=client_facts):
            return quote_evaluate(
                order=order,
                rules=rule_set,
                facts=facts,
                tariffs=tariffs,
                currencies=by_iso,
                currency=rules.currency,
                max_discount=rules.max_discount,
                explain=explain,
                budgets_left=rules.budget.left,
            ).lines[0]

        alone = quote(rules.alone(full), explain=True)
        if alone.promotion_id != pid:
            reason = next((v.reason for v in alone.verdicts if v.promotion_id == pid), "")
            yield Replayed(
                expense_id=expense_id,
                charged_at=created_at,
                order=order,
                currency_id=cur,
                qualified=False,
                discount_alone=Decimal(0),
                reason=reason,
                winner=None,
                discount=Decimal(0),
                displaced=None,
            )
            continue
        line = quote(full)
        given = _given(line, pid)
        # Where it applies first: who would have applied first without it.
        displaced = None
        if line.promotion_id == pid:
            displaced = quote(rules.without(full)).promotion_id
        rules.budget.spend(order, given)
        yield Replayed(
            expense_id=expense_id,
            charged_at=created_at,
            order=order,
            currency_id=cur,
            qualified=True,
            discount_alone=alone.discount,
            reason="",
            winner=pid if given is not None else line.promotion_id,
            discount=given or Decimal(0),
            displaced=displaced,
            first=line.promotion_id,
        )


def _given(line: LineQuote, pid: int) -> Decimal | None:
    """What the promotion gives on the line (first or stacked), None where it does not apply."""
    return next((a.discount for a in line.applied if a.promotion_id == pid), None)


class BudgetReplay:
    """The tested promotion's budgets as the replay spends them, order by order from the window's
    first day (what it gave before is not counted: a draft gave nothing). The live promotions'
    budgets are not replayed: the database keeps only what they have spent by now."""

    def __init__(self, promotion: Promotion):
        self.pid = promotion.pk
        self.budget, self.client_budget = promotion.budget, promotion.client_budget
        self.period = promotion.budget_period
        self.spent: Counter = Counter()
        self.client_spent: Counter = Counter()
        self.exhausted_on: datetime.date | None = None
        self.refused = 0

    @property
    def set(self) -> bool:
        return self.budget is not None or self.client_budget is not None

    def left(self, rules: RuleSet, order: Order, lines: list, minor_units: int) -> list:
        """quote_evaluate's budgets_left: what this order needs of the tested promotion's budgets
        and what the replay has left of them (the others' are not replayed)."""
        need = sum(
            (a.discount for lq in lines for a in lq.applied if a.promotion_id == self.pid),
            Decimal(0),
        )
        if not self.set or not need:
            return []
        period = budget_period_key(self.period, order.at)

        def left_of(limit, used) -> Decimal | None:
            if limit is None:
                return None
            return money_round(
                max(limit - used, Decimal(0)), minor_units=minor_units, rounding=ROUND_DOWN
            )

        view = BudgetView(
            self.pid,
            period,
            need,
            left_of(self.budget, self.spent[period]),
            left_of(self.client_budget, self.client_spent[order.client_id, period]),
        )
        if view.refusal():
            self.refused += 1
        if view.left is not None and need > view.left and self.exhausted_on is None:
            self.exhausted_on = timezone.localdate(order.at)
        return [view]

    def spend(self, order: Order, amount: Decimal | None) -> None:
        if not self.set or not amount:
            return
        period = budget_period_key(self.period, order.at)
        self.spent[period] += amount
        self.client_spent[order.client_id, period] += amount

    def as_dict(self) -> dict | None:
        if not self.set:
            return None
        return {
            "amount": None if self.budget is None else str(self.budget),
            "per_client": None if self.client_budget is None else str(self.client_budget),
            "period": self.period,
            "spent": {period: str(amount) for period, amount in sorted(self.spent.items())},
            "exhausted_on": self.exhausted_on.isoformat() if self.exhausted_on else None,
            "orders_refused": self.refused,
        }


# The results --------------------------------------------------------------------------------------

# A condition's outcome ends with what this client showed ("fails: registered 2024-05-01"): the
# reasons are counted without it, so alike refusals add up.
_DETAIL = re.compile(r"(holds|fails): [^;]*?(?= OR |; |$)")


# A budget's refusal names the amounts ("budget: 3.20 left, this order needs 8.00").
_BUDGET = re.compile(r"\b(client budget|budget): \S+ left, this order needs \S+")


def reason_kind(reason: str) -> str:
    reason = _BUDGET.sub(r"\1 too short", _DETAIL.sub(r"\1", reason))
    return reason or "no reason given"


def _money(amounts: dict[str, Decimal]) -> dict[str, str]:
    return {iso: str(amount) for iso, amount in sorted(amounts.items())}


@dataclass
class Tally:
    """The figures of a backtest, added up order by order."""

    promotion_id: int
    orders: int = 0
    new_orders: int = 0
    renewals: int = 0
    orders_qualified: int = 0
    clients: set[int] = field(default_factory=set)
    discount_total: Counter = field(default_factory=Counter)
    discount_alone_total: Counter = field(default_factory=Counter)
    per_month: dict[str, dict] = field(default_factory=dict)
    per_tariff: dict[int, dict] = field(default_factory=dict)
    won: int = 0
    lost: int = 0
    lost_to: Counter = field(default_factory=Counter)
    won_from: Counter = field(default_factory=Counter)
    combined_with: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)

    def add(self, r: Replayed) -> None:
        self.orders += 1
        line = r.line
        if line.kind == Kind.NEW:
            self.new_orders += 1
        else:
            self.renewals += 1
        if not r.qualified:
            self.reasons[reason_kind(r.reason)] += 1
            return
        self.orders_qualified += 1
        self.clients.add(r.order.client_id)
        self.discount_alone_total[line.currency] += r.discount_alone
        month = timezone.localtime(r.charged_at).strftime("%Y-%m")
        by_month = self.per_month.setdefault(
            month, {"orders_qualified": 0, "won": 0, "discount": Counter()}
        )
        by_tariff = self.per_tariff.setdefault(
            line.tariff_id, {"orders_qualified": 0, "won": 0, "discount": Counter()}
        )
        for bucket in (by_month, by_tariff):
            bucket["orders_qualified"] += 1
        if r.winner == self.promotion_id:
            self.won += 1
            self.discount_total[line.currency] += r.discount
            for bucket in (by_month, by_tariff):
                bucket["won"] += 1
                bucket["discount"][line.currency] += r.discount
            if r.displaced is not None:
                self.won_from[r.displaced] += 1
            if r.first not in (None, self.promotion_id):
                self.combined_with[r.first] += 1
        else:
            self.lost += 1
            self.lost_to[r.first] += 1

    def as_dict(self, *, names: dict[int, str], tariff_names: dict[int, str]) -> dict:
        def against(counts: Counter) -> list[dict]:
            return [
                {"promotion": pid, "name": names.get(pid, ""), "orders": n}
                for pid, n in counts.most_common(TOP)
            ]

        def bucket(values: dict) -> dict:
            return {**values, "discount": _money(values["discount"])}

        return {
            "promotion": self.promotion_id,
            "orders": self.orders,
            "new_orders": self.new_orders,
            "renewals": self.renewals,
            "orders_qualified": self.orders_qualified,
            "clients_qualified": len(self.clients),
            "discount_total": _money(self.discount_total),
            "discount_if_alone": _money(self.discount_alone_total),
            "won": self.won,
            "lost": self.lost,
            "won_against": against(self.won_from),
            "lost_to": against(self.lost_to),
            "combined_with": against(self.combined_with),
            "per_month": {m: bucket(v) for m, v in sorted(self.per_month.items())},
            "per_tariff": [
                {"tariff": tid, "name": tariff_names.get(tid, ""), **bucket(v)}
                for tid, v in sorted(
                    self.per_tariff.items(), key=lambda kv: (-kv[1]["orders_qualified"], kv[0])
                )
            ],
            "not_applied": [
                {"reason": reason, "orders": n} for reason, n in self.reasons.most_common(TOP)
            ],
        }
