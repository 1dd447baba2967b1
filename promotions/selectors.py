"""Reads for promotions."""

import datetime
from decimal import Decimal

from django.db import models
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from common.groups import ConditionGroups
from common.models import Job
from promotions.backtest import BACKTEST
from promotions.models import BacktestOrder, PromoCode, PromoCodeUsage, Promotion, Redemption


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
    lines = [ln for ln in usage.redemption.quote["lines"] if ln["code"] == usage.promocode.code]
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
