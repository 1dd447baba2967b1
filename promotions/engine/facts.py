"""What the checks read about a client: loaded once per quote, in a fixed number of queries, and
only the kinds of facts the provider's conditions need."""

import datetime
import enum
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
            for row in Service.objects.filter(client_id=client_id).values_list(
                "id", "tariff_id", "period", "status", "paid", "opened_at"
            )
        )
    if Fact.REFERRALS in needs:
        facts.referral_program_ids = frozenset(
            Referral.objects.filter(client_id=client_id).values_list("program_id", flat=True)
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
