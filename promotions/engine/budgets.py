"""Budgets as a quote reads them: which period an order falls in, what a promotion has left in it
and what the order needs. Reading reserves nothing: a redemption reserves with a guarded update
(promotions.services.redemption)."""

import datetime
from decimal import ROUND_DOWN, Decimal

from django.db import connection
from django.utils import timezone

from common.money import money_round
from common.rawsql import Columns
from promotions.engine.types import BudgetView
from promotions.models import BudgetSpend, ClientBudgetSpend

TOTAL = "total"
_SPENT = Columns(BudgetSpend, "promotion_id", "spent")
_CLIENT_SPENT = Columns(ClientBudgetSpend, "promotion_id", "spent")


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
    in one hand-written statement (the promotions' spends and the client's; see common.rawsql)."""
    budgeted = [(pid, n[0]) for pid, n in sorted(needs.items()) if n[2] is not None]
    client_budgeted = [(pid, n[0]) for pid, n in sorted(needs.items()) if n[3] is not None]
    spent: dict[int, Decimal] = {}
    client_spent: dict[int, Decimal] = {}
    selects, params = [], []
    for kind, columns, keys, extra in (
        (0, _SPENT, budgeted, ""),
        (1, _CLIENT_SPENT, client_budgeted, "client_id = %s AND "),
    ):
        if keys:
            selects.append(
                f"SELECT {kind}, {columns.sql(qualified=False)} FROM {columns.table} "
                f"WHERE {extra}({' OR '.join(['(promotion_id = %s AND period = %s)'] * len(keys))})"
            )
            params += [*([client_id] if extra else []), *(v for key in keys for v in key)]
    if selects:
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(selects), params)
            for kind, *row in cursor.fetchall():
                pid, used = _SPENT.convert(row)
                (client_spent if kind else spent)[pid] = used

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
