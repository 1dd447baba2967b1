"""Reads for referral programs: partners, a partner's summary, referrals and rewards as
BILLmanager 6's referrer screens show them, and what a payment would pay.

Each read runs a fixed number of queries, whatever the number of partners, referrals or rewards.
Money is summed per currency, never across currencies (a payout is per currency too).

The ledger has no index on the credited client (accrual writes a million rows at a time, see
Reward): a partner's rewards are reached through their referrals' expenses, which are indexed
(referral by partner, expense by client, reward by rule and expense).
"""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import (
    Count,
    Exists,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce, TruncDate, TruncMonth

from billing.models import Client, Expense
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


def money_text(amounts: Iterable[Money]) -> str:
    """Amounts in several currencies as one text: `12.50 USD, 300 JPY` (empty when none)."""
    return ", ".join(str(m) for m in amounts)


def _money(row: dict, field: str) -> Money:
    return Money(row[field] or Decimal(0), row["currency__iso"], row["currency__minor_units"])


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
    reference: str
    paid_by: str


@dataclass(frozen=True)
class ReferralRow:
    """A referral as BILLmanager 6's referrer screen lists it."""

    referral: Referral
    came_from: str  # the link followed, "By promo code '...'", or "Manually"
    expenses: list[Money]  # every charge of the client, per currency
    paid: list[Money]  # the partner's rewards on this referral that a payout has paid
    rules: list[int]  # the rules that rewarded this referral
    first_purchase_at: datetime.datetime | None
    last_purchase_at: datetime.datetime | None

    @property
    def name(self) -> str:
        client = self.referral.client
        return f"{client.name} ({client.email})" if client.email else client.name


@dataclass(frozen=True)
class RewardDay:
    """A partner's rewards accrued on one day in one currency, whatever rules earned them."""

    day: datetime.date
    beneficiary_id: int
    beneficiary: str
    amount: Money
    paid: Money
    count: int
    rules: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PartnerSummary:
    program: ReferralProgram
    partner: Client
    code: str
    link: str
    enrolled_at: datetime.datetime | None
    referral_count: int
    referrals: list[ReferralRow]  # the latest REFERRALS_SHOWN, newest first
    months: list[MonthTotal]  # oldest first
    earned: list[Money]
    unpaid: list[Money]  # only currencies with something left to pay
    payouts: list[PayoutRow]  # newest first


REFERRALS_SHOWN = 200


# Partners ---------------------------------------------------------------------------------------


def partners(program: ReferralProgram) -> QuerySet[Client]:
    """The program's partners: clients enrolled in it and clients who have brought referrals."""
    referrals = Referral.objects.filter(program=program, partner=OuterRef("pk"))
    enrolled = Partnership.objects.filter(program=program, partner=OuterRef("pk"))
    return Client.objects.filter(Exists(referrals) | Exists(enrolled))


def credited_rewards(
    *, program: ReferralProgram, partner: Client | None = None, partner_ids: Iterable[int] = ()
) -> QuerySet[Reward]:
    """The program's rewards credited to `partner` (or to any of `partner_ids`): as referrer on
    the expenses of their referrals, as referee on their own."""
    ids = [partner.pk] if partner is not None else list(partner_ids)
    clients = Referral.objects.filter(program=program).filter(
        Q(partner_id__in=ids) | Q(client_id__in=ids)
    )
    expenses = Expense.objects.filter(client_id__in=clients.values("client_id"))
    return Reward.objects.filter(
        rule_id__in=list(program.rules.values_list("pk", flat=True)),
        expense_id__in=expenses.values("pk"),
        beneficiary_id__in=ids,
    )


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


def partner_rows(
    *, program: ReferralProgram, offset: int = 0, limit: int | None = None
) -> tuple[list[PartnerRow], int]:
    """The program's partners, most referrals first, and how many there are (four queries)."""
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
    page = found[offset : offset + limit] if limit is not None else found[offset:]
    clients = list(page)
    earned: dict[int, list[Money]] = {}
    unpaid: dict[int, list[Money]] = {}
    rewards = credited_rewards(program=program, partner_ids=[c.pk for c in clients])
    for row in _sums(rewards, "beneficiary_id"):
        earned.setdefault(row["beneficiary_id"], []).append(_money(row, "earned"))
        if row["unpaid"]:
            unpaid.setdefault(row["beneficiary_id"], []).append(_money(row, "unpaid"))
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


# Referrals --------------------------------------------------------------------------------------


def _came_from(referral: Referral) -> str:
    if referral.source == Referral.Source.PROMOCODE:
        return f"By promo code '{referral.via}'" if referral.via else "By promo code"
    if referral.source == Referral.Source.LINK:
        return referral.via or partner_link(referral.program, referral.partner_id) or "By link"
    return "Manually"


def program_referrals(
    *, program: ReferralProgram, partner: Client | None = None
) -> QuerySet[Referral]:
    """The program's referrals (of one partner when given), oldest first."""
    found = Referral.objects.filter(program=program)
    if partner is not None:
        found = found.filter(partner=partner)
    return found.select_related("client", "partner", "program").order_by("id")


def referral_rows(referrals: Iterable[Referral]) -> list[ReferralRow]:
    """BILLmanager 6's referral columns for a page of referrals (four queries)."""
    referrals = list(referrals)
    clients = [r.client_id for r in referrals]
    purchases = {
        row["client_id"]: row
        for row in Expense.objects.filter(client_id__in=clients, amount__gt=0)
        .order_by()
        .values("client_id")
        .annotate(first=Min("created_at"), last=Max("created_at"))
    }
    spent: dict[int, list[Money]] = {}
    for row in (
        Expense.objects.filter(client_id__in=clients)
        .order_by()
        .values("client_id", "currency__iso", "currency__minor_units")
        .annotate(total=Sum("amount"))
        .order_by("client_id", "currency__iso")
    ):
        spent.setdefault(row["client_id"], []).append(_money(row, "total"))
    rules: dict[int, set[int]] = {}
    paid: dict[int, list[Money]] = {}
    by_program: dict[int, list[Referral]] = {}
    for referral in referrals:
        by_program.setdefault(referral.program_id, []).append(referral)
    for program_referrals_ in by_program.values():
        program = program_referrals_[0].program
        rewards = Reward.objects.filter(
            rule_id__in=list(program.rules.values_list("pk", flat=True)),
            expense_id__in=Expense.objects.filter(
                client_id__in=[r.client_id for r in program_referrals_]
            ).values("pk"),
        )
        for row in (
            rewards.order_by()
            .values("referral_id", "rule_id", "currency__iso", "currency__minor_units")
            .annotate(paid=Sum("amount", filter=Q(payout__isnull=False, role=Reward.Role.REFERRER)))
            .order_by("referral_id", "currency__iso", "rule_id")
        ):
            rules.setdefault(row["referral_id"], set()).add(row["rule_id"])
            if row["paid"]:
                _add(paid.setdefault(row["referral_id"], []), _money(row, "paid"))
    return [
        ReferralRow(
            referral=r,
            came_from=_came_from(r),
            expenses=spent.get(r.client_id, []),
            paid=paid.get(r.pk, []),
            rules=sorted(rules.get(r.pk, ())),
            first_purchase_at=purchases.get(r.client_id, {}).get("first"),
            last_purchase_at=purchases.get(r.client_id, {}).get("last"),
        )
        for r in referrals
    ]


def _add(amounts: list[Money], more: Money) -> None:
    """Add `more` to the entry of its currency (or append it)."""
    for i, m in enumerate(amounts):
        if m.currency == more.currency:
            amounts[i] = Money(m.amount + more.amount, m.currency, m.minor_units)
            return
    amounts.append(more)


# Rewards ----------------------------------------------------------------------------------------


def reward_days(*, program: ReferralProgram, partner: Client | None = None) -> QuerySet:
    """Rewards per credited client, accrual day and currency, newest day first: same-day rewards
    of several rules are one row (BILLmanager 6's rewards screen). Rows are dicts; rewards_of_days
    adds the rules."""
    rewards = (
        credited_rewards(program=program, partner=partner)
        if partner is not None
        else Reward.objects.filter(rule__program=program)
    )
    return (
        rewards.order_by()
        .annotate(day=TruncDate("created_at"))
        .values(
            "day",
            "beneficiary_id",
            "beneficiary__name",
            "currency__iso",
            "currency__minor_units",
        )
        .annotate(
            total=Sum("amount"),
            paid=Coalesce(Sum("amount", filter=Q(payout__isnull=False)), Decimal(0)),
            count=Count("id"),
        )
        .order_by("-day", "beneficiary_id", "currency__iso")
    )


def reward_day_rows(program: ReferralProgram, rows: Iterable[dict]) -> list[RewardDay]:
    """A page of reward_days() with the rules that earned each day's rewards (one query)."""
    rows = list(rows)
    rules: dict[tuple, set[int]] = {}
    if rows:
        days = {r["day"] for r in rows}
        who = {r["beneficiary_id"] for r in rows}
        found = (
            credited_rewards(program=program, partner_ids=who)
            .annotate(day=TruncDate("created_at"))
            .filter(day__in=days)
            .order_by()
            .values_list("day", "beneficiary_id", "currency__iso", "rule_id")
            .distinct()
        )
        for day, beneficiary, iso, rule in found:
            rules.setdefault((day, beneficiary, iso), set()).add(rule)
    return [
        RewardDay(
            day=r["day"],
            beneficiary_id=r["beneficiary_id"],
            beneficiary=r["beneficiary__name"],
            amount=_money(r, "total"),
            paid=_money(r, "paid"),
            count=r["count"],
            rules=sorted(rules.get((r["day"], r["beneficiary_id"], r["currency__iso"]), ())),
        )
        for r in rows
    ]


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
    referrals = program_referrals(program=program, partner=partner)
    rewards = credited_rewards(program=program, partner=partner)
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
        referrals=referral_rows(referrals.order_by("-joined_at", "-pk")[:REFERRALS_SHOWN]),
        months=rewards_per_month(rewards),
        earned=earned,
        unpaid=unpaid,
        payouts=[
            PayoutRow(
                pk=p.pk,
                created_at=p.created_at,
                amount=Money(p.amount, p.currency.iso, p.currency.minor_units),
                reward_count=p.reward_count,
                reference=p.reference,
                paid_by=p.paid_by,
            )
            for p in payouts
        ],
    )


# Paying -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutLine:
    program: ReferralProgram
    partner: Client
    amounts: list[Money]


@dataclass(frozen=True)
class PayoutPreview:
    """What paying these partners would pay, for the operator to confirm."""

    lines: list[PayoutLine]  # partners with something to pay
    totals: list[Money]  # per currency, over every line
    through: int  # the highest reward id counted: a later one is left for the next payment

    @property
    def confirmed(self) -> dict[str, Decimal]:
        return {m.currency: m.amount for m in self.totals}


def payout_preview(pairs: Iterable[tuple[ReferralProgram, Client]]) -> PayoutPreview:
    """The unpaid amounts per currency of each (program, partner), and their totals."""
    lines, totals, through = [], [], 0
    for program, partner in sorted(set(pairs), key=lambda pair: (pair[0].pk, pair[1].pk)):
        due = credited_rewards(program=program, partner=partner).filter(payout__isnull=True)
        amounts = []
        for row in (
            due.order_by()
            .values("currency__iso", "currency__minor_units")
            .annotate(total=Sum("amount"), last=Max("id"))
            .order_by("currency__iso")
        ):
            amounts.append(_money(row, "total"))
            _add(totals, _money(row, "total"))
            through = max(through, row["last"])
        if amounts:
            lines.append(PayoutLine(program=program, partner=partner, amounts=amounts))
    return PayoutPreview(lines=lines, totals=totals, through=through)
