"""Background jobs: the request records a Job and returns; a worker process does the work.

A Job (common.models) is what the admin shows: kind, parameters, progress, end state. Its work runs
as a task of Django's Tasks API (ops.tasks.run_job) in whichever worker takes it (`make worker`):
the database backend by default, RQ on Redis with TASKS_BACKEND=rq.

- All or nothing: a kind's work runs in one transaction, so a failed or killed attempt leaves
  nothing behind.
- At most JOBS_MAX_RUNNING jobs run at once over all workers: an attempt takes one of that many
  slots (ops.models.JobAttempt); with none free the task comes back a moment later.
- A transient database error (deadlock, serialization failure, lost connection, a locked SQLite)
  sends the job back to the queue for another attempt, up to JOBS_MAX_ATTEMPTS.
- While it runs its worker beats (ops.beats) and publishes its progress; an attempt without a beat
  for JOBS_LOST_AFTER seconds lost its worker, and its job fails (swept by every worker's beat).
"""

import datetime
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.utils import timezone

from common.actors import Actor
from common.models import Job
from ops.beats import beats
from ops.models import JobAttempt

logger = logging.getLogger(__name__)

# kind -> work(params, actor, progress) returning the message shown when it is done.
Work = Callable[[dict[str, Any], Actor, Callable[[int], None]], str]
JOBS: dict[str, Work] = {}

# A job waiting for a free slot asks again after this many seconds.
SLOT_WAIT_SECONDS = 2.0
# Progress reaches other processes at most this late.
PROGRESS_EVERY_SECONDS = 0.5

LOST_MESSAGE = "Failed: its worker stopped (no heartbeat); nothing of it was saved."
# SQLSTATEs worth another attempt: serialization failure, deadlock, connection and shutdown errors.
TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03"}


def job_kind(kind: str) -> Callable[[Work], Work]:
    def register(work: Work) -> Work:
        JOBS[kind] = work
        return work

    return register


def job_start(*, kind: str, params: dict[str, Any], total: int, actor: Actor) -> Job:
    """Record the job; its task is queued once the caller's transaction commits."""
    if kind not in JOBS:
        raise ValueError(f"No job kind {kind!r}")
    job = Job(kind=kind, params=params, total=total, username=actor.username)
    job.full_clean()
    job.save()
    who = actor_dump(actor)
    transaction.on_commit(lambda: job_enqueue(job_id=job.pk, actor=who))
    return job


def job_enqueue(
    *, job_id: int, actor: dict[str, Any], attempt: int = 1, delay: float = 0.0
) -> None:
    if settings.JOBS_INLINE:
        if delay == 0:
            job_run(job_id, actor=actor, attempt=attempt)
        return
    from ops.tasks import run_job

    run_after = timezone.now() + datetime.timedelta(seconds=delay) if delay else None
    run_job.using(queue_name=settings.JOBS_QUEUE, run_after=run_after).enqueue(
        job_id=job_id, actor=actor, attempt=attempt
    )


def actor_dump(actor: Actor) -> dict[str, Any]:
    """The actor as a task's JSON argument."""
    user_id = actor.user.pk if actor.user is not None else None
    return {"user_id": user_id, "ip": actor.ip, "action": actor.action}


def actor_load(data: dict[str, Any]) -> Actor:
    user = None
    if data.get("user_id") is not None:
        user = get_user_model().objects.filter(pk=data["user_id"]).first()
    return Actor(user=user, ip=data.get("ip"), action=data.get("action", "job"))


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_run(
    job_id: int, *, actor: dict[str, Any] | Actor, attempt: int = 1, worker: str = ""
) -> Job:
    """Run a queued job to its end; a second call for the same job does nothing."""
    worker = worker or this_worker()
    if isinstance(actor, Actor):
        actor = actor_dump(actor)
    claimed = _claim(job_id, number=attempt, worker=worker)
    if claimed is None:
        return Job.objects.get(pk=job_id)
    if claimed is False:
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            message=f"Waiting: {settings.JOBS_MAX_RUNNING} job(s) run at once."
        )
        job_enqueue(job_id=job_id, actor=actor, attempt=attempt, delay=SLOT_WAIT_SECONDS)
        return Job.objects.get(pk=job_id)
    job = Job.objects.get(pk=job_id)
    error = ""
    with _beating(claimed, total=job.total) as progress:
        try:
            message = JOBS[job.kind](job.params, actor_load(actor), progress)
            outcome = JobAttempt.Outcome.DONE
        except ValidationError as exc:
            message, outcome = "; ".join(exc.messages), JobAttempt.Outcome.FAILED
        except Exception as exc:  # any failure must end the attempt, not leave it running
            error = f"{exc.__class__.__name__}: {exc}"
            if transient(exc) and attempt < settings.JOBS_MAX_ATTEMPTS:
                logger.warning("job %s attempt %s: transient error %s", job_id, attempt, error)
                outcome = JobAttempt.Outcome.RETRY
                message = f"Attempt {attempt} met a transient database error; trying again."
            else:
                logger.exception("job %s failed", job_id)
                outcome = JobAttempt.Outcome.FAILED
                message = f"Failed: {exc.__class__.__name__}"
    _forget_broken_connection()
    _finish(job, claimed, outcome=outcome, message=message, error=error)
    if outcome == JobAttempt.Outcome.RETRY:
        job_enqueue(job_id=job_id, actor=actor, attempt=attempt + 1, delay=2.0**attempt)
    return Job.objects.get(pk=job_id)


def _claim(job_id: int, *, number: int, worker: str) -> JobAttempt | bool | None:
    """The running attempt; None when the job is not queued (taken, or over); False without a slot."""
    now = timezone.now()
    with transaction.atomic():
        if not Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, message=""
        ):
            return None
        taken = set(JobAttempt.objects.filter(finished_at=None).values_list("slot", flat=True))
        for slot in range(settings.JOBS_MAX_RUNNING):
            if slot in taken:
                continue
            try:
                with transaction.atomic():
                    return JobAttempt.objects.create(
                        job_id=job_id,
                        number=number,
                        slot=slot,
                        worker=worker,
                        started_at=now,
                        heartbeat_at=now,
                    )
            except IntegrityError:
                continue  # another worker took this slot a moment ago
        transaction.set_rollback(True)
        return False


def _finish(job: Job, attempt: JobAttempt, *, outcome: str, message: str, error: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        JobAttempt.objects.filter(pk=attempt.pk).update(
            finished_at=now, outcome=outcome, error=error
        )
        jobs = Job.objects.filter(pk=job.pk)
        if outcome == JobAttempt.Outcome.RETRY:
            jobs.filter(status=Job.Status.RUNNING).update(status=Job.Status.QUEUED, message=message)
        elif outcome == JobAttempt.Outcome.DONE:
            # Even if it was swept as lost meanwhile: its work committed, so it is done.
            jobs.update(status=Job.Status.DONE, done=job.total, message=message, finished_at=now)
        else:
            jobs.filter(status=Job.Status.RUNNING).update(
                status=Job.Status.FAILED, done=0, message=message, finished_at=now
            )


def transient(exc: BaseException) -> bool:
    """A database error that another attempt may not meet."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate:
        return sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith("08")
    text = str(exc).lower()
    return any(
        t in text for t in ("database is locked", "deadlock", "could not serialize", "connection")
    )


def _forget_broken_connection() -> None:
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            continue
        conn.close_if_unusable_or_obsolete()


class _Beat(threading.Thread):
    """Publishes a running attempt's heartbeat and progress from its own thread (and connection)."""

    def __init__(self, attempt: JobAttempt, total: int):
        super().__init__(name=f"job-{attempt.job_id}-beat", daemon=True)
        self.attempt, self.total = attempt, total
        self.done = self.published = 0
        self.stopping = threading.Event()

    def progress(self, done: int) -> None:
        self.done = min(max(done, 0), self.total)

    def run(self) -> None:
        last_beat = timezone.now()
        try:
            while not self.stopping.wait(PROGRESS_EVERY_SECONDS):
                now = timezone.now()
                moved = self.done != self.published
                due = (now - last_beat).total_seconds() >= settings.JOBS_HEARTBEAT_SECONDS
                if not (moved or due):
                    continue
                done = self.done
                try:
                    beats().attempt(
                        attempt_id=self.attempt.pk,
                        job_id=self.attempt.job_id,
                        done=done if moved else None,
                        at=now,
                    )
                except DatabaseError:
                    logger.warning("job %s: heartbeat not written", self.attempt.job_id)
                    continue
                self.published, last_beat = done, now
        finally:
            connections.close_all()


@contextmanager
def _beating(attempt: JobAttempt, *, total: int) -> Iterator[Callable[[int], None]]:
    beat = _Beat(attempt, total)
    beat.start()
    try:
        yield beat.progress
    finally:
        beat.stopping.set()
        beat.join()


def jobs_sweep_lost(*, at: datetime.datetime | None = None, job_id: int | None = None) -> int:
    """Fail the running jobs whose worker stopped beating; answers how many."""
    at = at or timezone.now()
    limit = at - datetime.timedelta(seconds=settings.JOBS_LOST_AFTER)
    board = beats()
    silent = JobAttempt.objects.filter(finished_at=None, heartbeat_at__lt=limit)
    if job_id is not None:
        silent = silent.filter(job_id=job_id)
    failed = 0
    for attempt in silent:
        seen = board.attempt_seen(attempt)
        if seen >= limit:
            continue
        with transaction.atomic():
            if JobAttempt.objects.filter(pk=attempt.pk, finished_at=None).update(
                finished_at=at,
                outcome=JobAttempt.Outcome.LOST,
                error=f"No heartbeat since {seen.isoformat(timespec='seconds')}",
            ):
                failed += Job.objects.filter(pk=attempt.job_id, status=Job.Status.RUNNING).update(
                    status=Job.Status.FAILED, done=0, message=LOST_MESSAGE, finished_at=at
                )
    return failed


def job_done_so_far(job: Job) -> int:
    return beats().done(job)
