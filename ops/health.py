"""/healthz (the process answers) and /readyz (it can serve: database, schema, a worker)."""

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

from ops.beats import beats, seconds_since

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


def _worker() -> str:
    needed = settings.READYZ_WORKER_SECONDS
    if not needed or settings.JOBS_INLINE:
        return "ok"
    seen = seconds_since(beats().worker_last_seen())
    if seen is None:
        return "no worker seen"
    if seen > needed:
        return f"no worker seen for {int(seen)} s"
    return "ok"


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
        checks["migrations"] = _migrations()
        checks["worker"] = _worker()
    except DatabaseError as exc:
        checks["database"] = f"unreachable: {exc.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)
