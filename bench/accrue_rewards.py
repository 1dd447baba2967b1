"""Accrue rewards on 1,000,000 expenses of 10,000 referrals of 1,000 partners (PostgreSQL).

Reports seconds for the first run and an idempotent re-run, peak RSS, and the ratio of the first run
to a plain `SELECT referral, sum(amount) GROUP BY` over the same expenses (target: at most 10x).
Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/accrue_rewards.py
"""

import datetime
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

PARTNERS = int(os.environ.get("BENCH_PARTNERS", "1000"))
REFERRALS = int(os.environ.get("BENCH_REFERRALS", "10000"))
EXPENSES = int(os.environ.get("BENCH_EXPENSES", "1000000"))
DB_NAME = "bench_accrue_rewards"


def main() -> None:
    with _common.bench_database("accrue_rewards", DB_NAME) as ready:
        if not ready:
            return
        from django.db import connection

        from billing.models import Client
        from referrals.accrual import rewards_accrue
        from referrals.models import Referral, Reward, Rule
        from tests.factories import ReferralProgramFactory

        program = ReferralProgramFactory(start_date=datetime.date(2026, 1, 1))
        Rule.objects.create(program=program, name="10%", amount=Decimal("10"))
        provider = program.provider
        partners = Client.objects.bulk_create(
            Client(name=f"partner {i}", provider=provider) for i in range(PARTNERS)
        )
        referred = Client.objects.bulk_create(
            Client(name=f"referral {i}", provider=provider) for i in range(REFERRALS)
        )
        Referral.objects.bulk_create(
            Referral(program=program, partner=partners[i % PARTNERS], client=c, source="link")
            for i, c in enumerate(referred)
        )
        first_client = min(c.pk for c in referred)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO billing_expense (client_id, service_id, amount, currency_id, created_at) "
                "SELECT %s + (g %% %s), NULL, (g %% 97) + 0.55, %s, "
                "timestamptz '2026-01-02 12:00+00' + (g %% 300) * interval '1 hour' "
                "FROM generate_series(1, %s) AS g",
                [first_client, REFERRALS, provider.currency_id, EXPENSES],
            )
            cursor.execute("ANALYZE")
        _common.log(f"{EXPENSES} expenses over {REFERRALS} referrals of {PARTNERS} partners")

        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT r.id, sum(e.amount) FROM billing_expense e "
                "JOIN referrals_referral r ON r.client_id = e.client_id GROUP BY r.id"
            )
            groups = len(cursor.fetchall())
        group_by_s = time.perf_counter() - started

        started = time.perf_counter()
        added = rewards_accrue(program=program)
        first_run_s = time.perf_counter() - started
        _common.log(f"first run: {added} rewards in {first_run_s:.1f} s")
        started = time.perf_counter()
        again = rewards_accrue(program=program)
        rerun_s = time.perf_counter() - started
        ratio = first_run_s / group_by_s
        _common.emit(
            {
                "bench": "accrue_rewards",
                "database": "postgresql",
                "expenses": EXPENSES,
                "referrals": REFERRALS,
                "partners": PARTNERS,
                "rewards_added": added,
                "rewards_total": Reward.objects.count(),
                "rerun_added": again,
                "first_run_s": round(first_run_s, 2),
                "rerun_s": round(rerun_s, 2),
                "group_by_s": round(group_by_s, 3),
                "group_by_rows": groups,
                "group_by_ratio": round(ratio, 1),
                "peak_rss_mb": round(_common.peak_rss_mb(), 1),
                "targets": {"group_by_ratio": "<= 10", "rerun_added": "== 0"},
                "ok": ratio <= 10 and again == 0 and added == EXPENSES,
            }
        )


if __name__ == "__main__":
    main()
