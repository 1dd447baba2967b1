"""Backtest a draft promotion over a year of 100,000 past orders, and over its first quarter.

The data: 10,000 clients (registered over two years, half in a group), each with one monthly
service of one of 5 tariffs charged 10 times in 2025 (100,000 charges); 20 live promotions over
the year with 3 conditions each (active services, expenses in the last 1-3 months, a group or a
registration window) and 2 discounts; the draft has an expense condition OR a group, and a
discount for 1-month orders and renewals.

The backtest job's work runs in a child process per window (so each one's peak memory is its
own): seconds, orders per second and peak resident memory for the quarter (about 25,000 orders)
and the year (100,000), and the ratio of the two peaks.

Targets (issue 19): 100,000 orders in <= 60 s; memory flat as the window grows (peak ratio
<= 1.5 for 4x the orders).
Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/backtest.py
"""

import datetime
import json
import os
import random
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

DB_NAME = "bench_backtest"
CLIENTS = 10_000
CHARGES_PER_SERVICE = 10
BATCH = 5_000
WINDOWS = {
    "quarter": ("2025-01-01", "2025-03-31"),
    "year": ("2025-01-01", "2025-12-31"),
}
TARGET_SECONDS = 60
TARGET_RATIO = 1.5


def build() -> int:
    """The provider, its history and promotions; answers the draft's id."""
    from billing.models import Client, ClientGroup, Expense, Service
    from promotions.engine.rules import rules_version_bump
    from promotions.models import Condition, Discount, Promotion
    from tests.factories import ProviderFactory, TariffFactory

    rng = random.Random(19)
    utc = datetime.UTC
    provider = ProviderFactory()
    usd = provider.currency
    tariffs = [
        TariffFactory(provider=provider, name=f"Plan {i}", price=Decimal(10 * (i + 1)))
        for i in range(5)
    ]
    group = ClientGroup.objects.create(name="Loyal")
    start = datetime.datetime(2023, 1, 1, tzinfo=utc)
    clients = Client.objects.bulk_create(
        (
            Client(
                name=f"Client {i}",
                provider=provider,
                registration_date=start + datetime.timedelta(minutes=rng.randrange(2 * 525_600)),
            )
            for i in range(CLIENTS)
        ),
        batch_size=BATCH,
    )
    Client.groups.through.objects.bulk_create(
        (Client.groups.through(client_id=c.pk, clientgroup_id=group.pk) for c in clients[::2]),
        batch_size=BATCH,
    )
    year = datetime.datetime(2025, 1, 1, tzinfo=utc)
    services = Service.objects.bulk_create(
        (
            Service(
                client=c,
                tariff=tariffs[i % len(tariffs)],
                period=1,
                status="active",
                paid=True,
                opened_at=year + datetime.timedelta(minutes=rng.randrange(59 * 1440)),
            )
            for i, c in enumerate(clients)
        ),
        batch_size=BATCH,
    )
    from common.periods import add_months

    def charges():
        for s in services:
            for n in range(CHARGES_PER_SERVICE):
                yield Expense(
                    client_id=s.client_id,
                    service=s,
                    amount=s.tariff.price,
                    currency=usd,
                    created_at=add_months(s.opened_at, n),
                )

    Expense.objects.bulk_create(charges(), batch_size=BATCH)
    # 20 live promotions, each for about three months somewhere in the year.
    live = [
        Promotion(
            name=f"Live {i}",
            provider=provider,
            fromdate=datetime.date(2025, 1, 1) + datetime.timedelta(days=18 * i),
            todate=datetime.date(2025, 1, 1) + datetime.timedelta(days=18 * i + 90),
        )
        for i in range(20)
    ]
    Promotion.objects.bulk_create(live)
    draft = Promotion.objects.create(
        name="Draft", provider=provider, fromdate=datetime.date(2026, 1, 1)
    )
    Discount.objects.bulk_create(
        [
            *(
                Discount(promotion=p, percentage=Decimal(1 + i % 20), actiontype=a, period=period)
                for i, p in enumerate(live)
                for a, period in (("order", []), ("all", [1]))
            ),
            Discount(promotion=draft, percentage=Decimal(12), actiontype="all", period=[1]),
        ]
    )
    Condition.objects.bulk_create(
        c
        for i, p in enumerate(live)
        for c in (
            Condition(promotion=p, ctype=Condition.Type.SERVICE_COUNT, amount=1),
            Condition(
                promotion=p,
                ctype=Condition.Type.EXPENSE_SUM,
                summa=Decimal(10 * (i % 4)),
                currency=usd,
                periodtype="month",
                periodlength=1 + i % 3,
            ),
            Condition(promotion=p, ctype=Condition.Type.ACCOUNT_GROUP, account_group=group)
            if i % 2
            else Condition(
                promotion=p, ctype=Condition.Type.REGISTRATION, periodtype="year", periodlength=2
            ),
        )
    )
    Condition.objects.bulk_create(
        [
            Condition(
                promotion=draft,
                ctype=Condition.Type.EXPENSE_SUM,
                summa=Decimal(30),
                currency=usd,
                periodtype="month",
                periodlength=2,
            )
        ]
    )
    rules_version_bump(provider_id=provider.pk)
    return draft.pk


def own_peak_rss_mb() -> float:
    """This process's peak resident memory since it started (VmHWM): getrusage's maxrss keeps the
    parent's peak across fork and exec, which would hide the child's own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return _common.peak_rss_mb()


def replay(window: str, promotion_id: int) -> None:
    """Child: the backtest job's work over one window; one JSON line."""
    _common.setup_django()
    from common.actors import Actor
    from common.jobs import JOBS
    from promotions.jobs import BACKTEST

    first, last = WINDOWS[window]
    params = {"promotion": promotion_id, "from": first, "to": last, "run": str(uuid.uuid4())}
    started = time.perf_counter()
    _, result = JOBS[BACKTEST](params, Actor.system("bench"), lambda done: None)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "orders": result["orders"],
                "orders_qualified": result["orders_qualified"],
                "won": result["won"],
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(own_peak_rss_mb(), 1),
            }
        ),
        flush=True,
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--replay":
        replay(sys.argv[2], int(sys.argv[3]))
        return
    with _common.bench_database("backtest", DB_NAME) as ready:
        if not ready:
            return
        started = time.perf_counter()
        promotion_id = build()
        _common.log(f"built in {time.perf_counter() - started:.1f} s")
        runs = {}
        for window in WINDOWS:
            child = subprocess.run(
                [sys.executable, __file__, "--replay", window, str(promotion_id)],
                check=True,
                capture_output=True,
                text=True,
                env=os.environ.copy(),
            )
            runs[window] = json.loads(child.stdout.strip().splitlines()[-1])
            _common.log(window, runs[window])
        year, quarter = runs["year"], runs["quarter"]
        orders_per_s = year["orders"] / year["seconds"]
        ratio = year["peak_rss_mb"] / quarter["peak_rss_mb"]
        seconds_100k = 100_000 / orders_per_s
        _common.emit(
            {
                "bench": "backtest",
                "database": "postgresql",
                "orders_per_s": round(orders_per_s),
                "seconds_100k_orders": round(seconds_100k, 1),
                "windows": runs,
                "peak_rss_ratio": round(ratio, 2),
                "targets": {
                    "seconds_100k_orders": {
                        "target": f"<= {TARGET_SECONDS}",
                        "ok": seconds_100k <= TARGET_SECONDS,
                    },
                    "peak_rss_ratio": {"target": f"<= {TARGET_RATIO}", "ok": ratio <= TARGET_RATIO},
                },
            }
        )


if __name__ == "__main__":
    main()
