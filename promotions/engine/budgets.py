"""Budgets as a quote reads them: which period an order falls in, what a promotion has left in it
and what the order needs. Reading reserves nothing: a redemption reserves with a guarded update
(promotions.services.redemption)."""

import datetime
from decimal import ROUND_DOWN, Decimal

from django.db.models import Q
from django.utils import timezone

from common.money import money_round
from promotions.engine.types import BudgetView

TOTAL = "total"


def budget_period_key(period: str, at: datetime.datetime) -> str:
    """The budget period `at` falls in, in the server's time zone: "total", "2026-11-29" or
    "2026-11" (a day budget renews at local midnight, a month budget on the 1st)."""
    if period == "day":
        return timezone.localdate(at).isoformat()
    if period == "month":
        return timezone.localdate(at).strftime("%Y-%m")
    return TOTAL


def budgets_left(
    *,
    client_id: int,
    needs: dict[int, tuple[str, Decimal, Decimal | None, Decimal | None]],
    minor_units: int,
) -> list[BudgetView]:
    """For each promotion: (period, what the order needs, budget, client budget) -> what is left,
    in two queries (the promotions' spends and the client's)."""
    from promotions.models import BudgetSpend, ClientBudgetSpend

    def of(model, extra: dict, which: list[int]) -> dict[int, Decimal]:
        if not which:
            return {}
        q = Q()
        for pid in which:
            q |= Q(promotion_id=pid, period=needs[pid][0])
        rows = model.objects.filter(q, **extra).values_list("promotion_id", "spent")
        return dict(rows)

    spent = of(BudgetSpend, {}, [p for p, n in needs.items() if n[2] is not None])
    client_spent = of(
        ClientBudgetSpend,
        {"client_id": client_id},
        [p for p, n in needs.items() if n[3] is not None],
    )

    def left_of(limit: Decimal | None, used: Decimal) -> Decimal | None:
        if limit is None:
            return None
        # Rounded down: what is left is never shown as more than may be given.
        return money_round(
            max(limit - used, Decimal(0)), minor_units=minor_units, rounding=ROUND_DOWN
        )

    views = []
    for pid, (period, need, budget, client_budget) in sorted(needs.items()):
        left = left_of(budget, spent.get(pid, Decimal(0)))
        client_left = left_of(client_budget, client_spent.get(pid, Decimal(0)))
        views.append(BudgetView(pid, period, need, left, client_left))
    return views
