"""HTTP load through gunicorn on PostgreSQL: POST /api/v1/redemptions and
/billmgr?func=promotion.promocode from parallel clients on loopback for a bounded time, beside a
trivial Django view (/healthz) as the ceiling, side by side: the targets take turns in slices
(BENCH_ROUNDS rounds). One JSON line: requests/s, p50/p99, errors (must be 0) per target, and
redemption_ratio = redemptions/s over the ceiling's requests/s (the target's figure), with each
round's ratio and their median beside it.

Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/http_load.py
"""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))  # per target, over all rounds
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "16"))
WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", str(2 * (os.cpu_count() or 1) + 1)))
DB_NAME = "bench_http_load"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed():
    """An operator with an API token and a session, a promotion with unlimited codes, clients."""
    import datetime
    from decimal import Decimal

    from rest_framework.authtoken.models import Token

    from billing.models import Client
    from billmgr_api.auth import login
    from promotions.models import PromoCode
    from tests.factories import DiscountFactory, PromotionFactory, TariffFactory, UserFactory

    user = UserFactory(username="bench", password="bench", is_superuser=True)
    promotion = PromotionFactory(fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    PromoCode.objects.bulk_create(
        PromoCode(promotion=promotion, code=f"LOAD{i:05d}") for i in range(500)
    )
    tariff = TariffFactory(provider=promotion.provider)
    clients = Client.objects.bulk_create(
        Client(name=f"load {i}", provider=promotion.provider) for i in range(2000)
    )
    return {
        "token": Token.objects.create(user=user).key,
        "session": login(username="bench", password="bench").key,
        "promotion": promotion.pk,
        "provider": promotion.provider_id,
        "tariff": tariff.pk,
        "clients": [c.pk for c in clients],
    }


def _drive(port: int, request_for, seconds: float) -> dict:
    """CLIENTS threads, each on its own keep-alive connection, for `seconds`."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, bad, i = [], 0, 0
        while time.perf_counter() < deadline:
            method, path, body, headers, ok = request_for(n, i)
            i += 1
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                if response.status not in ok or b'"error"' in payload[:200]:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": latencies, "errors": errors[0], "seconds": time.perf_counter() - started}


def _summary(runs: list[dict]) -> dict:
    """One target's figures over its runs (its slices of the rounds)."""
    latencies = sorted(t for run in runs for t in run["latencies"])
    seconds = sum(run["seconds"] for run in runs)
    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1) if latencies else None,
        "errors": sum(run["errors"] for run in runs),
    }


def _rps(run: dict) -> float:
    return len(run["latencies"]) / run["seconds"]


def main() -> None:
    with _common.bench_database("http_load", DB_NAME) as ready:
        if not ready:
            return
        seed = _seed()
        from django.db import connections

        connections.close_all()
        port = _free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "0",
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-" + uuid.uuid4().hex),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CONN_MAX_AGE": "60",
            # The bench's clients all come from one address: the brakes must not count them.
            "THROTTLE_PROMOCODE_FAILURES": "1000000000",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(WORKERS),
                "--log-level",
                "warning",
            ],
            cwd=_common.REPO_ROOT,
            env=env,
        )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            _common.log(f"gunicorn with {WORKERS} workers on :{port}; {CLIENTS} clients")
            json_headers = {
                "Authorization": f"Token {seed['token']}",
                "Content-Type": "application/json",
            }

            def ceiling(n, i):
                return "GET", "/healthz", None, {}, {200}

            def redemption(n, i):
                client = seed["clients"][(n * 100_000 + i) % len(seed["clients"])]
                body = {
                    "client": client,
                    "provider": seed["provider"],
                    "codes": [f"LOAD{(n * 7919 + i) % 500:05d}"],
                    "lines": [
                        {"tariff": seed["tariff"], "period": 1, "price": "10.00", "currency": "USD"}
                    ],
                }
                headers = {**json_headers, "Idempotency-Key": uuid.uuid4().hex}
                return "POST", "/api/v1/redemptions", json.dumps(body), headers, {201}

            listing = (
                f"/billmgr?func=promotion.promocode&elid={seed['promotion']}"
                f"&auth={seed['session']}&out=bjson&p_cnt=50"
            )

            def promocode_list(n, i):
                return "GET", listing, None, {}, {200}

            targets = {
                "ceiling": ceiling,
                "redemption": redemption,
                "promocode_list": promocode_list,
            }
            for fn in targets.values():
                _drive(port, fn, 2)  # warm-up: connections, workers, caches
            # Side by side: the targets take turns in short slices, each round in the other
            # order, so a change in the machine's speed (it is shared) falls on all of them.
            runs: dict[str, list[dict]] = {name: [] for name in targets}
            for turn in range(ROUNDS):
                order = list(targets) if turn % 2 == 0 else list(reversed(targets))
                for name in order:
                    runs[name].append(_drive(port, targets[name], SECONDS / ROUNDS))
            results = {name: _summary(runs[name]) for name in targets}
            # Each round's pair, measured next to each other: how far the pooled ratio's rounds
            # spread (the ceiling is the load client's, and it moves from one slice to the next).
            round_ratios = [
                round(_rps(red) / (_rps(ceil) or 1), 3)
                for red, ceil in zip(runs["redemption"], runs["ceiling"], strict=True)
            ]
            for name, figures in results.items():
                _common.log(f"{name}: {figures}")
        finally:
            server.terminate()
            server.wait(10)
        ceiling_rps = results["ceiling"]["rps"] or 1
        redemption_ratio = round(results["redemption"]["rps"] / ceiling_rps, 3)
        _common.emit(
            {
                "bench": "http_load",
                "database": "postgresql",
                "seconds_per_target": SECONDS,
                "rounds": ROUNDS,
                "clients": CLIENTS,
                "gunicorn_workers": WORKERS,
                **results,
                "redemption_ratio": redemption_ratio,
                "redemption_ratio_rounds": round_ratios,
                "redemption_ratio_median": round(statistics.median(round_ratios), 3),
                "promocode_list_ratio": round(results["promocode_list"]["rps"] / ceiling_rps, 3),
                "targets": {"errors": "== 0", "redemption_ratio": ">= 0.2"},
                "ok": all(r["errors"] == 0 for r in results.values()) and redemption_ratio >= 0.2,
            }
        )


if __name__ == "__main__":
    main()
