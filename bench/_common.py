"""Helpers shared by the bench scripts: Django setup, a throwaway PostgreSQL database, output.

Each bench script runs on its own database, derived from DATABASE_URL by swapping the database
name, so the database DATABASE_URL names is only used to create and drop the bench one.
"""

import contextlib
import json
import os
import resource
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "postgis"}


def log(*parts: Any) -> None:
    """Progress for humans: stderr, so stdout stays one JSON line."""
    print(*parts, file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """The bench's single stdout line."""
    print(json.dumps(result), flush=True)


def setup_django() -> None:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme.lower() in POSTGRES_SCHEMES


def database_url_with_name(url: str, name: str) -> str:
    """The same server, user and options as `url`, but database `name`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def libpq_url(url: str) -> str:
    """libpq understands postgres:// and postgresql:// only."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create database `name` on `admin_url`'s server; return its URL.

    Only CREATE/DROP DATABASE run on `admin_url`'s database: its own tables are never touched.
    """
    import psycopg
    from psycopg import sql

    if name == urlsplit(admin_url).path.lstrip("/"):
        raise ValueError(f"Refusing to recreate the DATABASE_URL database {name!r}")
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    return database_url_with_name(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    if name == urlsplit(admin_url).path.lstrip("/"):
        raise ValueError(f"Refusing to drop the DATABASE_URL database {name!r}")
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def bench_database(bench: str, name: str):
    """Django on a fresh, migrated database `name` beside DATABASE_URL's; yields False to skip.

    Without PostgreSQL in DATABASE_URL it prints the bench's `skipped` line and yields False.
    BENCH_DB_SUFFIX (e.g. `_alice`) makes the name one's own, so benches run side by side.
    """
    name += os.environ.get("BENCH_DB_SUFFIX", "")
    admin_url = os.environ.get("DATABASE_URL")
    if not is_postgres_url(admin_url):
        emit({"bench": bench, "skipped": "needs PostgreSQL in DATABASE_URL"})
        yield False
        return
    os.environ["DATABASE_URL"] = recreate_database(admin_url, name)
    try:
        setup_django()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield True
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(admin_url, name)
