"""Quote a 5-line order against 10, 100 and 1,000 live promotions (3 conditions, 2 discounts each).

Every promotion covers every line and every condition holds, so each line has 1,000 candidates.
At each size, side by side: the default answer (winner, runner-up, near misses) and the explained
one (every promotion's verdict on every line), p50/p99 over warm quotes (the compiled rule set is
built by the first quote after a change and reported as `compile_ms`), and SQL queries per quote.

Targets (issue 13): flatness = p50 at 1,000 / p50 at 10 in the default answer <= 2;
flatness_explain = the same explained <= 5; queries per quote constant.
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
TIMED_QUOTES = int(os.environ.get("BENCH_QUOTES", "100"))
DB_NAME = "bench_quote"


def build_promotions(count, provider, tariffs, group):
    from promotions.engine.rules import rules_version_bump
    from promotions.models import Condition, Discount
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
    # Written in bulk, around the services: the provider's rules version moves as theirs would.
    rules_version_bump(provider_id=provider.pk)


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

        def catalogue(size: int) -> Order:
            """A provider of its own with `size` promotions and the same client and order shape."""
            provider = ProviderFactory()
            tariffs = TariffFactory.create_batch(5, provider=provider)
            group = ClientGroupFactory()
            client = ClientFactory(provider=provider)
            client.groups.add(group)
            ServiceFactory.create_batch(3, client=client, tariff=tariffs[0], status="active")
            ExpenseFactory.create_batch(5, client=client, currency=provider.currency)
            build_promotions(size, provider, tariffs, group)
            return Order(
                client_id=client.pk,
                provider_id=provider.pk,
                at=timezone.now(),
                lines=tuple(Line(t.pk, 12, Decimal("100.00"), "USD") for t in tariffs),
            )

        def timed(order: Order, explain: bool, runs: int) -> dict[str, float]:
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                quote_order(order=order, explain=explain)
                timings.append(time.perf_counter() - started)
            timings.sort()
            return {
                "p50_ms": round(statistics.median(timings) * 1000, 2),
                "p99_ms": round(timings[max(0, int(len(timings) * 0.99) - 1)] * 1000, 2),
            }

        orders = {size: catalogue(size) for size in SIZES}
        queries, compile_ms = {}, {}
        for size, order in orders.items():
            started = time.perf_counter()
            quote_order(order=order)  # compiles the provider's rule set
            compile_ms[str(size)] = round((time.perf_counter() - started) * 1000, 1)
            with CaptureQueriesContext(connection) as ctx:
                quote = quote_order(order=order)
            assert all(lq.promotion_id for lq in quote.lines)
            assert len(quote_order(order=order, explain=True).lines[0].verdicts) == size
            queries[str(size)] = len(ctx.captured_queries)
        # Blocks of 10 quotes alternate across the sizes and the two modes, so the machine's noise
        # falls on every size alike; each figure is the median of its blocks.
        blocks = {(size, explain): [] for size in SIZES for explain in (False, True)}
        for _ in range(TIMED_QUOTES // 10):
            for size, order in orders.items():
                for explain in (False, True):
                    blocks[size, explain].append(timed(order, explain, 10))
        latency = {
            str(size): {
                mode: {
                    k: round(statistics.median(r[k] for r in blocks[size, explain]), 2)
                    for k in ("p50_ms", "p99_ms")
                }
                for mode, explain in (("default", False), ("explain", True))
            }
            for size in SIZES
        }
        for size in SIZES:
            _common.log(
                f"{size} promotions: {queries[str(size)]} queries, compile "
                f"{compile_ms[str(size)]} ms, {latency[str(size)]}"
            )
        constant = len(set(queries.values())) == 1
        small, large = str(SIZES[0]), str(SIZES[-1])
        flatness = latency[large]["default"]["p50_ms"] / latency[small]["default"]["p50_ms"]
        flatness_explain = latency[large]["explain"]["p50_ms"] / latency[small]["explain"]["p50_ms"]
        targets = {
            "flatness": {"target": "<= 2", "ok": flatness <= 2},
            "flatness_explain": {"target": "<= 5", "ok": flatness_explain <= 5},
            "queries_constant": {"target": "true", "ok": constant},
        }
        _common.emit(
            {
                "bench": "quote",
                "database": "postgresql",
                "lines": len(order.lines),
                "queries": queries,
                "queries_per_quote": queries,
                "queries_constant": constant,
                "compile_ms": compile_ms,
                "latency_by_promotions": latency,
                "p50_ms_10": latency[small]["default"]["p50_ms"],
                "p50_ms_1000": latency[large]["default"]["p50_ms"],
                "p50_ms_explain_10": latency[small]["explain"]["p50_ms"],
                "p50_ms_explain_1000": latency[large]["explain"]["p50_ms"],
                "flatness": round(flatness, 2),
                "flatness_explain": round(flatness_explain, 2),
                "p50_ms": latency[large]["default"]["p50_ms"],
                "p99_ms": latency[large]["default"]["p99_ms"],
                "targets": targets,
                "ok": all(t["ok"] for t in targets.values()),
            }
        )
        connections.close_all()


if __name__ == "__main__":
    main()
