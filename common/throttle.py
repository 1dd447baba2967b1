"""Brute-force brakes: failures per key in a fixed window, kept in the database so every app
server shares them; a key over its budget is refused until the window ends.

A key belongs to a scope, and the scope gives its budget (failures per window). One attempt may
be counted on keys of several scopes at once (a sign-in: per (user, address) and per address).
A key naming an address (`ip:ADDRESS`, as every consumer writes it) is counted on the address's
network (common.net.brake_network: an IPv6 address on its /64), here, so no consumer can forget.
Rows of windows that have ended are purged as new ones are written, so the table holds only the
current windows: an attacker making up new names adds rows only as far as the address brake lets.
"""

import datetime
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

from common.models import Attempt
from common.net import brake_network


@dataclass(frozen=True)
class Budget:
    failures: int
    seconds: int


# scope -> (setting holding the failures allowed, setting holding the window in seconds, defaults)
SCOPES = {
    # sign-ins: per (user name, address), and per address whoever signs in (DigiPay tokens too)
    "auth": ("THROTTLE_AUTH_FAILURES", "THROTTLE_AUTH_SECONDS", 10, 300),
    "auth_address": ("THROTTLE_AUTH_ADDRESS_FAILURES", "THROTTLE_AUTH_SECONDS", 30, 300),
    # and per user name, from networks the user has not signed in from lately (common/signin.py)
    "auth_user": ("THROTTLE_AUTH_USER_FAILURES", "THROTTLE_AUTH_SECONDS", 100, 300),
    "promocode": ("THROTTLE_PROMOCODE_FAILURES", "THROTTLE_PROMOCODE_SECONDS", 20, 600),
    # An authenticated integration names codes for all its clients: its own, larger budget.
    "promocode_caller": (
        "THROTTLE_PROMOCODE_CALLER_FAILURES",
        "THROTTLE_PROMOCODE_SECONDS",
        1000,
        600,
    ),
    # public link clicks (referralprogram.registerclick): every click counts, per address
    "click": ("THROTTLE_CLICK_REQUESTS", "THROTTLE_CLICK_SECONDS", 60, 600),
}

# A (scope, key) pair: the key counted against that scope's budget.
ScopedKey = tuple[str, str]


class Throttled(Exception):
    def __init__(self, scope: str, retry_after: int):
        super().__init__(scope)
        self.scope, self.retry_after = scope, retry_after


# Sent with `scope` whenever a brake refuses, whichever door asked (ops counts them for /metrics).
brake_refused = Signal()


def _refused(scope: str, retry_after: int) -> Throttled:
    brake_refused.send(sender=Throttled, scope=scope)
    return Throttled(scope, retry_after)


def budget(scope: str) -> Budget:
    failures, seconds, default_failures, default_seconds = SCOPES[scope]
    return Budget(
        int(getattr(settings, failures, default_failures)),
        int(getattr(settings, seconds, default_seconds)),
    )


def _window(scope: str, at: datetime.datetime) -> tuple[datetime.datetime, int]:
    seconds = budget(scope).seconds
    epoch = int(at.timestamp())
    start = epoch - epoch % seconds
    return datetime.datetime.fromtimestamp(start, tz=datetime.UTC), start + seconds - epoch


def _digest(scope: str, key: str) -> str:
    # Hashed, so the table holds no user names or addresses.
    if key.startswith("ip:"):
        key = f"ip:{brake_network(key[3:])}"
    return hashlib.sha256(f"{scope}:{key}".encode()).hexdigest()


def _hashed(scope: str, keys: Iterable[str]) -> list[str]:
    return sorted({_digest(scope, k) for k in keys if k})


def _scoped(keys: Iterable[ScopedKey]) -> list[ScopedKey]:
    """Distinct, non-empty, in the digest order every writer uses (so parallel writers of the same
    rows never wait on each other in opposite orders)."""
    return sorted({(s, k) for s, k in keys if k}, key=lambda sk: _digest(*sk))


@dataclass(frozen=True)
class SpentCheck:
    """Whether a scope's keys have spent its budget, as a scalar SQL expression (1 or NULL) a
    caller may read in a statement of its own (the checkout reads it with the order's context)."""

    scope: str
    sql: str
    params: list
    retry_after: int


def brakes_spent(
    *, keys: Iterable[ScopedKey], at: datetime.datetime | None = None, over: bool = False
) -> list[SpentCheck]:
    """One check per scope of `keys`, in their order: spent when a key has used the scope's
    failures in the current window (`over`: gone past them, for a check made after counting
    the request's own failures)."""
    at, keys = at or timezone.now(), list(keys)
    checks = []
    for scope in dict.fromkeys(scope for scope, _ in keys):
        digests = _hashed(scope, (k for s, k in keys if s == scope))
        if not digests:
            continue
        allowed = budget(scope).failures
        start, retry_after = _window(scope, at)
        checks.append(
            SpentCheck(
                scope,
                f"(SELECT 1 FROM {Attempt._meta.db_table} WHERE window_start = %s "
                f"AND failures >= %s AND key IN ({', '.join(['%s'] * len(digests))}) LIMIT 1)",
                [
                    connection.ops.adapt_datetimefield_value(start),
                    allowed + 1 if over else allowed,
                    *digests,
                ],
                retry_after,
            )
        )
    return checks


def brakes_refuse(checks: list[SpentCheck], values: Iterable) -> None:
    """Raise Throttled for the first check whose value (read by the caller) says spent."""
    for check, value in zip(checks, values, strict=True):
        if value:
            raise _refused(check.scope, check.retry_after)


def brakes_check(
    *, keys: Iterable[ScopedKey], at: datetime.datetime | None = None, over: bool = False
) -> None:
    """Raise Throttled when any (scope, key) has spent its scope's failures (see
    `brakes_spent`), in one statement for every scope."""
    checks = brakes_spent(keys=keys, at=at, over=over)
    if not checks:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(c.sql for c in checks)}", [p for c in checks for p in c.params]
        )
        values = cursor.fetchone()
    brakes_refuse(checks, values)


def throttle_check(
    *,
    scope: str,
    keys: Iterable[str],
    at: datetime.datetime | None = None,
    over: bool = False,
) -> None:
    """`brakes_check` with every key in one scope."""
    brakes_check(keys=[(scope, k) for k in keys], at=at, over=over)


def _count(keys: list[ScopedKey], count: int, at: datetime.datetime) -> list[int]:
    """Add `count` failures to every key atomically; answers each key's new total."""
    table = Attempt._meta.db_table
    totals = []
    with connection.cursor() as cursor:
        for scope, key in keys:
            start, _ = _window(scope, at)
            cursor.execute(
                f"INSERT INTO {table} (key, window_start, failures) VALUES (%s, %s, %s) "
                f"ON CONFLICT (key, window_start) "
                f"DO UPDATE SET failures = {table}.failures + EXCLUDED.failures "
                f"RETURNING failures",
                [_digest(scope, key), connection.ops.adapt_datetimefield_value(start), count],
            )
            totals.append(cursor.fetchone()[0])
    return totals


def throttle_purge(*, at: datetime.datetime | None = None) -> int:
    """Delete the rows of windows that have ended (the longest window decides); answers how many."""
    longest = max(budget(scope).seconds for scope in SCOPES)
    horizon = (at or timezone.now()) - datetime.timedelta(seconds=longest)
    deleted, _ = Attempt.objects.filter(window_start__lt=horizon).delete()
    return deleted


def throttle_fail(
    *, scope: str, keys: Iterable[str], count: int = 1, at: datetime.datetime | None = None
) -> None:
    """Count `count` failures against every key, atomically under concurrency."""
    at = at or timezone.now()
    _count(_scoped((scope, k) for k in keys), count, at)
    throttle_purge(at=at)


def brake_take(*, keys: Iterable[ScopedKey], at: datetime.datetime | None = None) -> None:
    """Count an attempt against every (scope, key) before it is made, and refuse it (taking the
    count back) when any count goes past its scope's budget: each attempt compares the count its
    increment returned, so parallel attempts get exactly the budget, no more and no less. A
    successful attempt gives its count back with `brake_give_back`."""
    at = at or timezone.now()
    keys = _scoped(keys)
    throttle_purge(at=at)
    # One transaction: each upsert keeps its key's row locked until the end, taken in one order
    # by every attempt (keys sorted by digest, so no deadlock), and a refusal rolls its counts
    # back. Attempts sharing a key are counted one after another, so an attempt refused by one
    # scope never holds a slot of another that a parallel attempt then finds full.
    with transaction.atomic():
        totals = _count(keys, 1, at)
        over = [
            (scope, key)
            for (scope, key), total in zip(keys, totals, strict=True)
            if total > budget(scope).failures
        ]
        if over:
            raise _refused(over[0][0], max(_window(scope, at)[1] for scope, _ in over))


def brake_give_back(*, keys: Iterable[ScopedKey], at: datetime.datetime | None = None) -> None:
    """Take one attempt back from every key; a row back at zero is deleted."""
    at = at or timezone.now()
    for scope, key in _scoped(keys):
        start, _ = _window(scope, at)
        rows = Attempt.objects.filter(key=_digest(scope, key), window_start=start)
        rows.filter(failures__gt=0).update(failures=F("failures") - 1)
        rows.filter(failures=0).delete()


def throttle_take(*, scope: str, keys: Iterable[str], at: datetime.datetime | None = None) -> None:
    """`brake_take` with every key in one scope."""
    brake_take(keys=[(scope, k) for k in keys], at=at)


def throttle_give_back(
    *, scope: str, keys: Iterable[str], at: datetime.datetime | None = None
) -> None:
    brake_give_back(keys=[(scope, k) for k in keys], at=at)
