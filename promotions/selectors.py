"""Reads for promotions."""

import datetime

from django.db import models
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from common.groups import grouped_terms
from promotions.models import PromoCode, PromoCodeUsage, Promotion, Redemption


def promotion_status_q(status: Promotion.Status, *, day: datetime.date) -> Q:
    """The promotions whose status on `day` is `status`, as a filter the database can run."""
    live = Q(archived=False)
    started = Q(fromdate__lte=day)
    not_ended = Q(todate__isnull=True) | Q(todate__gte=day)
    return {
        Promotion.Status.ARCHIVED: Q(archived=True),
        Promotion.Status.PLANNED: live & Q(fromdate__gt=day),
        Promotion.Status.EXPIRED: live & Q(todate__lt=day),
        Promotion.Status.ACTIVE: live & started & not_ended,
    }[status]


def _usages(**filters) -> models.QuerySet[PromoCodeUsage]:
    return (
        PromoCodeUsage.objects.filter(**filters)
        .select_related("promocode", "client", "expense__currency")
        .order_by("id")
    )


def usages_of_promotion(*, promotion: Promotion) -> models.QuerySet[PromoCodeUsage]:
    return _usages(promocode__promotion=promotion)


def usages_of_promocode(*, promocode: PromoCode) -> models.QuerySet[PromoCodeUsage]:
    return _usages(promocode=promocode)


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
    terms = grouped_terms(
        promotion.conditions.select_related("pricelist", "currency", "account_group", "affiliate")
    )
    parts = []
    for members in terms:
        text = " OR ".join(c.describe() for c in members)
        parts.append(f"({text})" if len(members) > 1 or members[0].group_id else text)
    return " AND ".join(parts)


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
