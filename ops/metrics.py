"""/metrics in Prometheus' text format, for operators' monitoring.

Two kinds of figures:
- what happens in this process, counted at the doors by one middleware (no door or service carries
  metrics code): quotes and redemptions by door and outcome with latency histograms; and brake
  refusals, counted where a brake refuses (common.throttle's `brake_refused` signal), by the door
  the request came through and the brake. Under gunicorn with PROMETHEUS_MULTIPROC_DIR set, every worker process of the server
  adds to the same figures (prometheus_client's multiprocess mode); Prometheus scrapes each server.
- what the database holds, read when scraped (shared by every server, cached for a few seconds):
  codes, uses, rewards accrued, queue depth, jobs and their attempts' outcomes.
"""

import contextvars
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Iterator

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from common.net import client_ip

REGISTRY = CollectorRegistry(auto_describe=True)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

QUOTES = Counter(
    "promo_quotes", "Quotes answered, by door and outcome.", ["door", "outcome"], registry=REGISTRY
)
QUOTE_SECONDS = Histogram(
    "promo_quote_seconds",
    "Time to answer a quote.",
    ["door"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
REDEMPTIONS = Counter(
    "promo_redemptions",
    "Redemptions and releases answered, by door, operation and outcome.",
    ["door", "operation", "outcome"],
    registry=REGISTRY,
)
REDEMPTION_SECONDS = Histogram(
    "promo_redemption_seconds",
    "Time to answer a redemption or release.",
    ["door", "operation"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
BRAKE_REFUSALS = Counter(
    "promo_brake_refusals",
    "Attempts refused by a brake (common.throttle), by door and brake (scope).",
    ["door", "scope"],
    registry=REGISTRY,
)

# The door of the request this thread serves, for what is counted deeper down (brake refusals).
_door: contextvars.ContextVar[str] = contextvars.ContextVar("door", default="none")

# The func door answers 200 with the error in the body, first thing: {"error":{"type":"limit"...,
# {"doc":{"error":{"$type":"limit"..., <doc><error type="limit"...
FUNC_ERROR = re.compile(rb'error"?\s*[:>]?\s*[{]?\s*[^>]{0,40}?\$?type"?\s*[:=]\s*"(\w+)"')
FUNC_OPERATIONS = {
    "promotion.quote": "quote",
    "promotion.redeem": "redeem",
    "promotion.release": "release",
}
RELEASE_PATH = re.compile(r"^/api/v1/redemptions/\d+/release$")
REST_OUTCOMES = {400: "value", 401: "auth", 403: "access", 404: "missing", 409: "conflict"}


def _door_of(path: str) -> str:
    if path == "/billmgr":
        return "billmgr"
    for prefix, door in (("/digipay/", "digipay"), ("/api/", "rest"), ("/admin/", "admin")):
        if path.startswith(prefix):
            return door
    return "other"


def _operation(request: HttpRequest, door: str) -> str | None:
    """The operation of a request the metrics follow ("" until the func door has read which);
    None for the rest."""
    if door == "billmgr":
        return ""
    if door != "rest" or request.method != "POST":
        return None
    path = request.path_info
    if path == "/api/v1/quotes":
        return "quote"
    if path == "/api/v1/redemptions":
        return "redeem"
    if RELEASE_PATH.match(path):
        return "release"
    return None


def _outcome(door: str, response: HttpResponse) -> str:
    if door == "billmgr":
        head = response.content[:200] if not response.streaming else b""
        match = FUNC_ERROR.search(head) if b"error" in head else None
        if match is None:
            return "ok" if response.status_code < 500 else "internal"
        return match.group(1).decode()
    code = response.status_code
    if code < 400:
        return "ok"
    if code == 429:
        return "throttled"
    return REST_OUTCOMES.get(code, "error" if code >= 500 else "refused")


class RequestMetricsMiddleware:
    """Counts and times the quote and redemption doors; tells the brakes' counter which door a
    refusal came through."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        door = _door_of(request.path_info)
        token = _door.set(door)
        try:
            operation = _operation(request, door)
            if operation is None:
                return self.get_response(request)
            began = time.perf_counter()
            response = self.get_response(request)
            seconds = time.perf_counter() - began
        finally:
            _door.reset(token)
        outcome = _outcome(door, response)
        if door == "billmgr":
            operation = FUNC_OPERATIONS.get(getattr(request, "billmgr_func", ""), "")
        if operation == "quote":
            QUOTES.labels(door, outcome).inc()
            QUOTE_SECONDS.labels(door).observe(seconds)
        elif operation:
            REDEMPTIONS.labels(door, operation, outcome).inc()
            REDEMPTION_SECONDS.labels(door, operation).observe(seconds)
        return response


def count_brake_refusal(sender, *, scope: str, **kwargs) -> None:
    """common.throttle.brake_refused's receiver (connected by OpsConfig.ready)."""
    BRAKE_REFUSALS.labels(_door.get(), scope).inc()


class DatabaseCollector:
    """Figures read from the database when scraped, cached for METRICS_DATABASE_SECONDS."""

    def collect(self) -> Iterator:
        figures = cache.get("ops:metrics:database")
        if figures is None:
            try:
                figures = database_figures()
            except DatabaseError:
                return
            cache.set("ops:metrics:database", figures, settings.METRICS_DATABASE_SECONDS)
        for name, kind, help_text, labels, rows in figures:
            family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name, help_text, labels=labels
            )
            for values, value in rows:
                family.add_metric(values, value)
            yield family


def database_figures() -> list[tuple]:
    from common.models import Job
    from ops.models import JobAttempt
    from promotions.models import BudgetSpend, PromoCode, PromoCodeUsage
    from referrals.models import Reward

    codes = PromoCode.objects.count()
    uses = list(PromoCodeUsage.objects.values_list("status").annotate(n=Count("id")))
    rewards = list(
        Reward.objects.values_list("currency__iso").annotate(n=Count("id"), total=Sum("amount"))
    )
    budgets = list(
        BudgetSpend.objects.values_list("promotion__provider__currency__iso")
        .annotate(total=Sum("spent"))
        .order_by()
    )
    jobs = list(Job.objects.values_list("kind", "status").annotate(n=Count("id")))
    attempts = list(JobAttempt.objects.values_list("outcome").annotate(n=Count("id")))
    return [
        (
            "promo_codes",
            "gauge",
            "Promo codes in the database (generated or entered).",
            [],
            [([], codes)],
        ),
        (
            "promo_code_uses",
            "gauge",
            "Uses of promo codes, by status.",
            ["status"],
            [([s], n) for s, n in uses],
        ),
        (
            "promo_rewards_accrued",
            "counter",
            "Reward ledger rows accrued, by currency.",
            ["currency"],
            [([c], n) for c, n, _ in rewards],
        ),
        (
            "promo_rewards_accrued_amount",
            "gauge",
            "Sum of the reward ledger, by currency.",
            ["currency"],
            [([c], float(t or 0)) for c, _, t in rewards],
        ),
        (
            "promo_budget_spent",
            "gauge",
            "Discount given against promotions' budgets (every period, releases given back), by currency.",
            ["currency"],
            [([c], float(t or 0)) for c, t in budgets],
        ),
        (
            "promo_task_queue_depth",
            "gauge",
            "Tasks waiting in the job queue.",
            ["queue"],
            [([settings.JOBS_QUEUE], queue_depth())],
        ),
        (
            "promo_jobs",
            "gauge",
            "Background jobs by kind and status.",
            ["kind", "status"],
            [([k, s], n) for k, s, n in jobs],
        ),
        (
            "promo_job_attempts",
            "counter",
            "Attempts at background jobs, by outcome.",
            ["outcome"],
            [([o], n) for o, n in attempts],
        ),
    ]


def queue_depth() -> int:
    if settings.TASKS_BACKEND == "rq":
        import django_rq

        return django_rq.get_queue(settings.JOBS_QUEUE).count
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.ready().filter(queue_name=settings.JOBS_QUEUE).count()


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    address = client_ip(request)
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(
        ip in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        raise PermissionDenied
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    body = generate_latest(registry) + generate_latest(_DATABASE_REGISTRY)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


_DATABASE_REGISTRY = CollectorRegistry(auto_describe=False)
_DATABASE_REGISTRY.register(DatabaseCollector())
