"""Bench: generating promo codes from a template, against raw COPY and a naive loop.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/generate_codes.py

Works on its own database (bench_generate_codes on DATABASE_URL's server), dropped at the end.
Each generation size runs in a fresh child process, so its peak RSS is its own. Progress goes to
stderr; stdout is one JSON line. `--profile` also profiles the 1M child (cProfile and time per
SQL statement kind, to stderr), which slows that run down.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # the repo root, for config and the apps
sys.path.insert(0, str(BENCH_DIR))  # for _common

from _common import (  # noqa: E402
    drop_database,
    emit,
    is_postgres_url,
    libpq_url,
    log,
    peak_rss_mb,
    recreate_database,
    setup_django,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")

BENCH = "generate_codes"
BENCH_DB = "bench_generate_codes"
TEMPLATE = "BULK-????????"
BIG = 1_000_000
SMALL = 100_000
NAIVE = 10_000
COPY_ROWS = 1_000_000
SMALL_AFTER = 1_000

MAX_PEAK_RSS_MB = 300
MAX_RSS_GROWTH = 2.0
MIN_COPY_RATIO = 0.5
MIN_SPEEDUP_VS_NAIVE = 50


# Child: one generation run in a fresh process -------------------------------------------------


def child_generate(count: int, promotion_id: int, profile: bool, template: str = TEMPLATE) -> None:
    setup_django()
    from django.db import connection

    from common.actors import Actor
    from promotions.models import Promotion
    from promotions.services import promocodes_generate

    if connection.settings_dict["NAME"] != BENCH_DB:
        raise SystemExit(f"child refuses to run on {connection.settings_dict['NAME']!r}")
    promotion = Promotion.objects.get(pk=promotion_id)
    baseline = peak_rss_mb()
    step = max(count // 10, 1)
    reported = [0]

    def progress(created: int) -> None:
        if created - reported[0] >= step or created == count:
            reported[0] = created
            log(f"  generated {created:,}/{count:,}")

    sql_time: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def time_sql(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            kind = _sql_kind(sql)
            sql_time[kind][0] += 1
            sql_time[kind][1] += time.perf_counter() - started

    profiler = cProfile.Profile() if profile else None
    with connection.execute_wrapper(time_sql):
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        created = promocodes_generate(
            promotion=promotion,
            template=template,
            count=count,
            digits_only=False,
            actor=Actor.system("bench"),
            progress=progress,
        )
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
    peak = peak_rss_mb()

    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(20)
        log(out.getvalue())
    if profile:
        log(f"SQL time by statement kind ({count:,} codes, {seconds:.2f}s wall):")
        for kind, (n, spent) in sorted(sql_time.items(), key=lambda kv: -kv[1][1]):
            log(f"  {spent:8.3f}s  {n:5d}x  {kind}")

    emit(
        {
            "count": count,
            "created": created,
            "seconds": seconds,
            "codes_per_s": created / seconds,
            "baseline_rss_mb": baseline,
            "peak_rss_mb": peak,
            "sql_seconds": {kind: spent for kind, (_, spent) in sql_time.items()},
        }
    )


def _sql_kind(sql: str) -> str:
    """A short label for a statement, to add up where generation time goes."""
    head = " ".join(sql.split())[:80]
    if "~" in sql and "COUNT(" in sql.upper():
        return "count taken codes (regex)"
    if head.startswith("SELECT") and '"code" IN' in sql:
        return "existing codes lookup (code IN ...)"
    if head.startswith("INSERT") and "unnest" in sql:
        return "batch insert (unnest ... ON CONFLICT)"
    if head.startswith("INSERT") and "history" in head.lower():
        return "history record"
    return "other (savepoints, validation, lookups)"


def run_child(
    count: int, promotion_id: int, *, profile: bool = False, template: str = TEMPLATE
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        str(count),
        "--promotion",
        str(promotion_id),
        "--template",
        template,
    ]
    if profile:
        command.append("--profile")
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# Parent: the whole bench ----------------------------------------------------------------------


def truncate_codes() -> None:
    from django.db import connection

    from promotions.models import PromoCode

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {connection.ops.quote_name(PromoCode._meta.db_table)} CASCADE")


def count_codes() -> tuple[int, int]:
    from django.db import connection

    from promotions.models import PromoCode

    table = connection.ops.quote_name(PromoCode._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), count(DISTINCT code) FROM {table}")
        total, distinct = cursor.fetchone()
    return total, distinct


def bench_copy(promotion, bench_url: str) -> float:
    """COPY pre-made rows into the (emptied) promo code table with psycopg 3; rows per second."""
    import psycopg
    from django.db import connection
    from django.utils import timezone
    from psycopg import sql

    from promotions import codegen
    from promotions.models import PromoCode

    alphabet = codegen.alphabet_for(digits_only=False)
    length = TEMPLATE.count(codegen.PLACEHOLDER)
    codes: set[str] = set()
    while len(codes) < COPY_ROWS:
        fillings = codegen.random_fillings(alphabet, length, COPY_ROWS - len(codes))
        codes.update(codegen.fill(TEMPLATE, fillings))
    # The other columns as the ORM would store them for a code made with default settings.
    sample = PromoCode(promotion=promotion, code="", onlydigit=False)
    sample.created_at = timezone.now()
    fields = [f for f in PromoCode._meta.concrete_fields if f.name not in ("id", "code")]
    constants = tuple(f.get_db_prep_save(f.pre_save(sample, add=True), connection) for f in fields)
    rows = [(code, *constants) for code in codes]
    del codes
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(PromoCode._meta.db_table),
        sql.SQL(", ").join(sql.Identifier(c) for c in ["code", *(f.column for f in fields)]),
    )
    log(f"COPY {len(rows):,} rows ...")
    with psycopg.connect(libpq_url(bench_url)) as conn:
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
    total, distinct = count_codes()
    if total != COPY_ROWS or distinct != COPY_ROWS:
        raise SystemExit(f"COPY left {total} rows, {distinct} distinct; expected {COPY_ROWS}")
    return COPY_ROWS / seconds


def bench_naive(promotion) -> float:
    """One code at a time: draw, check it is free, create it (autocommit); codes per second."""
    from promotions import codegen
    from promotions.models import PromoCode

    alphabet = codegen.alphabet_for(digits_only=False)
    length = TEMPLATE.count(codegen.PLACEHOLDER)
    log(f"naive loop, {NAIVE:,} codes ...")
    made = 0
    started = time.perf_counter()
    while made < NAIVE:
        filling = "".join(secrets.choice(alphabet) for _ in range(length))
        code = codegen.fill(TEMPLATE, [filling])[0]
        if PromoCode.objects.filter(code=code).exists():
            continue
        PromoCode.objects.create(promotion=promotion, code=code, onlydigit=False)
        made += 1
    return made / (time.perf_counter() - started)


def run(bench_url: str, profile: bool) -> dict[str, Any]:
    from django.core.management import call_command

    from billing.models import Currency, Provider
    from promotions.models import Promotion

    log(f"migrating {BENCH_DB} ...")
    call_command("migrate", verbosity=0)
    currency = Currency.objects.create(name="Bench currency", iso="BNC")
    provider = Provider.objects.create(name="Bench provider", currency=currency)
    promotion = Promotion.objects.create(
        name="Bench promotion", provider=provider, fromdate=date.today()
    )

    log(f"generating {SMALL:,} codes in a child process ...")
    small = run_child(SMALL, promotion.pk)
    truncate_codes()
    log(f"generating {BIG:,} codes in a child process ...")
    big = run_child(BIG, promotion.pk, profile=profile)
    total, distinct = count_codes()
    duplicates = total - distinct
    log(f"  {big['codes_per_s']:,.0f} codes/s, {total:,} rows, {duplicates} duplicates")
    # A small generation beside the million: it must not pay for counting them.
    log(f"generating {SMALL_AFTER:,} codes of another template beside the million ...")
    beside = run_child(SMALL_AFTER, promotion.pk, template="MORE-????????")

    truncate_codes()
    copy_rows_per_s = bench_copy(promotion, bench_url)
    log(f"  {copy_rows_per_s:,.0f} rows/s")

    truncate_codes()
    naive_codes_per_s = bench_naive(promotion)
    log(f"  {naive_codes_per_s:,.0f} codes/s")

    codes_per_s = big["codes_per_s"]
    growth = big["peak_rss_mb"] / small["peak_rss_mb"]
    copy_ratio = codes_per_s / copy_rows_per_s
    speedup = codes_per_s / naive_codes_per_s
    checks = {
        "peak_rss_mb": (f"< {MAX_PEAK_RSS_MB}", big["peak_rss_mb"] < MAX_PEAK_RSS_MB),
        "rss_growth_100k_to_1m": (f"< {MAX_RSS_GROWTH}", growth < MAX_RSS_GROWTH),
        "copy_ratio": (f">= {MIN_COPY_RATIO}", copy_ratio >= MIN_COPY_RATIO),
        "speedup_vs_naive": (f">= {MIN_SPEEDUP_VS_NAIVE}", speedup >= MIN_SPEEDUP_VS_NAIVE),
        "duplicates": ("== 0", duplicates == 0),
        "created": (f"== {BIG}", big["created"] == BIG and total == BIG),
    }
    return {
        "bench": BENCH,
        "database": "postgresql",
        "template": TEMPLATE,
        "count": BIG,
        "created": big["created"],
        "generation_s": round(big["seconds"], 3),
        "codes_per_s": round(codes_per_s),
        "codes_per_s_100k": round(small["codes_per_s"]),
        "duplicates": duplicates,
        "peak_rss_mb": round(big["peak_rss_mb"], 1),
        "peak_rss_mb_100k": round(small["peak_rss_mb"], 1),
        "baseline_rss_mb": round(big["baseline_rss_mb"], 1),
        "rss_growth_100k_to_1m": round(growth, 3),
        "copy_rows_per_s": round(copy_rows_per_s),
        "copy_ratio": round(copy_ratio, 3),
        "naive_codes_per_s": round(naive_codes_per_s, 1),
        "speedup_vs_naive": round(speedup, 1),
        "sql_seconds_1m": {k: round(v, 3) for k, v in big["sql_seconds"].items()},
        "small_beside_1m_ms": round(beside["seconds"] * 1000, 1),
        "small_beside_1m_sql_seconds": {k: round(v, 4) for k, v in beside["sql_seconds"].items()},
        "profiled": profile,
        "targets": {name: {"target": t, "ok": ok} for name, (t, ok) in checks.items()},
        "ok": all(ok for _, ok in checks.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="profile the 1M generation run")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--promotion", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--template", default=TEMPLATE, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_generate(args.child, args.promotion, args.profile, args.template)
        return 0

    admin_url = os.environ.get("DATABASE_URL", "")
    if not is_postgres_url(admin_url):
        emit({"bench": BENCH, "skipped": "needs PostgreSQL"})
        return 0
    started = time.perf_counter()
    log(f"creating database {BENCH_DB} ...")
    bench_url = recreate_database(admin_url, BENCH_DB)
    os.environ["DATABASE_URL"] = bench_url  # for Django here and in the children
    try:
        setup_django()
        result = run(bench_url, args.profile)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(admin_url, BENCH_DB)
        log(f"dropped database {BENCH_DB}")
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
