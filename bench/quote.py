"""Quote a 5-line order against 10, 100 and 1,000 live promotions (3 conditions, 2 discounts each).

Reports SQL queries per quote at each size (must not grow) and p50/p99 latency.
Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/quote.py
"""

import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

SIZES = (10, 100, 1000)
TIMED_QUOTES = int(os.environ.get("BENCH_QUOTES", "50"))
DB_NAME = "bench_quote"


def build_promotions(count, provider, tariffs, group):
    from promotions.models import Condition, Discount, Promotion
    from tests.factories import PromotionFactory

    promotions = PromotionFactory.create_batch(count, provider=provider)
    Discount.objects.bulk_create(
        Discount(promotion=p, percentage=Decimal(1 + i % 40), actiontype=a, period=period)
        for i, p in enumerate(promotions)
        for a, period in (("order", []), ("all", [12]))
    )
    Condition.objects.bulk_create(
        c
        for p in promotions
        for c in (
            Condition(promotion=p, ctype=Condition.Type.SERVICE_COUNT, amount=0),
            Condition(
                promotion=p,
                ctype=Condition.Type.EXPENSE_SUM,
                summa=Decimal(0),
                currency=provider.currency,
                periodtype="month",
                periodlength=1 + p.pk % 3,
            ),
            Condition(promotion=p, ctype=Condition.Type.ACCOUNT_GROUP, account_group=group),
        )
    )
    return Promotion.objects.count()


def main() -> None:
    with _common.bench_database("quote", DB_NAME) as ready:
        if not ready:
            return
        from django.db import connection, connections
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from promotions.engine import Line, Order, quote_order
        from tests.factories import (
            ClientFactory,
            ClientGroupFactory,
            ExpenseFactory,
            ProviderFactory,
            ServiceFactory,
            TariffFactory,
        )

        provider = ProviderFactory()
        tariffs = TariffFactory.create_batch(5, provider=provider)
        group = ClientGroupFactory()
        client = ClientFactory(provider=provider)
        client.groups.add(group)
        ServiceFactory.create_batch(3, client=client, tariff=tariffs[0], status="active")
        ExpenseFactory.create_batch(5, client=client, currency=provider.currency)
        order = Order(
            client_id=client.pk,
            provider_id=provider.pk,
            at=timezone.now(),
            lines=tuple(Line(t.pk, 12, Decimal("100.00"), "USD") for t in tariffs),
        )
        queries, latency = {}, {}
        built = 0
        for size in SIZES:
            built = build_promotions(size - built, provider, tariffs, group)
            with CaptureQueriesContext(connection) as ctx:
                quote = quote_order(order=order)
            assert all(lq.promotion_id for lq in quote.lines)
            queries[str(size)] = len(ctx.captured_queries)
            timings = []
            for _ in range(TIMED_QUOTES if size == SIZES[-1] else 10):
                started = time.perf_counter()
                quote_order(order=order)
                timings.append(time.perf_counter() - started)
            timings.sort()
            latency[str(size)] = {
                "p50_ms": round(statistics.median(timings) * 1000, 1),
                "p99_ms": round(timings[max(0, int(len(timings) * 0.99) - 1)] * 1000, 1),
            }
            _common.log(f"{size} promotions: {queries[str(size)]} queries, {latency[str(size)]}")
        constant = len(set(queries.values())) == 1
        _common.emit(
            {
                "bench": "quote",
                "database": "postgresql",
                "lines": len(order.lines),
                "queries_per_quote": queries,
                "queries_constant": constant,
                "latency_by_promotions": latency,
                "p50_ms": latency[str(SIZES[-1])]["p50_ms"],
                "p99_ms": latency[str(SIZES[-1])]["p99_ms"],
                "ok": constant,
            }
        )
        connections.close_all()


if __name__ == "__main__":
    main()
