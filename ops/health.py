"""/healthz (the process answers) and /readyz (it can serve: database, schema; and the workers).

A web server serves without a worker (jobs wait in the queue), so a load balancer's /readyz does
not depend on one: a worker deploy or crash must not take every web server out of rotation. The
worker check is in the answer all the same, and /readyz?worker=1 fails on it (for a monitor, or a
deployment's check that the workers came up).
"""

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

from ops.selectors import worker_seen

_schema_ready = False


def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers, and the ceiling the HTTP load bench compares against."""
    return HttpResponse("ok", content_type="text/plain")


def _migrations() -> str:
    global _schema_ready
    if not _schema_ready:  # once applied, applied: the graph is read only until then
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            return f"{len(pending)} migration(s) not applied"
        _schema_ready = True
    return "ok"


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {}
    needed = ["database", "migrations"]
    if request.GET.get("worker") == "1":
        needed.append("worker")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
        checks["migrations"] = _migrations()
        checks["worker"] = worker_seen()
    except DatabaseError as exc:
        checks["database"] = f"unreachable: {exc.__class__.__name__}"
    ready = all(checks.get(name) == "ok" for name in needed)
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)
