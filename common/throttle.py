"""Brute-force brakes: failures per key in a fixed window, kept in the database so every app
server shares them; a key over its budget is refused until the window ends."""

import datetime
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from common.models import Attempt


@dataclass(frozen=True)
class Budget:
    failures: int
    seconds: int


# scope -> (setting holding the failures allowed, setting holding the window in seconds, defaults)
SCOPES = {
    "auth": ("THROTTLE_AUTH_FAILURES", "THROTTLE_AUTH_SECONDS", 10, 300),
    "promocode": ("THROTTLE_PROMOCODE_FAILURES", "THROTTLE_PROMOCODE_SECONDS", 20, 600),
    # An authenticated integration names codes for all its clients: its own, larger budget.
    "promocode_caller": (
        "THROTTLE_PROMOCODE_CALLER_FAILURES",
        "THROTTLE_PROMOCODE_CALLER_SECONDS",
        1000,
        600,
    ),
}


class Throttled(Exception):
    def __init__(self, scope: str, retry_after: int):
        super().__init__(scope)
        self.scope, self.retry_after = scope, retry_after


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


def _hashed(scope: str, keys: Iterable[str]) -> list[str]:
    # Hashed, so the table holds no user names or addresses.
    return sorted({hashlib.sha256(f"{scope}:{k}".encode()).hexdigest() for k in keys if k})


def throttle_check(
    *,
    scope: str,
    keys: Iterable[str],
    at: datetime.datetime | None = None,
    over: bool = False,
) -> None:
    """Raise Throttled when any key has spent its failures in the current window (`over`: when
    it has gone past them, for a check made after counting the request's own failures)."""
    start, left = _window(scope, at or timezone.now())
    allowed = budget(scope).failures
    spent = Attempt.objects.filter(
        key__in=_hashed(scope, keys),
        window_start=start,
        failures__gte=allowed + 1 if over else allowed,
    )
    if spent.exists():
        raise Throttled(scope, left)


def _count(scope: str, keys: Iterable[str], count: int, start: datetime.datetime) -> list[int]:
    """Add `count` failures to every key atomically; answers each key's new total."""
    table = Attempt._meta.db_table
    totals = []
    with connection.cursor() as cursor:
        for key in _hashed(scope, keys):
            cursor.execute(
                f"INSERT INTO {table} (key, window_start, failures) VALUES (%s, %s, %s) "
                f"ON CONFLICT (key, window_start) "
                f"DO UPDATE SET failures = {table}.failures + EXCLUDED.failures "
                f"RETURNING failures",
                [key, connection.ops.adapt_datetimefield_value(start), count],
            )
            totals.append(cursor.fetchone()[0])
    return totals


def throttle_fail(
    *, scope: str, keys: Iterable[str], count: int = 1, at: datetime.datetime | None = None
) -> None:
    """Count `count` failures against every key, atomically under concurrency."""
    start, _ = _window(scope, at or timezone.now())
    _count(scope, keys, count, start)
    Attempt.objects.filter(window_start__lt=start - datetime.timedelta(days=1)).delete()


def throttle_take(*, scope: str, keys: Iterable[str], at: datetime.datetime | None = None) -> None:
    """Count an attempt against every key before it is made, and refuse it (taking the count
    back) when its own count goes past a budget: each attempt compares the count its increment
    returned, so parallel attempts get exactly the budget, no more and no less. A successful
    attempt gives its count back with `throttle_give_back`."""
    keys = list(keys)
    start, left = _window(scope, at or timezone.now())
    if any(n > budget(scope).failures for n in _count(scope, keys, 1, start)):
        throttle_give_back(scope=scope, keys=keys, at=at)
        raise Throttled(scope, left)


def throttle_give_back(
    *, scope: str, keys: Iterable[str], at: datetime.datetime | None = None
) -> None:
    start, _ = _window(scope, at or timezone.now())
    Attempt.objects.filter(key__in=_hashed(scope, keys), window_start=start, failures__gt=0).update(
        failures=F("failures") - 1
    )
