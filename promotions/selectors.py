"""Reads for promotions."""

import datetime
from decimal import Decimal

from django.db import models
from django.db.models import Case, Count, OuterRef, Subquery, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from common.groups import ConditionGroups
from common.models import Job
from promotions.backtest import BACKTEST
from promotions.engine.budgets import budget_period_key
from promotions.models import (
    BacktestOrder,
    BudgetSpend,
    PromoCode,
    PromoCodeUsage,
    Promotion,
    Redemption,
)


def _usages(**filters) -> models.QuerySet[PromoCodeUsage]:
    return (
        PromoCodeUsage.objects.filter(**filters)
        .select_related("promocode", "client", "redemption")
        .order_by("id")
    )


def usages_of_promotion(*, promotion: Promotion) -> models.QuerySet[PromoCodeUsage]:
    return _usages(promocode__promotion=promotion)


def usages_of_promocode(*, promocode: PromoCode) -> models.QuerySet[PromoCodeUsage]:
    return _usages(promocode=promocode)


def usage_charge(usage: PromoCodeUsage) -> str:
    """What the redeemed order charges on the lines the use discounted ("9.00 USD"), as its
    redemption's quote says; empty for a use without a redemption."""
    if usage.redemption is None:
        return ""
    code = usage.promocode.code
    lines = [
        ln
        for ln in usage.redemption.quote["lines"]
        # A line names its first promotion's code; stacked ones are in `applied`.
        if ln["code"] == code or any(a["code"] == code for a in ln.get("applied", ()))
    ]
    if not lines:
        return ""
    charged = sum((Decimal(ln["final_price"]) for ln in lines), Decimal(0))
    return f"{charged} {lines[0]['currency']}"


def redemption_as_dict(*, redemption: Redemption) -> dict:
    """The redemption's stored quote with its live status and usages."""
    usages = redemption.usages.select_related("promocode").order_by("id")
    return {
        "id": redemption.pk,
        "status": redemption.status,
        "idempotency_key": redemption.idempotency_key,
        **redemption.quote,
        "usages": [
            {
                "id": u.pk,
                "code": u.promocode.code,
                "promotion": u.promocode.promotion_id,
                "status": u.status,
            }
            for u in usages
        ],
    }


def conditions_expression(*, promotion: Promotion) -> str:
    """The promotion's conditions as they combine: `(A OR B) AND C`; empty when there are none."""
    conditions = promotion.conditions.select_related(
        "pricelist", "currency", "account_group", "affiliate"
    )
    return ConditionGroups.of(conditions).expression(
        lambda c: c.describe(), grouped=lambda c: bool(c.group_id)
    )


def redemptions_per_day(
    *, promotion: Promotion, days: int = 30, today: datetime.date | None = None
) -> list[tuple[datetime.date, int]]:
    """Code uses per day over the last `days` days, released ones included, zeros kept."""
    today = today or timezone.localdate()
    first = today - datetime.timedelta(days=days - 1)
    counts = dict(
        PromoCodeUsage.objects.filter(promocode__promotion=promotion, created_at__date__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return [
        (first + datetime.timedelta(days=i), counts.get(first + datetime.timedelta(days=i), 0))
        for i in range(days)
    ]


BACKTEST_CSV_COLUMNS = [
    "charged_at",
    "expense",
    "client",
    "client_name",
    "tariff",
    "tariff_name",
    "kind",
    "period",
    "price",
    "currency",
    "discount_alone",
    "discount",
    "winner",
    "winner_name",
]


def backtest_rows(*, run: str):
    """A backtest's qualifying orders in the order they were charged, as CSV rows (streamed)."""
    return (
        BacktestOrder.objects.filter(run=run)
        .order_by("charged_at", "id")
        .values_list(
            "charged_at",
            "expense_id",
            "client_id",
            "client__name",
            "tariff_id",
            "tariff__name",
            "kind",
            "period",
            "price",
            "currency__iso",
            "discount_alone",
            "discount",
            "winner_id",
            "winner__name",
        )
        .iterator(chunk_size=2000)
    )


def backtests_of(*, promotion: Promotion) -> list[Job]:
    """The promotion's latest backtests, newest first."""
    return list(Job.objects.filter(kind=BACKTEST, params__promotion=promotion.pk)[:20])


def budget_spends(*, promotion: Promotion, periods: int = 30) -> list[tuple[str, Decimal]]:
    """What the promotion gave in each of its last budget periods (oldest first), as the guarded
    budget rows hold it."""
    rows = BudgetSpend.objects.filter(promotion=promotion).order_by("-period")[:periods]
    return [(row.period, row.spent) for row in reversed(rows)]


def with_budget_spent(
    promotions: models.QuerySet[Promotion], *, at: datetime.datetime | None = None
) -> models.QuerySet[Promotion]:
    """Each promotion with `budget_spent`: what it gave in its current budget period (one
    subquery, not a query per promotion)."""
    at = at or timezone.now()
    current = Case(
        *(
            When(budget_period=kind, then=Value(budget_period_key(kind, at)))
            for kind in Promotion.BudgetPeriod.values
        ),
        output_field=models.CharField(),
    )
    spent = BudgetSpend.objects.filter(
        promotion=OuterRef("pk"), period=OuterRef("budget_key")
    ).values("spent")[:1]
    return promotions.annotate(budget_key=current).annotate(budget_spent=Subquery(spent))


def budget_burn(*, promotion: Promotion) -> str:
    """ "40.00 / 100.00 (40%)" in the current budget period (`with_budget_spent`); empty without
    a budget."""
    if promotion.budget is None:
        return ""
    spent = getattr(promotion, "budget_spent", None) or Decimal(0)
    share = f" ({spent * 100 / promotion.budget:.0f}%)" if promotion.budget else ""
    return f"{spent:.2f} / {promotion.budget:.2f}{share}"
