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
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ValidationError
from django.db.models import (
    Case,
    CharField,
    Count,
    DecimalField,
    Exists,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Round, TruncDate, TruncMonth
from django.utils import timezone

from billing.models import Client, Currency, Expense
from common.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, money_format, money_round
from referrals.models import (
    AttachmentRefusal,
    Partnership,
    Payout,
    PayoutBatch,
    Referral,
    ReferralProgram,
    Reward,
    RewardKind,
    RewardState,
    Rule,
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
        never hiding a fraction below it (a fixed reward accrued before they were rounded may
        carry one)."""
        rounded = money_round(self.amount, minor_units=self.minor_units)
        return rounded if rounded == self.amount else self.amount.normalize()

    def __str__(self) -> str:
        return money_format(self.amount, self.currency, minor_units=self.minor_units)


def money_text(amounts: Iterable[Money]) -> str:
    """Amounts in several currencies as one text: `12.50 USD, 300 JPY` (empty when none)."""
    return ", ".join(str(m) for m in amounts)


def _money(row: dict, field: str) -> Money:
    """A sum read from the database, at the ledger's places (SQLite sums in floating point)."""
    amount = Decimal(row[field] or 0).quantize(Decimal(1).scaleb(-MONEY_DECIMAL_PLACES))
    return Money(amount, row["currency__iso"], row["currency__minor_units"])


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
class Balances:
    """A partner's ledger in one program, per currency (only currencies with rows; a list is
    empty where the sum is zero). `earned` is net of what refunds gave back (`reversed`, negative);
    `unpaid` = `held` + `payable`, and `payable` (what the next payout pays) may be negative: a
    refund of a reward paid earlier is deducted from what comes next."""

    earned: list[Money] = field(default_factory=list)
    held: list[Money] = field(default_factory=list)
    payable: list[Money] = field(default_factory=list)
    paid: list[Money] = field(default_factory=list)
    reversed: list[Money] = field(default_factory=list)
    unpaid: list[Money] = field(default_factory=list)


BALANCES = ("earned", "held", "payable", "paid", "reversed", "unpaid")


class ShowsBalances:
    """What the partner lists and pages show of a row's `balances` at first sight."""

    balances: Balances

    @property
    def earned(self) -> list[Money]:
        return self.balances.earned

    @property
    def unpaid(self) -> list[Money]:
        return self.balances.unpaid


@dataclass(frozen=True)
class PartnerRow(ShowsBalances):
    """One line of a program's partner list."""

    partner_id: int
    name: str
    code: str
    referral_count: int
    balances: Balances
    payout_details: str  # masked


@dataclass(frozen=True)
class PayoutRow:
    pk: int
    created_at: datetime.datetime
    amount: Money
    reward_count: int
    reference: str
    paid_by: str
    status: str


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
    """A partner's rewards accrued on one day in one currency and state, whatever rules earned
    them; a reversing row is a line of its own (`reverses` = the reward it gives back)."""

    day: datetime.date
    beneficiary_id: int
    beneficiary: str
    amount: Money
    paid: Money
    count: int
    state: str
    reverses: int | None  # a reversing row: the reward it gives back
    entry: int | None  # a reversing row: its own id
    rules: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PartnerSummary(ShowsBalances):
    program: ReferralProgram
    partner: Client
    code: str
    link: str
    enrolled_at: datetime.datetime | None
    referral_count: int
    referrals: list[ReferralRow]  # the latest REFERRALS_SHOWN, newest first
    months: list[MonthTotal]  # oldest first
    balances: Balances
    payouts: list[PayoutRow]  # newest first
    payout_details: str  # masked
    refusals: list[AttachmentRefusal]  # the latest REFUSALS_SHOWN, newest first
    refusal_count: int


REFERRALS_SHOWN = 200
REFUSALS_SHOWN = 50


# Partners ---------------------------------------------------------------------------------------


def partners(program: ReferralProgram) -> QuerySet[Client]:
    """The program's partners: clients enrolled in it and clients who have brought referrals."""
    referrals = Referral.objects.filter(program=program, partner=OuterRef("pk"))
    enrolled = Partnership.objects.filter(program=program, partner=OuterRef("pk"))
    return Client.objects.filter(Exists(referrals) | Exists(enrolled))


def credited_rewards(
    *,
    program: ReferralProgram | None = None,
    partner: Client | None = None,
    partner_ids: Iterable[int] = (),
) -> QuerySet[Reward]:
    """The rewards credited to `partner` (or to any of `partner_ids`) in `program` (in any
    program when None): as referrer on the expenses of their referrals, as referee on their own.
    Reversing rows are on refunds, which are the referrals' expenses too."""
    ids = [partner.pk] if partner is not None else list(partner_ids)
    clients = Referral.objects.filter(Q(partner_id__in=ids) | Q(client_id__in=ids))
    if program is not None:
        clients = clients.filter(program=program)
        rules = list(program.rules.values_list("pk", flat=True))
    else:
        rules = list(
            Rule.objects.filter(program__in=clients.values("program")).values_list("pk", flat=True)
        )
    expenses = Expense.objects.filter(client_id__in=clients.values("client_id"))
    return Reward.objects.filter(
        rule_id__in=rules,
        expense_id__in=expenses.values("pk"),
        beneficiary_id__in=ids,
    )


def _code(program: ReferralProgram, partner_id: int, enrolled_code: str | None) -> str:
    if enrolled_code:
        return enrolled_code
    return partner_code(program, partner_id) if program.promocode else ""


def reward_sums(rewards: QuerySet[Reward], *keys: str, at: datetime.datetime) -> QuerySet:
    """Every balance per currency (and per `keys`), in one GROUP BY."""
    # Points are credited to the client's account, never transferred: only cash is paid out,
    # so only cash is unpaid, held or payable.
    unpaid = Q(payout__isnull=True, kind=RewardKind.CASH)
    return (
        rewards.order_by()
        .values(*keys, "currency__iso", "currency__minor_units")
        .annotate(
            earned=Sum("amount"),
            unpaid=Sum("amount", filter=unpaid),
            held=Sum("amount", filter=unpaid & Q(payable_at__gt=at)),
            payable=Sum("amount", filter=unpaid & Q(payable_at__lte=at)),
            paid=Sum("amount", filter=Q(payout__isnull=False)),
            reversed=Sum("amount", filter=Q(reverses__isnull=False)),
        )
        .order_by(*keys, "currency__iso")
    )


def _balances(rows: Iterable[dict]) -> Balances:
    """Balances from reward_sums' rows of one partner; earned is listed in every currency with rows,
    the others where they are not zero."""
    found = Balances()
    for row in rows:
        for name in BALANCES:
            amount = _money(row, name)
            if name == "earned" or amount.amount:
                getattr(found, name).append(amount)
    return found


def _masked_details(program: ReferralProgram, partner_ids: list[int]) -> dict[int, str]:
    return {
        partner_id: masked(details)
        for partner_id, details in Partnership.objects.filter(
            program=program, partner_id__in=partner_ids
        ).values_list("partner_id", "payout_details")
    }


def partner_rows(
    *,
    program: ReferralProgram,
    offset: int = 0,
    limit: int | None = None,
    at: datetime.datetime | None = None,
) -> tuple[list[PartnerRow], int]:
    """The program's partners, most referrals first, and how many there are (five queries);
    balances as they stand at `at` (now)."""
    at = at or timezone.now()
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
    sums: dict[int, list[dict]] = {}
    rewards = credited_rewards(program=program, partner_ids=[c.pk for c in clients])
    for row in reward_sums(rewards, "beneficiary_id", at=at):
        sums.setdefault(row["beneficiary_id"], []).append(row)
    details = _masked_details(program, [c.pk for c in clients])
    rows = [
        PartnerRow(
            partner_id=c.pk,
            name=c.name,
            code=_code(program, c.pk, c.enrolled_code),
            referral_count=c.referral_count,
            balances=_balances(sums.get(c.pk, [])),
            payout_details=details.get(c.pk, ""),
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

MONEY = DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)


def _given_back() -> Coalesce:
    """What a row's reversals have given back of it so far (zero or less)."""
    reversals = (
        Reward.objects.filter(reverses=OuterRef("pk"))
        .order_by()
        .values("reverses")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return Coalesce(Subquery(reversals, output_field=MONEY), Value(Decimal(0)), output_field=MONEY)


def with_states(rewards: QuerySet[Reward], *, at: datetime.datetime | None = None) -> QuerySet:
    """The rows with their `state` at `at` (now), as RewardState defines it."""
    at = at or timezone.now()
    # Rounded to the ledger's places: SQLite sums decimals in floating point.
    net = Round(F("amount") + _given_back(), MONEY_DECIMAL_PLACES, output_field=MONEY)
    return rewards.annotate(net=net).annotate(
        state=Case(
            When(
                Q(reverses__isnull=True, amount__gt=0, net__lte=0),
                then=Value(RewardState.REVERSED.value),
            ),
            When(payout__isnull=False, then=Value(RewardState.PAID.value)),
            When(payable_at__gt=at, then=Value(RewardState.HELD.value)),
            default=Value(RewardState.PAYABLE.value),
            output_field=CharField(),
        )
    )


def ledger(
    *,
    program: ReferralProgram | None = None,
    partner: Client | None = None,
    states: Iterable[str] = (),
    since: datetime.date | None = None,
    until: datetime.date | None = None,
    at: datetime.datetime | None = None,
) -> QuerySet:
    """Ledger rows with their state, oldest first: of a program, credited to a partner (reached
    through their referrals' expenses), in some states, accrued between two days (both included)."""
    if partner is not None:
        rows = credited_rewards(program=program, partner=partner)
    elif program is not None:
        rows = Reward.objects.filter(rule__program=program)
    else:
        rows = Reward.objects.all()
    if since is not None:
        rows = rows.filter(created_at__date__gte=since)
    if until is not None:
        rows = rows.filter(created_at__date__lte=until)
    rows = with_states(rows, at=at)
    states = list(states)
    if states:
        rows = rows.filter(state__in=states)
    return rows.select_related("rule", "currency").order_by("pk")


def reward_days(
    *,
    program: ReferralProgram,
    partner: Client | None = None,
    at: datetime.datetime | None = None,
) -> QuerySet:
    """Rewards per credited client, accrual day, currency and state, newest day first: same-day
    rewards of several rules in one state are one row (BILLmanager 6's rewards screen), and each
    reversing row is a row of its own. Rows are dicts; reward_day_rows adds the rules."""
    rewards = (
        credited_rewards(program=program, partner=partner)
        if partner is not None
        else Reward.objects.filter(rule__program=program)
    )
    return (
        with_states(rewards, at=at)
        .order_by()
        .annotate(day=TruncDate("created_at"))
        .values(
            "day",
            "beneficiary_id",
            "beneficiary__name",
            "currency__iso",
            "currency__minor_units",
            "state",
            "reverses_id",
            # a reversing row's own id: each is a line of its own
            entry=Case(When(reverses__isnull=False, then=F("id")), default=None),
        )
        .annotate(
            total=Sum("amount"),
            paid=Coalesce(Sum("amount", filter=Q(payout__isnull=False)), Decimal(0)),
            count=Count("id"),
        )
        .order_by("-day", "beneficiary_id", "currency__iso", "state", "entry")
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
            state=r["state"],
            reverses=r["reverses_id"],
            entry=r["entry"],
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


def partner_summary(
    *, program: ReferralProgram, partner: Client, at: datetime.datetime | None = None
) -> PartnerSummary:
    """What the admin's partner page shows: code, link, referrals, balances, payouts, payout
    details (masked) and refused attachments."""
    at = at or timezone.now()
    partnership = Partnership.objects.filter(program=program, partner=partner).first()
    referrals = program_referrals(program=program, partner=partner)
    rewards = credited_rewards(program=program, partner=partner)
    payouts = (
        Payout.objects.filter(program=program, partner=partner)
        .select_related("currency", "batch")
        .order_by("-created_at", "-pk")
    )
    refusals = attachment_refusals(program=program, partner=partner)
    return PartnerSummary(
        program=program,
        partner=partner,
        code=_code(program, partner.pk, partnership.code if partnership else None),
        link=partner_link(program, partner.pk),
        enrolled_at=partnership.enrolled_at if partnership else None,
        referral_count=referrals.count(),
        referrals=referral_rows(referrals.order_by("-joined_at", "-pk")[:REFERRALS_SHOWN]),
        months=rewards_per_month(rewards),
        balances=_balances(reward_sums(rewards, at=at)),
        payouts=[
            PayoutRow(
                pk=p.pk,
                created_at=p.created_at,
                amount=Money(p.amount, p.currency.iso, p.currency.minor_units),
                reward_count=p.rewards_count,
                reference=p.batch.reference,
                paid_by=p.paid_by,
                status=p.status,
            )
            for p in payouts
        ],
        payout_details=masked(partnership.payout_details) if partnership else "",
        refusals=list(refusals[:REFUSALS_SHOWN]),
        refusal_count=refusals.count(),
    )


def attachment_refusals(
    *, program: ReferralProgram, partner: Client | None = None
) -> QuerySet[AttachmentRefusal]:
    """Attachments the fraud screens refused (of one partner when given), newest first."""
    found = AttachmentRefusal.objects.filter(program=program)
    if partner is not None:
        found = found.filter(partner=partner)
    return found.select_related("client", "partner").order_by("-refused_at", "-pk")


# Paying -----------------------------------------------------------------------------------------


def masked(details: str) -> str:
    """Payout details as lists show them: an e-mail keeps its first letter and its domain
    (`p***@example.com`), anything else (an IBAN, an account) its first and last four characters
    (`DE89 **** 3000`); short ones only their last two."""
    details = (details or "").strip()
    if not details:
        return ""
    local, at, domain = details.rpartition("@")
    if at and local and domain:
        return f"{local[0]}***@{domain}"
    compact = details.replace(" ", "")
    if len(compact) <= 8:
        return "****" + compact[-2:]
    return f"{compact[:4]} **** {compact[-4:]}"


def payout_details_of(*, program: ReferralProgram, partner: Client) -> str:
    """Where the partner's payouts of the program go (unmasked: for the payout file)."""
    return (
        Partnership.objects.filter(program=program, partner=partner)
        .values_list("payout_details", flat=True)
        .first()
        or ""
    )


def payable_rows(
    *,
    program: ReferralProgram,
    partner: Client,
    at: datetime.datetime | None = None,
    through: int | None = None,
) -> QuerySet[Reward]:
    """What the next payout of the partner pays: their unpaid rows whose hold is over at `at`
    (now), reversing rows included (a deduction when the reward they reverse was paid); up to row
    `through` when given."""
    due = credited_rewards(program=program, partner=partner).filter(
        payout__isnull=True, payable_at__lte=at or timezone.now(), kind=RewardKind.CASH
    )
    return due.filter(pk__lte=through) if through is not None else due


@dataclass(frozen=True)
class PayoutSkip:
    """A partner's balance in one currency that a payment leaves, and why."""

    program: ReferralProgram
    partner: Client
    balance: Money
    reason: str

    def __str__(self) -> str:
        return f"{self.partner.name} in {self.program.name}: {self.reason}"


def payout_skip(
    program: ReferralProgram, partner: Client, currency: Currency, balance: Decimal
) -> PayoutSkip | None:
    """Why a payable balance is not paid, or None when it is: nothing above zero (a refund of a
    reward paid earlier can take it below), or below the program's payout minimum (in the
    program's currency; the program does not convert, so other currencies need only be above
    zero)."""
    money = Money(balance, currency.iso, currency.minor_units)
    if balance <= 0:
        reason = f"the payable balance is {money}: nothing to pay"
    elif currency.pk == program.reward_currency.pk and balance < program.payout_minimum:
        minimum = Money(program.payout_minimum, currency.iso, currency.minor_units)
        reason = f"the payable balance {money} is below the payout minimum {minimum}"
    else:
        return None
    return PayoutSkip(program=program, partner=partner, balance=money, reason=reason)


@dataclass(frozen=True)
class PayoutLine:
    program: ReferralProgram
    partner: Client
    amounts: list[Money]


@dataclass(frozen=True)
class PayoutPreview:
    """What paying these partners would pay at `at`, for the operator to confirm."""

    lines: list[PayoutLine]  # partners with something to pay
    totals: list[Money]  # per currency, over every line
    through: int  # the highest row id counted: a later one is left for the next payment
    skipped: list[PayoutSkip]  # balances left unpaid, and why
    at: datetime.datetime

    @property
    def confirmed(self) -> dict[str, Decimal]:
        return {m.currency: m.amount for m in self.totals}


def payout_preview(
    pairs: Iterable[tuple[ReferralProgram, Client]], *, at: datetime.datetime | None = None
) -> PayoutPreview:
    """The payable balances per currency of each (program, partner), those a payment would pay
    and their totals, and those it would skip (see payout_skip)."""
    at = at or timezone.now()
    lines, totals, skipped, through = [], [], [], 0
    currencies = {c.iso: c for c in Currency.objects.all()}
    for program, partner in sorted(set(pairs), key=lambda pair: (pair[0].pk, pair[1].pk)):
        due = payable_rows(program=program, partner=partner, at=at)
        amounts = []
        for row in (
            due.order_by()
            .values("currency__iso", "currency__minor_units")
            .annotate(total=Sum("amount"), last=Max("id"))
            .order_by("currency__iso")
        ):
            skip = payout_skip(program, partner, currencies[row["currency__iso"]], row["total"])
            if skip is not None:
                skipped.append(skip)
                continue
            amounts.append(_money(row, "total"))
            _add(totals, _money(row, "total"))
            through = max(through, row["last"])
        if amounts:
            lines.append(PayoutLine(program=program, partner=partner, amounts=amounts))
    return PayoutPreview(lines=lines, totals=totals, through=through, skipped=skipped, at=at)


# The payout file: what a bank's or a payment provider's bulk upload takes.
PAYOUT_FILE_HEADER = [
    "reference",
    "payout",
    "partner_id",
    "partner",
    "payout_details",
    "amount",
    "currency",
    "program",
    "status",
]


def payout_file_rows(batch: PayoutBatch) -> list[list]:
    """One line per payout of the batch that has not failed (a failed one is not to be sent
    again: its rewards wait for the next payment), the details unmasked: the file is for the
    bank. Amounts to the currency's minor unit."""
    payouts = (
        batch.payouts.exclude(status=Payout.Status.FAILED)
        .select_related("partner", "currency", "program")
        .order_by("pk")
    )
    return [
        [
            batch.reference,
            p.pk,
            p.partner_id,
            p.partner.name,
            p.payout_details,
            f"{Money(p.amount, p.currency.iso, p.currency.minor_units).shown:f}",
            p.currency.iso,
            p.program.name,
            p.status,
        ]
        for p in payouts
    ]


@dataclass(frozen=True)
class BatchRow:
    batch: PayoutBatch
    payouts: int
    totals: list[Money]  # per currency, failed payouts left out
    statuses: dict[str, int]  # how many payouts in each status


def batch_rows(batches: Iterable[PayoutBatch]) -> list[BatchRow]:
    """Batches with their payouts counted per status and their totals per currency (one
    query)."""
    batches = list(batches)
    counts: dict[int, dict[str, int]] = {}
    totals: dict[int, list[Money]] = {}
    for row in (
        Payout.objects.filter(batch__in=batches)
        .order_by()
        .values("batch_id", "status", "currency__iso", "currency__minor_units")
        .annotate(n=Count("id"), total=Sum("amount"))
        .order_by("batch_id", "currency__iso")
    ):
        statuses = counts.setdefault(row["batch_id"], {})
        statuses[row["status"]] = statuses.get(row["status"], 0) + row["n"]
        if row["status"] != Payout.Status.FAILED:
            _add(totals.setdefault(row["batch_id"], []), _money(row, "total"))
    return [
        BatchRow(
            batch=b,
            payouts=sum(counts.get(b.pk, {}).values()),
            totals=totals.get(b.pk, []),
            statuses=counts.get(b.pk, {}),
        )
        for b in batches
    ]


# Partner links ----------------------------------------------------------------------------------

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalised_url(url: str) -> tuple:
    """What two spellings of one page share: scheme and host in lower case, no default port, no
    trailing slash, the query's parameters but `from` in order, no fragment."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port == DEFAULT_PORTS.get(scheme):
        port = None
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "from"]
    return scheme, parts.hostname or "", port, parts.path.rstrip("/"), tuple(query)


def link_target(link: str) -> tuple[ReferralProgram, int]:
    """The program whose URL `link` is (compared normalised) and the partner its `from` names; a
    ValidationError on `link` for anything else. A partner enrolled in several programs at that
    URL is counted for the first they are enrolled in, else the first program.

    Only programs whose URL names the link's host are read (an indexed-size read however many
    programs there are); the comparison itself is normalised_url's."""
    if "://" not in link and "%3a%2f%2f" in link.lower():
        link = unquote(link)  # sent encoded twice
    parts = urlsplit(link.strip())
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        raise ValidationError({"link": "A partner link is http(s)://...?from=PARTNER_ID."})
    froms = [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == "from"]
    if len(froms) != 1 or not (froms[0].isascii() and froms[0].isdigit()) or len(froms[0]) > 18:
        raise ValidationError({"link": "A partner link carries one ?from=PARTNER_ID."})
    partner_id, page = int(froms[0]), normalised_url(link)
    candidates = ReferralProgram.objects.exclude(url="").filter(url__icontains=parts.hostname)
    programs = [p for p in candidates.order_by("pk") if normalised_url(p.url) == page]
    partner = Client.objects.filter(
        pk=partner_id, provider_id__in=[p.provider_id for p in programs]
    ).first()
    if partner is None:
        raise ValidationError({"link": "This is no partner link of a referral program."})
    programs = [p for p in programs if p.provider_id == partner.provider_id]
    enrolled = set(
        Partnership.objects.filter(partner=partner, program__in=programs).values_list(
            "program_id", flat=True
        )
    )
    return sorted(programs, key=lambda p: (p.pk not in enrolled, p.pk))[0], partner_id


def program_of_partner(*, provider_id: int, partner_id: int) -> ReferralProgram:
    """The program a bare partner id means for a new client of `provider_id`: one the partner is
    enrolled in at that provider, else that provider's default program; a ValidationError on
    `partner` when the partner is no client of the provider or in no program."""
    if not Client.objects.filter(pk=partner_id, provider_id=provider_id).exists():
        raise ValidationError({"partner": f"There is no partner {partner_id}."})
    enrolled = (
        Partnership.objects.filter(partner_id=partner_id, program__provider_id=provider_id)
        .select_related("program")
        .order_by("pk")
        .first()
    )
    if enrolled is not None:
        return enrolled.program
    default = ReferralProgram.objects.filter(
        provider_id=provider_id, assign_by_default=True
    ).first()
    if default is None:
        raise ValidationError({"partner": f"Partner {partner_id} is in no referral program."})
    return default


def partnership_balances(
    partnerships: Iterable[Partnership], *, at: datetime.datetime | None = None
) -> dict[tuple[int, int], Balances]:
    """Each (program, partner)'s balances for a page of partnerships, in one query."""
    pairs = {(p.program_id, p.partner_id) for p in partnerships}
    if not pairs:
        return {}
    rewards = credited_rewards(partner_ids={partner for _, partner in pairs})
    rows: dict[tuple[int, int], list[dict]] = {}
    for row in reward_sums(rewards, "rule__program_id", "beneficiary_id", at=at or timezone.now()):
        key = (row["rule__program_id"], row["beneficiary_id"])
        if key in pairs:
            rows.setdefault(key, []).append(row)
    return {key: _balances(rows.get(key, [])) for key in pairs}
