"""The dashboard's figures: what promotions gave, what referrals owe, what the machinery is doing.

Every figure is a fixed number of queries, whatever the number of promotions, codes, redemptions
or rewards (tests/dashboard checks the count). Money is per currency, never summed across them.
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, DecimalField, F, FloatField, Q, Sum, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.urls import reverse
from django.utils import timezone

from billing.models import Currency
from billing.selectors import money_shown
from common.models import Job
from common.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, money_format
from ops.models import Schedule
from ops.schedule import ACCRUAL
from promotions.models import PromoCode, Promotion, Redemption
from promotions.selectors import with_budget_spent
from referrals.models import Payout, Reward
from referrals.selectors import reward_sums

DAYS_CHARTED = 30
# A code is close to its limit from this share of its uses on.
NEAR_LIMIT = Decimal("0.8")
ROWS = 10
MONEY = DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
FLOAT = FloatField()


def _amount(value) -> Decimal:
    """A database sum at the ledger's places (SQLite sums decimals in floating point)."""
    return Decimal(str(value or 0)).quantize(Decimal(1).scaleb(-MONEY_DECIMAL_PLACES))


@dataclass(frozen=True)
class Amount:
    amount: Decimal
    currency: str
    minor_units: int

    def __str__(self) -> str:
        return money_format(self.amount, self.currency, minor_units=self.minor_units)


@dataclass
class Given:
    """Redemptions and the discount they gave in one currency: today, this month, per day."""

    currency: str
    minor_units: int
    today_count: int = 0
    today_discount: Decimal = Decimal(0)
    month_count: int = 0
    month_discount: Decimal = Decimal(0)
    per_day: dict[datetime.date, Decimal] = field(default_factory=dict)

    def shown(self, amount: Decimal) -> str:
        return money_format(amount, self.currency, minor_units=self.minor_units)

    @property
    def today_text(self) -> str:
        return self.shown(self.today_discount)

    @property
    def month_text(self) -> str:
        return self.shown(self.month_discount)


@dataclass(frozen=True)
class NearLimit:
    code: str
    promotion: str
    uses: int
    limit: int
    url: str


@dataclass(frozen=True)
class BudgetBurn:
    promotion: str
    period: str
    spent: str
    budget: str
    share: int  # percent of the period's budget spent
    url: str


@dataclass(frozen=True)
class Dashboard:
    today: datetime.date
    month: datetime.date
    live_promotions: int
    given: list[Given]
    days: list[datetime.date]
    codes_near_limit: list[NearLimit]
    budgets: list[BudgetBurn]
    held: list[Amount]
    payable: list[Amount]
    paid_this_month: list[Amount]
    payouts_waiting: int
    payouts_waiting_amounts: list[Amount]
    jobs_running: int
    jobs_queued: int
    jobs_failed: int
    jobs_failed_recent: list[Job]
    last_accrual: Job | None
    last_accrual_figures: dict
    accrual_next: datetime.datetime | None

    @property
    def redemptions_today(self) -> int:
        return sum(g.today_count for g in self.given)

    @property
    def redemptions_month(self) -> int:
        return sum(g.month_count for g in self.given)


def given_per_currency(
    *, today: datetime.date, days: int = DAYS_CHARTED, minor_units: dict[str, int]
) -> list[Given]:
    """Live redemptions per day and currency since the earlier of the month's first day and the
    chart's first day, in one query (an order is in one currency: its first line's)."""
    month = today.replace(day=1)
    first = min(month, today - datetime.timedelta(days=days - 1))
    start = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
    rows = (
        Redemption.objects.filter(status=Redemption.Status.ACTIVE, created_at__gte=start)
        .annotate(
            day=TruncDate("created_at"),
            currency=KT("quote__lines__0__currency"),
            discount=Cast(KT("quote__discount_total"), MONEY),
        )
        .values("day", "currency")
        .annotate(n=Count("id"), total=Sum("discount"))
        .order_by("currency", "day")
    )
    found: dict[str, Given] = {}
    for row in rows:
        currency = row["currency"] or "?"
        given = found.get(currency) or found.setdefault(
            currency, Given(currency, minor_units.get(currency, 2))
        )
        day, total = row["day"], _amount(row["total"])
        if day > today:
            continue
        given.per_day[day] = total
        if day >= month:
            given.month_count += row["n"]
            given.month_discount += total
        if day == today:
            given.today_count += row["n"]
            given.today_discount += total
    return list(found.values())


def codes_near_limit(*, rows: int = ROWS) -> list[NearLimit]:
    """The codes of promotions not archived that have used the most of their limit (from
    NEAR_LIMIT of it on), fullest first."""
    codes = (
        PromoCode.objects.filter(
            uselimit__isnull=False,
            uselimit__gt=0,
            promotion__archived=False,
            use_count__gte=Cast(F("uselimit"), MONEY) * NEAR_LIMIT,
        )
        .annotate(share=Cast(F("use_count"), FLOAT) / Cast(F("uselimit"), FLOAT))
        .select_related("promotion")
        .order_by("-share", "-use_count", "code")[:rows]
    )
    return [
        NearLimit(
            code=c.code,
            promotion=c.promotion.name,
            uses=c.use_count,
            limit=c.uselimit,
            url=reverse("admin:promotions_promocode_change", args=[c.pk]),
        )
        for c in codes
    ]


def budgets_burning(*, at: datetime.datetime, rows: int = ROWS) -> list[BudgetBurn]:
    """The live promotions with a budget that have spent the most of it this budget period
    (a day, a month or in total), fullest first."""
    promotions = (
        with_budget_spent(
            Promotion.objects.live(timezone.localdate(at)).filter(budget__gt=0), at=at
        )
        # A share only ranks, so floating point serves (SQLite divides decimals as text).
        .annotate(
            share=Cast(Coalesce(F("budget_spent"), Value(Decimal(0)), output_field=MONEY), FLOAT)
            / Cast(F("budget"), FLOAT)
        )
        .select_related("provider__currency")
        .order_by("-share", "pk")[:rows]
    )
    return [
        BudgetBurn(
            promotion=p.name,
            period=p.get_budget_period_display(),
            spent=money_shown(p.budget_spent or Decimal(0), p.provider.currency),
            budget=money_shown(p.budget, p.provider.currency),
            share=int((p.budget_spent or 0) * 100 / p.budget),
            url=reverse("admin:promotions_promotion_change", args=[p.pk]),
        )
        for p in promotions
    ]


def _amounts(rows, minor_units: dict[str, int], field_name: str) -> list[Amount]:
    found = []
    for row in rows:
        amount = _amount(row[field_name])
        if amount:
            iso = row["currency__iso"]
            found.append(Amount(amount, iso, minor_units.get(iso, 2)))
    return found


def dashboard(*, at: datetime.datetime | None = None) -> Dashboard:
    at = at or timezone.now()
    today = timezone.localdate(at)
    month = today.replace(day=1)
    month_start = timezone.make_aware(datetime.datetime.combine(month, datetime.time.min))
    minor_units = dict(Currency.objects.values_list("iso", "minor_units"))
    ledger = list(reward_sums(Reward.objects.all(), at=at))
    payouts = Payout.objects.order_by().values("currency__iso")
    paid = payouts.filter(created_at__gte=month_start).exclude(status=Payout.Status.FAILED)
    paid = paid.annotate(total=Sum("amount")).order_by("currency__iso")
    waiting = payouts.filter(status=Payout.Status.PENDING)
    waiting = list(waiting.annotate(total=Sum("amount"), n=Count("id")).order_by("currency__iso"))
    jobs = dict(
        Job.objects.filter(
            Q(status__in=[Job.Status.RUNNING, Job.Status.QUEUED])
            | Q(status=Job.Status.FAILED, created_at__gte=at - datetime.timedelta(days=7))
        )
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    failed = (
        list(
            Job.objects.filter(
                status=Job.Status.FAILED, created_at__gte=at - datetime.timedelta(days=7)
            ).order_by("-id")[:5]
        )
        if jobs.get(Job.Status.FAILED)
        else []
    )
    accrual = Schedule.objects.filter(name=ACCRUAL).select_related("last_job").first()
    return Dashboard(
        today=today,
        month=month,
        live_promotions=Promotion.objects.live(today).count(),
        given=given_per_currency(today=today, minor_units=minor_units),
        days=[today - datetime.timedelta(days=i) for i in range(DAYS_CHARTED - 1, -1, -1)],
        codes_near_limit=codes_near_limit(),
        budgets=budgets_burning(at=at),
        held=_amounts(ledger, minor_units, "held"),
        payable=_amounts(ledger, minor_units, "payable"),
        paid_this_month=_amounts(paid, minor_units, "total"),
        payouts_waiting=sum(row["n"] for row in waiting),
        payouts_waiting_amounts=_amounts(waiting, minor_units, "total"),
        jobs_running=jobs.get(Job.Status.RUNNING, 0),
        jobs_queued=jobs.get(Job.Status.QUEUED, 0),
        jobs_failed=jobs.get(Job.Status.FAILED, 0),
        jobs_failed_recent=failed,
        last_accrual=accrual.last_job if accrual else None,
        last_accrual_figures=accrual.last_figures if accrual else {},
        accrual_next=accrual.next_run_at if accrual else None,
    )
