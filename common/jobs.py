"""Background jobs: the request records a Job and returns; a worker process does the work.

A Job (common.models) is what the admin shows: kind, parameters, progress, end state. Its work runs
as a task of Django's Tasks API (ops.tasks.run_job) in whichever worker takes it (`make worker`):
the database backend by default, RQ on Redis with TASKS_BACKEND=rq.

- All or nothing: a kind's work runs in one transaction, so a failed or killed attempt leaves
  nothing behind (a kind registered with `all_or_nothing=False`, scheduled accrual, commits as it
  goes and its next run takes up the rest).
- At most JOBS_MAX_RUNNING jobs run at once over all workers: an attempt takes one of that many
  slots (ops.models.JobAttempt); with none free the task comes back later, waiting twice as long
  each time up to SLOT_WAIT_MAX_SECONDS.
- A transient database error (deadlock, serialization failure, lost connection, a locked SQLite)
  sends the job back to the queue for another attempt, up to JOBS_MAX_ATTEMPTS.
- While it runs its worker beats (ops.beats) and publishes its progress; an attempt without a beat
  for JOBS_LOST_AFTER seconds lost its worker, and its job fails (swept by every worker's beat).
- A queued job whose task is no longer waiting (its enqueue failed after the job committed, its
  task failed before taking it) is queued again by the same sweep after JOBS_REQUEUE_AFTER seconds
  (ops.models.JobTask records each job's task).
"""

import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

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
from django.db.models import Max
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks.exceptions import TaskResultDoesNotExist

from common.actors import Actor
from common.models import Job
from ops import worker as workers
from ops.beats import beats
from ops.models import JobAttempt, JobTask

logger = logging.getLogger(__name__)


class Finished(NamedTuple):
    """What a kind's work may answer instead of its message alone: the message and a result kept
    on the job (JSON), for work that finds figures rather than writing rows."""

    message: str
    result: dict[str, Any]


# kind -> work(params, actor, progress) returning the message shown when it is done (or Finished).
Work = Callable[[dict[str, Any], Actor, Callable[[int], None]], "str | Finished"]
JOBS: dict[str, Work] = {}
# The kinds whose work commits as it goes instead of all at once.
COMMITS_AS_IT_GOES: set[str] = set()

# A job waiting for a free slot asks again after this many seconds, twice as long each time it
# found none, up to the maximum (so a long wait costs a task every half minute, not every 2 s).
SLOT_WAIT_SECONDS = 2.0
SLOT_WAIT_MAX_SECONDS = 30.0
# Progress reaches other processes at most this late.
PROGRESS_EVERY_SECONDS = 0.5

LOST_MESSAGE = "Failed: its worker stopped (no heartbeat); nothing of it was saved."
LOST_MESSAGE_COMMITTED = (
    "Failed: its worker stopped (no heartbeat); what it committed stays, "
    "and the next run takes up the rest."
)
# SQLSTATEs worth another attempt: serialization failure, deadlock, connection and shutdown errors.
TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03"}


def job_kind(kind: str, *, all_or_nothing: bool = True) -> Callable[[Work], Work]:
    """Register a kind's work; `all_or_nothing=False` for work that commits as it goes."""

    def register(work: Work) -> Work:
        JOBS[kind] = work
        if not all_or_nothing:
            COMMITS_AS_IT_GOES.add(kind)
        return work

    return register


def lost_message(kind: str) -> str:
    return LOST_MESSAGE_COMMITTED if kind in COMMITS_AS_IT_GOES else LOST_MESSAGE


def job_create(*, kind: str, params: dict[str, Any], total: int, actor: Actor) -> Job:
    """Record a queued job and who started it, without queueing its task (job_start does)."""
    if kind not in JOBS:
        raise ValueError(f"No job kind {kind!r}")
    job = Job(kind=kind, params=params, total=total, username=actor.username)
    job.full_clean()
    job.save()
    JobTask.objects.create(job=job, queued_at=job.created_at, actor=actor_dump(actor))
    return job


def job_start(*, kind: str, params: dict[str, Any], total: int, actor: Actor) -> Job:
    """Record the job; its task is queued once the caller's transaction commits. An enqueue that
    fails then is logged, not raised (the job is saved and its page answers), and the workers'
    sweep queues the job again (jobs_requeue_stranded)."""
    job = job_create(kind=kind, params=params, total=total, actor=actor)
    transaction.on_commit(lambda: job_enqueue(job_id=job.pk), robust=True)
    return job


def job_enqueue(*, job_id: int, waits: int = 0, delay: float = 0.0) -> None:
    """Send the job's task to the queue, to run after `delay` seconds, and note which task it is.
    With JOBS_INLINE the job runs here instead, once the delay has passed."""
    if settings.JOBS_INLINE:
        if delay:
            _pause(delay)
        job_run(job_id, waits=waits, inline=True)
        return
    from ops.tasks import run_job

    run_after = timezone.now() + datetime.timedelta(seconds=delay) if delay else None
    result = run_job.using(queue_name=settings.JOBS_QUEUE, run_after=run_after).enqueue(
        job_id=job_id, waits=waits
    )
    JobTask.objects.filter(job_id=job_id).update(task_id=result.id, queued_at=timezone.now())


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def actor_dump(actor: Actor) -> dict[str, Any]:
    """The actor as a task's JSON argument."""
    user_id = actor.user.pk if actor.user is not None else None
    return {"user_id": user_id, "ip": actor.ip, "action": actor.action}


def actor_load(data: dict[str, Any]) -> Actor:
    user = None
    if data.get("user_id") is not None:
        user = get_user_model().objects.filter(pk=data["user_id"]).first()
    return Actor(user=user, ip=data.get("ip"), action=data.get("action", "job"))


def job_run(job_id: int, *, worker: str = "", waits: int = 0, inline: bool | None = None) -> Job:
    """Run a queued job: an attempt at it, or, with no slot free, a wait; a call for a job that is
    not queued (taken, or over) does nothing. What comes next (another attempt after a transient
    error, another look for a slot) goes back to the queue, or, `inline` (JOBS_INLINE, a command
    running a job itself), happens here after the same pause."""
    worker = worker or workers.name()
    inline = settings.JOBS_INLINE if inline is None else inline
    while (again := _step(job_id, worker=worker, waits=waits)) is not None:
        delay, waits = again
        if not inline:
            job_enqueue(job_id=job_id, waits=waits, delay=delay)
            break
        _pause(delay)
    return Job.objects.get(pk=job_id)


def _step(job_id: int, *, worker: str, waits: int) -> tuple[float, int] | None:
    """One attempt, or one look for a slot; (delay, waits) when the job should come back."""
    claimed = _claim(job_id, worker=worker)
    if claimed is None:
        return None
    if claimed is False:
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            message=f"Waiting: {settings.JOBS_MAX_RUNNING} job(s) run at once."
        )
        return min(SLOT_WAIT_SECONDS * 2 ** min(waits, 10), SLOT_WAIT_MAX_SECONDS), waits + 1
    job = Job.objects.get(pk=job_id)
    actor = JobTask.objects.filter(job_id=job_id).values_list("actor", flat=True).first()
    error, result = "", None
    with _beating(claimed, total=job.total) as progress:
        try:
            message = JOBS[job.kind](job.params, actor_load(actor or {}), progress)
            if isinstance(message, Finished):
                message, result = message
            outcome = JobAttempt.Outcome.DONE
        except ValidationError as exc:
            message, outcome = "; ".join(exc.messages), JobAttempt.Outcome.FAILED
        except Exception as exc:  # any failure must end the attempt, not leave it running
            error = f"{exc.__class__.__name__}: {exc}"
            if transient(exc) and claimed.number < settings.JOBS_MAX_ATTEMPTS:
                logger.warning(
                    "job %s attempt %s: transient error %s", job_id, claimed.number, error
                )
                outcome = JobAttempt.Outcome.RETRY
                message = f"Attempt {claimed.number} met a transient database error; trying again."
            else:
                logger.exception("job %s failed", job_id)
                outcome = JobAttempt.Outcome.FAILED
                message = f"Failed: {exc.__class__.__name__}"
    _forget_broken_connection()
    _finish(job, claimed, outcome=outcome, message=message, error=error, result=result)
    if outcome == JobAttempt.Outcome.RETRY:
        return 2.0**claimed.number, 0
    return None


def _claim(job_id: int, *, worker: str) -> JobAttempt | bool | None:
    """The running attempt; None when the job is not queued (taken, or over); False without a slot."""
    now = timezone.now()
    with transaction.atomic():
        if not Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, message=""
        ):
            return None
        # The job's row is this transaction's until it ends: its attempts are counted by no one
        # else meanwhile, so the number is the next one even if two tasks carry the same job.
        number = (JobAttempt.objects.filter(job_id=job_id).aggregate(n=Max("number"))["n"] or 0) + 1
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


def _finish(
    job: Job,
    attempt: JobAttempt,
    *,
    outcome: str,
    message: str,
    error: str,
    result: dict[str, Any] | None = None,
) -> None:
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
            jobs.update(
                status=Job.Status.DONE,
                done=job.total,
                message=message,
                result=result,
                finished_at=now,
            )
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
    for attempt in silent.select_related("job"):
        if board.attempt_seen(attempt) >= limit:
            continue  # beating (in files, on SQLite): no write, so no wait for the write lock
        with transaction.atomic():
            # Looked at again under the write lock (SQLite; a beat is a file there), and the
            # update itself only touches an attempt still silent (PostgreSQL; a beat is this
            # row's heartbeat_at): a beat landing after the first look keeps the attempt alive.
            seen = board.attempt_seen(attempt)
            if seen >= limit:
                continue
            if JobAttempt.objects.filter(
                pk=attempt.pk, finished_at=None, heartbeat_at__lt=limit
            ).update(
                finished_at=at,
                outcome=JobAttempt.Outcome.LOST,
                error=f"No heartbeat since {seen.isoformat(timespec='seconds')}",
            ):
                failed += Job.objects.filter(pk=attempt.job_id, status=Job.Status.RUNNING).update(
                    status=Job.Status.FAILED,
                    done=0,
                    message=lost_message(attempt.job.kind),
                    finished_at=at,
                )
    return failed


def jobs_requeue_stranded(*, at: datetime.datetime | None = None) -> int:
    """Queue again the queued jobs whose task is no longer waiting in the queue (an enqueue that
    failed, a task that failed before it took its job), JOBS_REQUEUE_AFTER seconds after they
    were last queued; answers how many."""
    at = at or timezone.now()
    limit = at - datetime.timedelta(seconds=settings.JOBS_REQUEUE_AFTER)
    requeued = 0
    for entry in JobTask.objects.filter(job__status=Job.Status.QUEUED, queued_at__lt=limit):
        if _task_waiting(entry.task_id):
            continue
        # Of the workers sweeping at once, the one whose guarded update lands queues it.
        if JobTask.objects.filter(pk=entry.pk, queued_at=entry.queued_at).update(queued_at=at):
            logger.warning("job %s: its task %r is gone; queued again", entry.pk, entry.task_id)
            job_enqueue(job_id=entry.pk)
            requeued += 1
    return requeued


def _task_waiting(task_id: str) -> bool:
    """Whether the task is in the queue still (or waits for its moment, a retry's delay). One
    that started and left its job queued is gone: it failed, or its worker died."""
    if not task_id:
        return False
    from ops.tasks import run_job

    try:
        return run_job.get_result(task_id).status == TaskResultStatus.READY
    except TaskResultDoesNotExist:
        return False


def job_done_so_far(job: Job) -> int:
    return beats().done(job)
