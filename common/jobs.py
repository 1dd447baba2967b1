"""Background jobs for the admin: the request records a Job and returns; a thread does the work.

The work runs in one transaction (nothing half-saved), so its progress cannot travel inside it:
on PostgreSQL a second connection of the worker writes `done` as it moves, visible to every app
server; on SQLite, which locks the whole file while writing, progress is kept in this process and
the row is written when the job ends.
"""

import datetime
import logging
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import close_old_connections, connections, transaction
from django.utils import timezone

from common.actors import Actor
from common.models import Job

logger = logging.getLogger(__name__)

# kind -> work(params, actor, progress) returning the message shown when it is done.
Work = Callable[[dict[str, Any], Actor, Callable[[int], None]], str]
JOBS: dict[str, Work] = {}
_live_progress: dict[int, int] = {}


def job_kind(kind: str) -> Callable[[Work], Work]:
    def register(work: Work) -> Work:
        JOBS[kind] = work
        return work

    return register


def job_start(*, kind: str, params: dict[str, Any], total: int, actor: Actor) -> Job:
    """Record the job; it starts once the caller's transaction commits."""
    if kind not in JOBS:
        raise ValueError(f"No job kind {kind!r}")
    jobs_sweep_stale()
    job = Job(kind=kind, params=params, total=total, username=actor.username)
    job.full_clean()
    job.save()
    transaction.on_commit(lambda: _launch(job.pk, actor))
    return job


def _launch(job_id: int, actor: Actor) -> None:
    if getattr(settings, "JOBS_INLINE", False):
        job_run(job_id, actor=actor)
        return
    threading.Thread(target=_run_in_thread, args=(job_id, actor), daemon=True).start()


def _run_in_thread(job_id: int, actor: Actor) -> None:
    close_old_connections()
    try:
        job_run(job_id, actor=actor)
    finally:
        connections.close_all()


# A job still queued or running this long after it was started lost its worker (a restart, a
# killed process): it is marked failed so that nobody waits on it.
STALE_AFTER = datetime.timedelta(hours=2)


def jobs_sweep_stale(*, at: datetime.datetime | None = None) -> int:
    """Mark the jobs whose worker is gone as failed; answers how many."""
    at = at or timezone.now()
    return Job.objects.filter(
        status__in=[Job.Status.QUEUED, Job.Status.RUNNING], created_at__lt=at - STALE_AFTER
    ).update(
        status=Job.Status.FAILED,
        message="Abandoned: its worker stopped before it finished; nothing of it was saved.",
        finished_at=at,
    )


def job_done_so_far(job: Job) -> int:
    return max(job.done, _live_progress.get(job.pk, 0))


def job_run(job_id: int, *, actor: Actor) -> Job:
    """Run a queued job to its end; a second call for the same job does nothing."""
    if not Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING
    ):
        return Job.objects.get(pk=job_id)
    job = Job.objects.get(pk=job_id)
    reporter = _ProgressReporter(job)
    try:
        message = JOBS[job.kind](job.params, actor, reporter)
        status, done = Job.Status.DONE, job.total
    except ValidationError as exc:
        message, status, done = "; ".join(exc.messages), Job.Status.FAILED, 0
    except Exception as exc:  # any failure must end the job, not leave it running
        logger.exception("job %s failed", job_id)
        message, status, done = f"Failed: {exc.__class__.__name__}", Job.Status.FAILED, 0
    finally:
        reporter.close()
    Job.objects.filter(pk=job_id).update(
        status=status, done=done, message=message, finished_at=timezone.now()
    )
    return Job.objects.get(pk=job_id)


class _ProgressReporter:
    def __init__(self, job: Job):
        self.job_id, self.total = job.pk, job.total
        self.side = (
            connections.create_connection("default")
            if connections["default"].vendor == "postgresql"
            else None
        )

    def __call__(self, done: int) -> None:
        done = min(done, self.total)
        _live_progress[self.job_id] = done
        if self.side is not None:
            with self.side.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {Job._meta.db_table} SET done = %s WHERE id = %s", [done, self.job_id]
                )

    def close(self) -> None:
        _live_progress.pop(self.job_id, None)
        if self.side is not None:
            self.side.close()
