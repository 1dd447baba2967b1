"""Reads for promotions."""

import datetime
import re
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, models
from django.db.models import (
    Case,
    Count,
    OuterRef,
    Prefetch,
    Subquery,
    Value,
    When,
    prefetch_related_objects,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from billing.models import Tariff
from billing.selectors import money_shown
from common.groups import ConditionGroups
from common.models import Job
from common.money import MONEY_DECIMAL_PLACES
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
    return money_shown(charged, lines[0]["currency"])


def redemption_usages(*, redemption: Redemption) -> list[PromoCodeUsage]:
    """The redemption's usages with their codes, in id order: a new redemption's as its write
    made them, any other's read (or prefetched)."""
    if redemption.written_usages is not None:
        return sorted(redemption.written_usages, key=lambda u: u.pk)
    prefetch_related_objects(
        [redemption],
        Prefetch("usages", queryset=PromoCodeUsage.objects.select_related("promocode")),
    )
    return sorted(redemption.usages.all(), key=lambda u: u.pk)


def redemption_as_dict(*, redemption: Redemption) -> dict:
    """The redemption's stored quote with its live status and usages."""
    usages = redemption_usages(redemption=redemption)
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


# Figures ----------------------------------------------------------------------------------------

# What each redeemed line gave, per promotion and currency: the lines live in the redemption's
# stored quote (JSON), so the database unnests them (json_each / jsonb_array_elements) and sums.
_DISCOUNT_GIVEN_SQL = {
    "sqlite": """
        SELECT CAST(json_extract(line.value, '$.promotion') AS INTEGER),
               json_extract(line.value, '$.currency'),
               SUM(CAST(json_extract(line.value, '$.discount') AS REAL)),
               COUNT(DISTINCT r.id)
        FROM {table} AS r, json_each(r.quote, '$.lines') AS line
        WHERE r.status = 'active' AND r.provider_id IN ({providers})
          AND CAST(json_extract(line.value, '$.promotion') AS INTEGER) IN ({promotions})
        GROUP BY 1, 2
    """,
    "postgresql": """
        SELECT (line->>'promotion')::bigint, line->>'currency', SUM((line->>'discount')::numeric),
               COUNT(DISTINCT r.id)
        FROM {table} AS r, jsonb_array_elements(r.quote->'lines') AS line
        WHERE r.status = 'active' AND r.provider_id IN ({providers})
          AND (line->>'promotion')::bigint IN ({promotions})
        GROUP BY 1, 2
    """,
}


@dataclass(frozen=True)
class PromotionFigures:
    """What a promotion's live (not released) redemptions got from it: how many orders it
    discounted, and the discount given per currency."""

    uses: int = 0
    given: dict[str, Decimal] = field(default_factory=dict)


def promotion_figures(*, promotions: list[Promotion]) -> dict[int, PromotionFigures]:
    """Each promotion's figures, in one query; a promotion never redeemed is absent."""
    if not promotions:
        return {}
    sql = _DISCOUNT_GIVEN_SQL[connection.vendor].format(
        table=connection.ops.quote_name(Redemption._meta.db_table),
        providers=", ".join(["%s"] * len({p.provider_id for p in promotions})),
        promotions=", ".join(["%s"] * len(promotions)),
    )
    params = [*sorted({p.provider_id for p in promotions}), *(p.pk for p in promotions)]
    uses: dict[int, int] = {}
    given: dict[int, dict[str, Decimal]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for promotion_id, currency, total, redemptions in cursor.fetchall():
            # SQLite sums in floating point: back to the ledger's places.
            amount = Decimal(str(total)).quantize(Decimal(1).scaleb(-MONEY_DECIMAL_PLACES))
            uses[promotion_id] = uses.get(promotion_id, 0) + redemptions
            if amount:
                given.setdefault(promotion_id, {})[currency] = amount
    return {pid: PromotionFigures(uses[pid], given.get(pid, {})) for pid in uses}


def promotions_with_code_counts(
    queryset: models.QuerySet[Promotion],
) -> models.QuerySet[Promotion]:
    """Promotions annotated with their codes' count (one query with the page)."""
    codes = PromoCode.objects.filter(promotion=models.OuterRef("pk"))
    return queryset.annotate(
        code_total=Coalesce(
            models.Subquery(
                codes.order_by().values("promotion").annotate(n=Count("id")).values("n"),
                output_field=models.IntegerField(),
            ),
            0,
        ),
    )


# A quote for people ------------------------------------------------------------------------------

# The engine's reasons name promotions by id ("not chosen: promotion 7 gives 36.00, ...") and
# amounts without their currency, as the API answers them; people read names and currencies.
_PROMOTION_ID = re.compile(r"\bpromotion (\d+)\b")
# A decimal amount, not a percentage and not already followed by its currency's code.
_AMOUNT = re.compile(r"(?<![\w.,])(-?\d+\.\d+)(?![\d.]|\s*%|\s+[A-Z]{3}\b)")


def reason_for_people(reason: str, *, names: dict[int, str], currency: str) -> str:
    """`promotion 7 gives 36.00` -> `Black Friday gives 36.00 USD`."""
    named = _PROMOTION_ID.sub(lambda m: names.get(int(m.group(1)), m.group(0)), reason)
    return _AMOUNT.sub(lambda m: money_shown(Decimal(m.group(1)), currency), named)


def quote_for_people(data: dict) -> dict:
    """A quote as `quote_as_dict` answers it, with names for ids (tariffs, promotions, in every
    reason too) and every amount in the one money format with its currency (two queries)."""
    currency = data["lines"][0]["currency"] if data["lines"] else ""
    reasons = [v["reason"] for line in data["lines"] for v in line["verdicts"]]
    reasons += [c["reason"] for c in data["codes"]]
    ids = {v["promotion"] for line in data["lines"] for v in line["verdicts"]}
    ids |= {a["promotion"] for line in data["lines"] for a in line["applied"]}
    ids |= {int(m) for reason in reasons for m in _PROMOTION_ID.findall(reason)}
    names = dict(Promotion.objects.filter(pk__in=ids).values_list("pk", "name"))
    tariffs = dict(
        Tariff.objects.filter(pk__in={line["tariff"] for line in data["lines"]}).values_list(
            "pk", "name"
        )
    )

    def said(reason: str) -> str:
        return reason_for_people(reason, names=names, currency=currency)

    def shown(amount: str) -> str:
        return money_shown(Decimal(amount), currency)

    return {
        **data,
        "currency": currency,
        "total": shown(data["total"]),
        "discount_total": shown(data["discount_total"]),
        "codes": [{**c, "reason": said(c["reason"])} for c in data["codes"]],
        "lines": [
            {
                **line,
                "tariff": tariffs.get(line["tariff"], line["tariff"]),
                # Stacked promotions are named in their order: "Stack 5% + Loyalty 10 off".
                "promotion": " + ".join(names[a["promotion"]] for a in line["applied"]),
                "code": " + ".join(a["code"] for a in line["applied"] if a["code"]),
                "price": shown(line["price"]),
                "discount": shown(line["discount"]),
                "final_price": shown(line["final_price"]),
                "verdicts": [
                    {
                        **v,
                        "promotion": names.get(v["promotion"], v["promotion"]),
                        "reason": said(v["reason"]),
                    }
                    for v in line["verdicts"]
                ],
            }
            for line in data["lines"]
        ],
    }


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
    """ "40.00 USD of 100.00 USD (40%)" in the current budget period (`with_budget_spent`);
    empty without a budget. A budget is in the provider's currency."""
    if promotion.budget is None:
        return ""
    spent = getattr(promotion, "budget_spent", None) or Decimal(0)
    share = f" ({spent * 100 / promotion.budget:.0f}%)" if promotion.budget else ""
    currency = promotion.provider.currency
    return f"{money_shown(spent, currency)} of {money_shown(promotion.budget, currency)}{share}"
