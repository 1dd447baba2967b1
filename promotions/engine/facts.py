"""Everything the checks read about a client, loaded once per quote in a fixed number of queries."""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property

from django.db.models import Count, Min, Q, Sum

from billing.models import Client, Expense, Service
from common.periods import shift
from promotions.models import Condition, PromoCode, PromoCodeUsage
from referrals.models import Referral


@dataclass(frozen=True)
class ServiceFact:
    id: int
    tariff_id: int
    period: int
    status: str
    paid: bool
    opened_at: datetime.datetime


@dataclass(frozen=True)
class CodeUse:
    live_uses: int
    first_use: datetime.datetime | None


@dataclass
class ClientFacts:
    client: Client
    at: datetime.datetime
    group_ids: frozenset[int]
    services: list[ServiceFact]
    referral_program_ids: frozenset[int]
    expense_sums: dict[tuple[int, datetime.datetime], Decimal] = field(default_factory=dict)
    code_uses: dict[int, CodeUse] = field(default_factory=dict)

    @cached_property
    def services_by_id(self) -> dict[int, ServiceFact]:
        return {s.id: s for s in self.services}


def expense_window(condition: Condition, at: datetime.datetime) -> tuple[int, datetime.datetime]:
    since = shift(at, periodtype=condition.periodtype, length=-condition.periodlength)
    return condition.currency_id, since


def load_facts(
    *, client: Client, at: datetime.datetime, conditions: list[Condition], codes: list[PromoCode]
) -> ClientFacts:
    facts = ClientFacts(
        client=client,
        at=at,
        group_ids=frozenset(client.groups.values_list("id", flat=True)),
        services=[
            ServiceFact(*row)
            for row in Service.objects.filter(client=client).values_list(
                "id", "tariff_id", "period", "status", "paid", "opened_at"
            )
        ],
        referral_program_ids=frozenset(
            Referral.objects.filter(client=client).values_list("program_id", flat=True)
        ),
    )
    windows = sorted(
        {expense_window(c, at) for c in conditions if c.ctype == Condition.Type.EXPENSE_SUM},
        key=lambda w: (w[0], w[1]),
    )
    if windows:
        sums = Expense.objects.filter(client=client, created_at__lte=at).aggregate(
            **{
                f"w{i}": Sum("amount", filter=Q(currency_id=currency_id, created_at__gte=since))
                for i, (currency_id, since) in enumerate(windows)
            }
        )
        facts.expense_sums = {w: sums[f"w{i}"] or Decimal(0) for i, w in enumerate(windows)}
    if codes:
        rows = (
            PromoCodeUsage.objects.filter(client=client, promocode__in=codes)
            .values("promocode_id")
            .annotate(
                live=Count("id", filter=Q(status=PromoCodeUsage.Status.ACTIVE)),
                first=Min("created_at", filter=Q(status=PromoCodeUsage.Status.ACTIVE)),
            )
        )
        facts.code_uses = {r["promocode_id"]: CodeUse(r["live"], r["first"]) for r in rows}
    return facts
