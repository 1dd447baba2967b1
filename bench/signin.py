"""What a sign-in costs on /billmgr with the production password hasher (PBKDF2, Django's
iterations): a call with `authinfo` whose credentials are new (the full hash), the same
credentials again (the cached keyed digest), a wrong password (always the full hash), and a call
with a session (`auth=`), side by side in one run.

Prints p50 per kind and cached_ratio = repeated authinfo / first authinfo (target <= 0.2) and
wrong_ratio = wrong / first (stays ~1: a guess is never cheap).
Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/signin.py
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

ROUNDS = int(os.environ.get("BENCH_SIGNIN_ROUNDS", "15"))
DB_NAME = "bench_signin"


def p50_ms(fn, rounds=ROUNDS) -> float:
    times = []
    for n in range(rounds):
        start = time.perf_counter()
        fn(n)
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    with _common.bench_database("signin", DB_NAME) as ready:
        if not ready:
            return
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.core.cache import cache
        from django.test import Client

        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
        settings.ALLOWED_HOSTS = ["testserver"]
        settings.THROTTLE_AUTH_FAILURES = settings.THROTTLE_AUTH_ADDRESS_FAILURES = 10**6
        settings.THROTTLE_AUTH_USER_FAILURES = 10**6
        users = get_user_model()
        for n in range(ROUNDS):
            users.objects.create_superuser(f"op{n}", password=f"secret-{n}")
        client = Client()

        def call(**params):
            response = client.get("/billmgr", {"func": "promotion", **params})
            assert response.status_code == 200, response.content
            return response.json()

        def first(n):  # each user's first call: nothing cached yet
            assert "elem" in call(authinfo=f"op{n}:secret-{n}")

        first_ms = p50_ms(first)
        repeated_ms = p50_ms(lambda n: call(authinfo="op0:secret-0"))
        wrong_ms = p50_ms(lambda n: call(authinfo=f"op0:wrong-{n}"))
        sid = client.get(
            "/billmgr", {"func": "auth", "username": "op1", "password": "secret-1"}
        ).json()["auth"]
        session_ms = p50_ms(lambda n: call(auth=sid))
        cache.clear()
        _common.emit(
            {
                "bench": "signin",
                "hasher": "pbkdf2_sha256",
                "iterations": _iterations(),
                "rounds": ROUNDS,
                "first_authinfo_p50_ms": first_ms,
                "repeated_authinfo_p50_ms": repeated_ms,
                "wrong_password_p50_ms": wrong_ms,
                "session_p50_ms": session_ms,
                "cached_ratio": round(repeated_ms / first_ms, 3),
                "wrong_ratio": round(wrong_ms / first_ms, 3),
            }
        )


def _iterations() -> int:
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    return PBKDF2PasswordHasher.iterations


if __name__ == "__main__":
    main()
