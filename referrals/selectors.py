"""Reads for the referral admin pages: a program's partners and one partner's summary.

Each read runs a fixed number of queries, whatever the number of partners, referrals or rewards.
Money is summed per currency (a payout is per currency too); a month is the month of the purchase
that earned the reward, not of the accrual run that wrote it, so re-running or delaying accrual
never moves money between months.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, TruncMonth

from billing.models import Client
from common.money import money_round
from referrals.models import (
    Partnership,
    Payout,
    Referral,
    ReferralProgram,
    Reward,
    partner_code,
    partner_link,
)


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str
    minor_units: int = 2

    @property
    def shown(self) -> Decimal:
        """The amount to the currency's minor unit (SQLite and PostgreSQL sum to other scales),
        never hiding a fraction below it (a fixed reward may carry one)."""
        rounded = money_round(self.amount, minor_units=self.minor_units)
        return rounded if rounded == self.amount else self.amount.normalize()

    def __str__(self) -> str:
        return f"{self.shown:f} {self.currency}"


@dataclass(frozen=True)
class MonthTotal:
    month: datetime.date  # the first day of the month
    currency: str
    amount: Money
    count: int

    @property
    def label(self) -> str:
        return self.month.strftime("%Y-%m")


@dataclass(frozen=True)
class PartnerRow:
    """One line of a program's partner list."""

    partner_id: int
    name: str
    code: str
    referral_count: int
    earned: list[Money]
    unpaid: list[Money]


@dataclass(frozen=True)
class PayoutRow:
    pk: int
    created_at: datetime.datetime
    amount: Money
    reward_count: int


@dataclass(frozen=True)
class PartnerSummary:
    program: ReferralProgram
    partner: Client
    code: str
    link: str
    enrolled_at: datetime.datetime | None
    referral_count: int
    referrals: list[Referral]  # the latest REFERRALS_SHOWN, newest first
    months: list[MonthTotal]  # oldest first
    earned: list[Money]
    unpaid: list[Money]  # only currencies with something left to pay
    payouts: list[PayoutRow]  # newest first


REFERRALS_SHOWN = 200


def partners(program: ReferralProgram) -> QuerySet[Client]:
    """The program's partners: clients enrolled in it and clients who have brought referrals."""
    referrals = Referral.objects.filter(program=program, partner=OuterRef("pk"))
    enrolled = Partnership.objects.filter(program=program, partner=OuterRef("pk"))
    return Client.objects.filter(Exists(referrals) | Exists(enrolled))


def _code(program: ReferralProgram, partner_id: int, enrolled_code: str | None) -> str:
    if enrolled_code:
        return enrolled_code
    return partner_code(program, partner_id) if program.promocode else ""


def _sums(rewards: QuerySet[Reward], *keys: str) -> QuerySet:
    """Earned and unpaid per currency (and per `keys`), in one GROUP BY."""
    return (
        rewards.order_by()
        .values(*keys, "currency__iso", "currency__minor_units")
        .annotate(earned=Sum("amount"), unpaid=Sum("amount", filter=Q(payout__isnull=True)))
        .order_by(*keys, "currency__iso")
    )


def _money(row: dict, field: str) -> Money:
    return Money(row[field] or Decimal(0), row["currency__iso"], row["currency__minor_units"])


def partner_rows(
    *, program: ReferralProgram, limit: int | None = None
) -> tuple[list[PartnerRow], int]:
    """The program's partners, most referrals first, and how many there are (three queries)."""
    referrals = Referral.objects.filter(program=program, partner=OuterRef("pk"))
    enrolled = Partnership.objects.filter(program=program, partner=OuterRef("pk"))
    found = (
        partners(program)
        .annotate(
            enrolled_code=Subquery(enrolled.values("code")[:1]),
            referral_count=Coalesce(
                Subquery(
                    referrals.order_by().values("partner").annotate(n=Count("id")).values("n"),
                    output_field=IntegerField(),
                ),
                0,
            ),
        )
        .order_by("-referral_count", "pk")
    )
    total = found.count()
    clients = list(found[:limit] if limit is not None else found)
    earned: dict[int, list[Money]] = {}
    unpaid: dict[int, list[Money]] = {}
    sums = _sums(
        Reward.objects.filter(rule__program=program, partner__in=[c.pk for c in clients]),
        "partner_id",
    )
    for row in sums:
        earned.setdefault(row["partner_id"], []).append(_money(row, "earned"))
        if row["unpaid"]:
            unpaid.setdefault(row["partner_id"], []).append(_money(row, "unpaid"))
    rows = [
        PartnerRow(
            partner_id=c.pk,
            name=c.name,
            code=_code(program, c.pk, c.enrolled_code),
            referral_count=c.referral_count,
            earned=earned.get(c.pk, []),
            unpaid=unpaid.get(c.pk, []),
        )
        for c in clients
    ]
    return rows, total


def rewards_per_month(rewards: QuerySet[Reward]) -> list[MonthTotal]:
    """The rewards' sums per month of the purchase that earned them and currency, oldest first."""
    rows = (
        rewards.order_by()
        .annotate(month=TruncMonth("expense__created_at"))
        .values("month", "currency__iso", "currency__minor_units")
        .annotate(total=Sum("amount"), n=Count("id"))
        .order_by("month", "currency__iso")
    )
    return [
        MonthTotal(
            month=row["month"].date()
            if isinstance(row["month"], datetime.datetime)
            else row["month"],
            currency=row["currency__iso"],
            amount=Money(row["total"], row["currency__iso"], row["currency__minor_units"]),
            count=row["n"],
        )
        for row in rows
    ]


def program_rewards_per_month(*, program: ReferralProgram, last: int = 12) -> list[MonthTotal]:
    """The program's rewards per month: the `last` months that have any, oldest first."""
    months = rewards_per_month(Reward.objects.filter(rule__program=program))
    kept = sorted({m.month for m in months})[-last:]
    return [m for m in months if m.month in kept]


def partner_summary(*, program: ReferralProgram, partner: Client) -> PartnerSummary:
    """What the admin's partner page shows: code, link, referrals, rewards and payouts."""
    partnership = Partnership.objects.filter(program=program, partner=partner).first()
    referrals = Referral.objects.filter(program=program, partner=partner)
    rewards = Reward.objects.filter(rule__program=program, partner=partner)
    earned, unpaid = [], []
    for row in _sums(rewards):
        earned.append(_money(row, "earned"))
        if row["unpaid"]:
            unpaid.append(_money(row, "unpaid"))
    payouts = (
        Payout.objects.filter(program=program, partner=partner)
        .select_related("currency")
        .annotate(reward_count=Count("rewards"))
        .order_by("-created_at", "-pk")
    )
    return PartnerSummary(
        program=program,
        partner=partner,
        code=_code(program, partner.pk, partnership.code if partnership else None),
        link=partner_link(program, partner.pk),
        enrolled_at=partnership.enrolled_at if partnership else None,
        referral_count=referrals.count(),
        referrals=list(
            referrals.select_related("client").order_by("-joined_at", "-pk")[:REFERRALS_SHOWN]
        ),
        months=rewards_per_month(rewards),
        earned=earned,
        unpaid=unpaid,
        payouts=[
            PayoutRow(
                pk=p.pk,
                created_at=p.created_at,
                amount=Money(p.amount, p.currency.iso, p.currency.minor_units),
                reward_count=p.reward_count,
            )
            for p in payouts
        ],
    )
