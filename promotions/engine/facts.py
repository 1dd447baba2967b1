"""What the checks read about a client: loaded once per quote, in a fixed number of queries, and
only the kinds of facts the provider's conditions need.

Facts are as of the quote's moment: services opened, referrals joined and expenses charged by then
(groups and a service's status and payment are as they are now: nothing keeps their past).
`load_facts_many` reads the same facts for many (client, moment) pairs at once, for a backtest.
"""

import datetime
import enum
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import NamedTuple

from django.db.models import Count, Min, Q, Sum

from billing.models import Client, Expense, Service
from common.periods import shift
from promotions.models import PromoCodeUsage
from referrals.models import Referral


class Fact(enum.Enum):
    SERVICES = "services"
    GROUPS = "groups"
    REFERRALS = "referrals"
    EXPENSES = "expenses"
    REGISTRATION = "registration"


class Window(NamedTuple):
    """Expenses in one currency over the last `length` `periodtype`s."""

    currency_id: int
    periodtype: str
    length: int


@dataclass(frozen=True)
class ServiceFact:
    id: int
    tariff_id: int
    period: int
    status: str
    paid: bool
    opened_at: datetime.datetime

    @property
    def active(self) -> bool:
        return self.status == Service.Status.ACTIVE

    @property
    def closed(self) -> bool:
        return self.status == Service.Status.CLOSED


@dataclass(frozen=True)
class CodeUse:
    live_uses: int
    first_use: datetime.datetime | None


@dataclass
class ClientFacts:
    at: datetime.datetime
    registered_at: datetime.datetime
    group_ids: frozenset[int] = frozenset()
    services: tuple[ServiceFact, ...] = ()
    referral_program_ids: frozenset[int] = frozenset()
    expense_sums: dict[Window, Decimal] = field(default_factory=dict)
    code_uses: dict[int, CodeUse] = field(default_factory=dict)

    @cached_property
    def services_by_id(self) -> dict[int, ServiceFact]:
        return {s.id: s for s in self.services}


SERVICE_COLUMNS = ("id", "tariff_id", "period", "status", "paid", "opened_at")


def load_facts(
    *,
    client_id: int,
    registered_at: datetime.datetime,
    at: datetime.datetime,
    needs: frozenset[Fact],
    windows: tuple[Window, ...],
    code_ids: list[int],
) -> ClientFacts:
    facts = ClientFacts(at=at, registered_at=registered_at)
    if Fact.GROUPS in needs:
        facts.group_ids = frozenset(
            Client.groups.through.objects.filter(client_id=client_id).values_list(
                "clientgroup_id", flat=True
            )
        )
    if Fact.SERVICES in needs:
        facts.services = tuple(
            ServiceFact(*row)
            for row in Service.objects.filter(client_id=client_id, opened_at__lte=at).values_list(
                *SERVICE_COLUMNS
            )
        )
    if Fact.REFERRALS in needs:
        facts.referral_program_ids = frozenset(
            Referral.objects.filter(client_id=client_id, joined_at__lte=at).values_list(
                "program_id", flat=True
            )
        )
    if windows:
        sums = Expense.objects.filter(client_id=client_id, created_at__lte=at).aggregate(
            **{
                f"w{i}": Sum(
                    "amount",
                    filter=Q(
                        currency_id=w.currency_id,
                        created_at__gte=shift(at, periodtype=w.periodtype, length=-w.length),
                    ),
                )
                for i, w in enumerate(windows)
            }
        )
        facts.expense_sums = {w: sums[f"w{i}"] or Decimal(0) for i, w in enumerate(windows)}
    if code_ids:
        rows = (
            PromoCodeUsage.objects.filter(client_id=client_id, promocode_id__in=code_ids)
            .values("promocode_id")
            .annotate(
                live=Count("id", filter=Q(status=PromoCodeUsage.Status.ACTIVE)),
                first=Min("created_at", filter=Q(status=PromoCodeUsage.Status.ACTIVE)),
            )
        )
        facts.code_uses = {r["promocode_id"]: CodeUse(r["live"], r["first"]) for r in rows}
    return facts


class FactsAsked(NamedTuple):
    """One client's facts at one moment."""

    client_id: int
    registered_at: datetime.datetime
    at: datetime.datetime


def load_facts_many(
    *, asked: Sequence[FactsAsked], needs: frozenset[Fact], windows: tuple[Window, ...]
) -> list[ClientFacts]:
    """`load_facts` for each pair asked (codes aside), in one query per kind of fact however many
    pairs: each client's rows are read once and cut at each of its moments here. The pairs asked
    together should be close in time (a backtest's chunk): a client's expenses are read from the
    earliest window start to the latest moment."""
    if not asked:
        return []
    clients = sorted({a.client_id for a in asked})
    latest = max(a.at for a in asked)
    groups: dict[int, set[int]] = {}
    if Fact.GROUPS in needs:
        for client_id, group_id in Client.groups.through.objects.filter(
            client_id__in=clients
        ).values_list("client_id", "clientgroup_id"):
            groups.setdefault(client_id, set()).add(group_id)
    services: dict[int, list[ServiceFact]] = {}
    if Fact.SERVICES in needs:
        for client_id, *row in (
            Service.objects.filter(client_id__in=clients, opened_at__lte=latest)
            .order_by("client_id", "id")
            .values_list("client_id", *SERVICE_COLUMNS)
        ):
            services.setdefault(client_id, []).append(ServiceFact(*row))
    referrals: dict[int, list[tuple[datetime.datetime, int]]] = {}
    if Fact.REFERRALS in needs:
        for client_id, joined_at, program_id in Referral.objects.filter(
            client_id__in=clients, joined_at__lte=latest
        ).values_list("client_id", "joined_at", "program_id"):
            referrals.setdefault(client_id, []).append((joined_at, program_id))
    spent = _ExpenseSeries.load(asked, clients, windows) if windows else None
    found = []
    for a in asked:
        facts = ClientFacts(at=a.at, registered_at=a.registered_at)
        facts.group_ids = frozenset(groups.get(a.client_id, ()))
        facts.services = tuple(s for s in services.get(a.client_id, ()) if s.opened_at <= a.at)
        facts.referral_program_ids = frozenset(
            p for joined, p in referrals.get(a.client_id, ()) if joined <= a.at
        )
        if spent is not None:
            facts.expense_sums = {w: spent.total(a.client_id, w, a.at) for w in windows}
        found.append(facts)
    return found


class _ExpenseSeries:
    """Each (client, currency)'s expenses in time order with running totals, so the sum over any
    window [since, at] is a difference of two totals found by bisection."""

    def __init__(self, series: dict[tuple[int, int], tuple[list, list[Decimal]]]):
        self.series = series

    @classmethod
    def load(cls, asked: Sequence[FactsAsked], clients: list[int], windows: tuple[Window, ...]):
        earliest = min(
            shift(a.at, periodtype=w.periodtype, length=-w.length) for a in asked for w in windows
        )
        rows = (
            Expense.objects.filter(
                client_id__in=clients,
                currency_id__in=sorted({w.currency_id for w in windows}),
                created_at__gte=earliest,
                created_at__lte=max(a.at for a in asked),
            )
            .order_by("client_id", "currency_id", "created_at")
            .values_list("client_id", "currency_id", "created_at", "amount")
        )
        series: dict[tuple[int, int], tuple[list, list[Decimal]]] = {}
        for client_id, currency_id, created_at, amount in rows:
            times, totals = series.setdefault((client_id, currency_id), ([], [Decimal(0)]))
            times.append(created_at)
            totals.append(totals[-1] + amount)
        return cls(series)

    def total(self, client_id: int, window: Window, at: datetime.datetime) -> Decimal:
        found = self.series.get((client_id, window.currency_id))
        if found is None:
            return Decimal(0)
        times, totals = found
        since = shift(at, periodtype=window.periodtype, length=-window.length)
        return totals[bisect_right(times, at)] - totals[bisect_left(times, since)]
