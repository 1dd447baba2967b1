"""The PostgreSQL backend's health check: a connection that spoke to the server a moment ago and is
quiet is reused without a round trip; one the server has ended, one with something unexpected to
read, or one silent for longer (a network device may have dropped it) gets Django's `SELECT 1`
(and is replaced when that fails) before a request uses it. Real backends, cut from the server."""

import select
import time

import psycopg
import pytest
from django.db import connection

from common.postgresql import base

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _observer() -> psycopg.Connection:
    """A connection of the test's own to the same database, outside Django's."""
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"],
        dbname=s["NAME"],
        autocommit=True,
    )


def _last_query(observer: psycopg.Connection, pid: int) -> str | None:
    row = observer.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return row[0] if row else None


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _next_request_checks_health() -> None:
    """What Django does when a request begins and then opens its first cursor."""
    connection.health_check_done = False
    connection.close_if_health_check_failed()


def test_a_quiet_connection_is_reused_without_a_query():
    # given a connection that has served a request and sits idle
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    pid = _backend_pid()
    with _observer() as observer:
        before = _last_query(observer, pid)
        # when the next request begins
        _next_request_checks_health()
        # then the same connection serves it, and the server was sent nothing
        assert connection.connection is not None
        assert _last_query(observer, pid) == before
        assert _backend_pid() == pid


def test_a_connection_the_server_ended_is_replaced_before_the_request_uses_it():
    # given a connection whose backend the server terminates between two requests
    pid = _backend_pid()
    with _observer() as observer:
        observer.execute("SELECT pg_terminate_backend(%s)", [pid])
        while _last_query(observer, pid) is not None:  # until the backend has gone
            observer.execute("SELECT pg_stat_clear_snapshot()")
    # when the next request begins
    _next_request_checks_health()
    # then its first query runs, on a new backend
    assert _backend_pid() != pid


def test_a_connection_with_something_to_read_gets_the_full_check_and_is_kept():
    # given an idle connection with a notification waiting on its socket
    with connection.cursor() as cursor:
        cursor.execute("LISTEN health_check_probe")
    pid = _backend_pid()
    with _observer() as observer:
        observer.execute("NOTIFY health_check_probe")
        select.select([connection.connection.fileno()], [], [], 10)  # until it has arrived
        # when the next request begins
        _next_request_checks_health()
        # then the server was asked (Django's SELECT 1), and the healthy connection is kept
        assert _last_query(observer, pid) == "SELECT 1"
    assert _backend_pid() == pid
    with connection.cursor() as cursor:
        cursor.execute("UNLISTEN *")


def test_a_connection_silent_for_long_gets_the_full_check(monkeypatch):
    # given an idle connection that last spoke to the server longer ago than the quiet window
    pid = _backend_pid()
    later = time.monotonic() + base.QUIET_SECONDS + 1
    monkeypatch.setattr(base.time, "monotonic", lambda: later)
    with _observer() as observer:
        # when the next request begins
        _next_request_checks_health()
        # then the server was asked (Django's SELECT 1), and the healthy connection is kept
        assert _last_query(observer, pid) == "SELECT 1"
    monkeypatch.undo()
    assert _backend_pid() == pid
