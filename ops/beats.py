"""Signs of life and progress that must cross processes while a job's transaction is open.

A job's work is one transaction, so its progress and its worker's heartbeat cannot travel inside
it. On PostgreSQL another connection (the beating thread's own) writes them into rows that every
app server reads. SQLite has one writer for the whole file, and the job is that writer while it
runs, so there they go to files beside the database (SQLite means one machine, so every process
sees them).
"""

import datetime
import functools
from pathlib import Path

from django.core.cache.backends.filebased import FileBasedCache
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from common.models import Job
from ops.models import JobAttempt, WorkerBeat

WORKERS_LAST_SEEN = "workers:last-seen"


class DatabaseBeats:
    def attempt(
        self, *, attempt_id: int, job_id: int, done: int | None, at: datetime.datetime
    ) -> None:
        JobAttempt.objects.filter(pk=attempt_id, finished_at=None).update(heartbeat_at=at)
        if done is not None:
            Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(done=done)

    def attempt_seen(self, attempt: JobAttempt) -> datetime.datetime:
        return attempt.heartbeat_at

    def done(self, job: Job) -> int:
        return job.done

    def worker(self, *, worker: str, backend: str, started_at, at: datetime.datetime) -> None:
        WorkerBeat.objects.update_or_create(
            worker=worker, defaults={"backend": backend, "started_at": started_at, "seen_at": at}
        )
        # Every restart is a new worker: the ones gone for a day are forgotten.
        WorkerBeat.objects.filter(seen_at__lt=at - datetime.timedelta(days=1)).delete()

    def worker_last_seen(self) -> datetime.datetime | None:
        return WorkerBeat.objects.aggregate(last=Max("seen_at"))["last"]


class FileBeats:
    def __init__(self, directory: Path):
        # Django's file cache: one file per key, written to a temporary file and renamed.
        self.files = FileBasedCache(str(directory), {"TIMEOUT": 7 * 86400, "MAX_ENTRIES": 100_000})

    def attempt(
        self, *, attempt_id: int, job_id: int, done: int | None, at: datetime.datetime
    ) -> None:
        beat = {f"attempt:{attempt_id}": at.timestamp()}
        if done is not None:
            beat[f"job:{job_id}:done"] = done
        self.files.set_many(beat)

    def attempt_seen(self, attempt: JobAttempt) -> datetime.datetime:
        stamp = self.files.get(f"attempt:{attempt.pk}")
        if stamp is None:
            return attempt.heartbeat_at
        return max(attempt.heartbeat_at, datetime.datetime.fromtimestamp(stamp, datetime.UTC))

    def done(self, job: Job) -> int:
        if job.status != Job.Status.RUNNING:
            return job.done
        return max(job.done, self.files.get(f"job:{job.pk}:done", 0))

    def worker(self, *, worker: str, backend: str, started_at, at: datetime.datetime) -> None:
        self.files.set(WORKERS_LAST_SEEN, at.timestamp())

    def worker_last_seen(self) -> datetime.datetime | None:
        stamp = self.files.get(WORKERS_LAST_SEEN)
        return None if stamp is None else datetime.datetime.fromtimestamp(stamp, datetime.UTC)


@functools.cache
def _file_beats(database: str) -> FileBeats:
    return FileBeats(Path(f"{database}.beats"))


def beats() -> DatabaseBeats | FileBeats:
    """Where this database's beats go (the test database's own when tests run)."""
    if connection.vendor == "sqlite":
        return _file_beats(str(connection.settings_dict["NAME"]))
    return DatabaseBeats()


def seconds_since(moment: datetime.datetime | None) -> float | None:
    return None if moment is None else (timezone.now() - moment).total_seconds()
