"""32 processes redeem one code with uselimit 100, then distinct codes: exact counts, speed, latency.

Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/redeem_contention.py
"""

import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

WORKERS = int(os.environ.get("BENCH_WORKERS", "32"))
ATTEMPTS_PER_WORKER = int(os.environ.get("BENCH_ATTEMPTS", "10"))
USELIMIT = 100
DB_NAME = "bench_redeem_contention"


def _redeem_many(job):
    """In a worker process: redeem each (client, code, key) and time every attempt."""
    from decimal import Decimal

    from django.db import connections
    from django.utils import timezone

    from common.actors import Actor
    from promotions.engine import Line, Order
    from promotions.services import RedemptionRefused, redemption_redeem

    provider_id, tariff_id, attempts = job
    latencies, ok, refused = [], 0, 0
    for client_id, code, key in attempts:
        order = Order(
            client_id=client_id,
            provider_id=provider_id,
            at=timezone.now(),
            codes=(code,),
            lines=(Line(tariff_id, 12, Decimal("100.00"), "USD"),),
        )
        started = time.perf_counter()
        try:
            redemption_redeem(order=order, idempotency_key=key, actor=Actor.system("bench"))
            ok += 1
        except RedemptionRefused:
            refused += 1
        latencies.append(time.perf_counter() - started)
    connections.close_all()
    return latencies, ok, refused


def _run(pool, jobs):
    started = time.perf_counter()
    results = pool.map(_redeem_many, jobs)
    elapsed = time.perf_counter() - started
    latencies = sorted(x for r in results for x in r[0])
    return {
        "attempts": len(latencies),
        "succeeded": sum(r[1] for r in results),
        "refused": sum(r[2] for r in results),
        "seconds": round(elapsed, 3),
        "attempts_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def main() -> None:
    with _common.bench_database("redeem_contention", DB_NAME) as ready:
        if not ready:
            return
        from django.db import connections

        from promotions.models import PromoCode, PromoCodeUsage
        from tests.factories import (
            ClientFactory,
            DiscountFactory,
            PromoCodeFactory,
            PromotionFactory,
            TariffFactory,
        )

        promotion = PromotionFactory()
        DiscountFactory(promotion=promotion)
        provider = promotion.provider
        tariff = TariffFactory(provider=provider)
        shared = PromoCodeFactory(promotion=promotion, code="SHARED", uselimit=USELIMIT)
        total = WORKERS * ATTEMPTS_PER_WORKER
        clients = [ClientFactory(provider=provider).pk for _ in range(total)]
        distinct = [
            PromoCodeFactory(promotion=promotion, code=f"OWN{i:05d}", uselimit=1).code
            for i in range(total)
        ]
        connections.close_all()
        _common.log(f"{WORKERS} workers x {ATTEMPTS_PER_WORKER} attempts, uselimit {USELIMIT}")

        def jobs(codes, prefix):
            attempts = [
                (c, code, f"{prefix}-{i}")
                for i, (c, code) in enumerate(zip(clients, codes, strict=True))
            ]
            return [(provider.pk, tariff.pk, attempts[w::WORKERS]) for w in range(WORKERS)]

        with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
            one_code = _run(pool, jobs(["SHARED"] * total, "shared"))
            own_codes = _run(pool, jobs(distinct, "own"))
        shared.refresh_from_db()
        live = PromoCodeUsage.objects.filter(promocode=shared, status="active").count()
        exhausted = PromoCode.objects.filter(code__startswith="OWN", use_count=1).count()
        ok = shared.use_count == live == USELIMIT and exhausted == total
        _common.emit(
            {
                "bench": "redeem_contention",
                "database": "postgresql",
                "workers": WORKERS,
                "uselimit": USELIMIT,
                "one_code_use_count": shared.use_count,
                "one_code_usage_rows": live,
                "one_code": one_code,
                "distinct_codes_used": exhausted,
                "distinct_codes": own_codes,
                "redemptions_per_s": own_codes["attempts_per_s"],
                "p50_ms": own_codes["p50_ms"],
                "p99_ms": own_codes["p99_ms"],
                "targets": {"use_count_equals_limit": True},
                "ok": ok,
            }
        )
        connections.close_all()


if __name__ == "__main__":
    main()
