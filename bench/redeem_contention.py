"""32 processes redeem one code with uselimit 100, then distinct codes: exact counts, speed, latency.
Then, with 1,000 live promotions, 16 processes redeem one hot code with a large uselimit:
`hot_code_rps` (target >= 100) and `lock_ms_p50`, how long a redemption holds the code's row lock
(from its guarded update to the commit).
Budgets: 16 processes redeem one promotion with a money budget, alternating with the same run
against a promotion without one: `budget_rps`, `budget_ratio` (target >= 0.8); then 16 processes
race for a budget of 100.00 with orders worth 10.00 each: `budget_overspend` (must be 0.00).

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
HOT_WORKERS = int(os.environ.get("BENCH_HOT_WORKERS", "16"))
HOT_ATTEMPTS = int(os.environ.get("BENCH_HOT_ATTEMPTS", "25"))
CATALOGUE = 1000
BUDGET_WORKERS = int(os.environ.get("BENCH_BUDGET_WORKERS", "16"))
BUDGET_ATTEMPTS = int(os.environ.get("BENCH_BUDGET_ATTEMPTS", "25"))
BUDGET_PAIRS = int(os.environ.get("BENCH_BUDGET_PAIRS", "3"))
DB_NAME = "bench_redeem_contention"


def _redeem_many(job):
    """In a worker process: redeem each (client, code, key) and time every attempt."""
    from decimal import Decimal

    from django.db import connection, connections
    from django.utils import timezone

    from common.actors import Actor
    from promotions.engine import Line, Order
    from promotions.services import RedemptionRefused, redemption_redeem

    provider_id, tariff_id, attempts = job
    latencies, ok, refused, locks = [], 0, 0, []
    locked_at = []

    def note_lock(execute, sql, params, many, context):
        one_statement = "AS taken_id)" in sql
        if one_statement:
            # The one-statement redemption takes the lock inside its statement (after waiting
            # for it) and, outside a transaction, commits at its end: the statement notes the
            # database clock when its update holds the row, in a session setting read after.
            sql = sql.replace("AS taken_id)", "AS taken_id, clock_timestamp() AS at)", 1)
            sql = sql.replace(
                "1 / (SELECT COUNT(*) FROM ",
                "1 / (SELECT COUNT(*) FROM (SELECT set_config('bench.locked_at', "
                "(SELECT extract(epoch FROM at)::text FROM taken), false)) AS stamp, ",
            )
        result = execute(sql, params, many, context)
        if one_statement:
            returned_wall, returned = time.time(), time.perf_counter()
            with context["connection"].connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('bench.locked_at', true)")
                (stamp,) = cursor.fetchone()
            if stamp:
                locked_at.append(returned - (returned_wall - float(stamp)))
        elif sql.startswith("UPDATE") and "promocode" in sql:
            locked_at.append(time.perf_counter())  # the guarded update has the row lock now
        return result

    for client_id, code, key in attempts:
        order = Order(
            client_id=client_id,
            provider_id=provider_id,
            at=timezone.now(),
            codes=(code,),
            lines=(Line(tariff_id, 12, Decimal("100.00"), "USD"),),
        )
        started = time.perf_counter()
        locked_at.clear()
        try:
            with connection.execute_wrapper(note_lock):
                redemption_redeem(order=order, idempotency_key=key, actor=Actor.system("bench"))
            ok += 1
            # The commit is the last thing before the service returns.
            locks.append(time.perf_counter() - locked_at[-1])
        except RedemptionRefused:
            refused += 1
        latencies.append(time.perf_counter() - started)
    connections.close_all()
    return latencies, ok, refused, locks


def _run(pool, jobs):
    started = time.perf_counter()
    results = pool.map(_redeem_many, jobs)
    elapsed = time.perf_counter() - started
    latencies = sorted(x for r in results for x in r[0])
    locks = sorted(x for r in results for x in r[3])
    return {
        "lock_ms_p50": round(statistics.median(locks) * 1000, 2) if locks else None,
        "lock_ms_p99": round(locks[int(len(locks) * 0.99) - 1] * 1000, 2) if locks else None,
        "succeeded_per_s": round(sum(r[1] for r in results) / elapsed, 1),
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
        budget = _budgets()
        hot, hot_code = _hot_code(provider, tariff)
        hot_ok = (
            hot_code.use_count
            == hot["succeeded"] + hot["alone"]["succeeded"]
            == hot["attempts"] + hot["alone"]["attempts"]
        )
        ok = shared.use_count == live == USELIMIT and exhausted == total and hot_ok
        budget_ok = budget["budget_overspend"] == "0.00" and budget["budget_ratio"] >= 0.8
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
                "hot_code": hot,
                "hot_code_workers": HOT_WORKERS,
                "live_promotions": CATALOGUE + 1,
                "hot_code_rps": hot["succeeded_per_s"],
                "lock_ms_p50": hot["lock_ms_p50"],
                "lock_ms_p50_alone": hot["alone"]["lock_ms_p50"],
                **budget,
                "targets": {
                    "use_count_equals_limit": True,
                    "hot_code_rps": {"target": ">= 100", "ok": hot["succeeded_per_s"] >= 100},
                    "hot_code_use_count_equals_redemptions": hot_ok,
                    "budget_ratio": {"target": ">= 0.8", "ok": budget["budget_ratio"] >= 0.8},
                    "budget_overspend": {
                        "target": "0.00",
                        "ok": budget["budget_overspend"] == "0.00",
                    },
                },
                "ok": ok and hot["succeeded_per_s"] >= 100 and budget_ok,
            }
        )
        connections.close_all()


def _budgets() -> dict:
    """One promotion with a money budget and one without, each with an unlimited code, on their
    own provider: BUDGET_WORKERS processes redeem orders worth 10.00 against each in turn
    (alternating, BUDGET_PAIRS times, so the machine's drift falls on both); then the same
    processes race for a budget of 100.00."""
    from decimal import Decimal

    from django.db import connections
    from django.db.models import Sum

    from billing.models import Client
    from promotions.models import BudgetCharge, BudgetSpend, Redemption
    from tests.factories import (
        DiscountFactory,
        PromoCodeFactory,
        PromotionFactory,
        ProviderFactory,
        TariffFactory,
    )

    provider = ProviderFactory()
    tariff = TariffFactory(provider=provider)
    budgeted = PromotionFactory(provider=provider, budget=Decimal("1000000000"))
    plain = PromotionFactory(provider=provider)
    race = PromotionFactory(provider=provider, budget=Decimal("100"))
    for promotion, code in ((budgeted, "BUDGET"), (plain, "PLAIN"), (race, "RACE")):
        DiscountFactory(promotion=promotion, percentage=Decimal("10"))  # 10.00 of 100.00
        PromoCodeFactory(promotion=promotion, code=code)
    per_run = BUDGET_WORKERS * BUDGET_ATTEMPTS
    clients = [
        c.pk
        for c in Client.objects.bulk_create(
            Client(name=f"Budget {i}", provider=provider)
            for i in range(per_run * (2 * BUDGET_PAIRS + 1))
        )
    ]
    connections.close_all()

    def jobs(code: str, run: int):
        mine = clients[run * per_run : (run + 1) * per_run]
        attempts = [(c, code, f"{code}-{run}-{c}") for c in mine]
        return [
            (provider.pk, tariff.pk, attempts[w::BUDGET_WORKERS]) for w in range(BUDGET_WORKERS)
        ]

    _common.log(f"budgets: {BUDGET_WORKERS} workers x {BUDGET_ATTEMPTS}, {BUDGET_PAIRS} pairs")
    runs = {"PLAIN": [], "BUDGET": []}
    with multiprocessing.get_context("fork").Pool(BUDGET_WORKERS) as pool:
        for pair in range(BUDGET_PAIRS):
            for code in ("PLAIN", "BUDGET") if pair % 2 == 0 else ("BUDGET", "PLAIN"):
                result = _run(pool, jobs(code, len(runs["PLAIN"]) + len(runs["BUDGET"])))
                _common.log(f"  {code}: {result['succeeded_per_s']}/s")
                runs[code].append(result)
        racing = _run(pool, jobs("RACE", 2 * BUDGET_PAIRS))

    def rate(results):
        return round(sum(r["succeeded"] for r in results) / sum(r["seconds"] for r in results), 1)

    spent = BudgetSpend.objects.get(promotion=race, period="total").spent
    charged = BudgetCharge.objects.filter(
        promotion=race, redemption__status=Redemption.Status.ACTIVE
    ).aggregate(s=Sum("amount"))["s"]
    budget_spent = BudgetSpend.objects.get(promotion=budgeted, period="total").spent
    return {
        "budget_workers": BUDGET_WORKERS,
        "budget_rps": rate(runs["BUDGET"]),
        "no_budget_rps": rate(runs["PLAIN"]),
        "budget_ratio": round(rate(runs["BUDGET"]) / rate(runs["PLAIN"]), 3),
        "budget_spent_equals_redemptions": budget_spent
        == Decimal("10.00") * sum(r["succeeded"] for r in runs["BUDGET"]),
        "budget_race": {
            "budget": "100.00",
            "attempts": racing["attempts"],
            "redeemed": racing["succeeded"],
            "spent": f"{spent:.2f}",
            "spent_equals_live_charges": spent == charged,
        },
        "budget_overspend": f"{max(spent - race.budget, Decimal(0)):.2f}",
    }


def _hot_code(provider, tariff):
    """1,000 live promotions, then one code of a 50% promotion redeemed by HOT_WORKERS processes
    at once, each with its own clients and keys."""
    from decimal import Decimal

    from django.db import connections
    from django.utils import timezone
    from quote import build_promotions

    from billing.models import Client
    from promotions.engine import Line, Order, quote_order
    from promotions.models import PromoCode
    from tests.factories import (
        ClientGroupFactory,
        DiscountFactory,
        PromoCodeFactory,
        PromotionFactory,
    )

    group = ClientGroupFactory()
    build_promotions(CATALOGUE, provider, [tariff], group)
    promotion = PromotionFactory(provider=provider)
    DiscountFactory(promotion=promotion, percentage=Decimal("50"))
    code = PromoCodeFactory(promotion=promotion, code="HOT", uselimit=10**9)
    total = HOT_WORKERS * HOT_ATTEMPTS
    clients = Client.objects.bulk_create(
        Client(name=f"Hot {i}", email=f"hot{i}@example.com", provider=provider)
        for i in range(total)
    )
    Client.groups.through.objects.bulk_create(
        Client.groups.through(client_id=c.pk, clientgroup_id=group.pk) for c in clients
    )
    # Compiled once here: the workers are forked with the compiled rules in memory.
    order = Order(
        client_id=clients[0].pk,
        provider_id=provider.pk,
        at=timezone.now(),
        lines=(Line(tariff.pk, 12, Decimal("100.00"), "USD"),),
        codes=("HOT",),
    )
    assert quote_order(order=order).lines[0].promotion_id == promotion.pk
    connections.close_all()
    attempts = [(c.pk, "HOT", f"hot-{c.pk}") for c in clients]
    jobs = [(provider.pk, tariff.pk, attempts[w::HOT_WORKERS]) for w in range(HOT_WORKERS)]
    _common.log(f"hot code: {HOT_WORKERS} workers x {HOT_ATTEMPTS}, {CATALOGUE + 1} promotions")
    with multiprocessing.get_context("fork").Pool(HOT_WORKERS) as pool:
        result = _run(pool, jobs)
    _common.log(f"  {result}")
    # The same redemptions one at a time: how long the lock is held without contention.
    alone = [(c.pk, "HOT", f"alone-{c.pk}") for c in clients[:HOT_ATTEMPTS]]
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result["alone"] = _run(pool, [(provider.pk, tariff.pk, alone)])
    _common.log(f"  alone: {result['alone']}")
    return result, PromoCode.objects.get(pk=code.pk)


if __name__ == "__main__":
    main()
