"""A worker process: the jobs' tasks (database or RQ backend), its heartbeat, the sweeps of lost
and stranded jobs and the schedule, all in one process that `make worker` starts (and `make run`
beside the development server)."""

import logging
import os
import secrets
import socket
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connections
from django.utils import autoreload, timezone

logger = logging.getLogger(__name__)

_name = ""


def name() -> str:
    """This worker's name, as its job attempts and beats carry it."""
    return _name or f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat(threading.Thread):
    """Every JOBS_HEARTBEAT_SECONDS: say this worker lives, fail lost jobs, queue stranded ones
    again, start due schedules. A step that fails (a locked or unreachable database, Redis away,
    a setting it cannot read) is logged and tried again at the next beat; the others still run,
    and the thread goes on: a worker that stopped beating would look dead while it takes tasks."""

    def __init__(self, worker: str):
        super().__init__(name="worker-heartbeat", daemon=True)
        self.worker = worker
        self.started_at = timezone.now()
        self.stopping = threading.Event()

    def beat(self) -> None:
        from common.jobs import jobs_requeue_stranded, jobs_sweep_lost
        from ops.beats import beats
        from ops.schedule import schedules_tick

        now = timezone.now()
        steps = {
            "beat": lambda: beats().worker(
                worker=self.worker,
                backend=settings.TASKS_BACKEND,
                started_at=self.started_at,
                at=now,
            ),
            "lost jobs": lambda: jobs_sweep_lost(at=now),
            "stranded jobs": lambda: jobs_requeue_stranded(at=now),
            "schedule": lambda: schedules_tick(at=now),
        }
        for name, step in steps.items():
            try:
                step()
            except Exception:
                logger.exception("worker heartbeat: %s failed; trying again at the next beat", name)

    def run(self) -> None:
        try:
            while True:
                close_old_connections()  # a connection broken at the last beat is replaced
                self.beat()
                if self.stopping.wait(settings.JOBS_HEARTBEAT_SECONDS):
                    return
        finally:
            connections.close_all()


def run(*, queue: str, max_tasks: int | None = None, reload: bool = False) -> None:
    """Work until stopped (SIGTERM/SIGINT: after the task at hand); `reload` restarts the worker
    when the code changes (development, database backend)."""
    if settings.TASKS_BACKEND == "rq":
        if reload:
            raise ImproperlyConfigured("--reload works with the database backend only")
        _beating(lambda: _run_rq(queue, max_tasks))
        return
    from django_tasks_db.management.commands.db_worker import Worker

    worker = Worker(
        queue_names=[queue],
        interval=1,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=max_tasks,
        worker_id=_new_name()[-64:],
        excluded_queue_names=[],
    )
    if not reload:
        worker.configure_signals()
        _beating(worker.run)
        return
    # The reloader runs the work on a thread of its child process; signals belong to that
    # process's main thread, so they are set up there first.
    if os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true":
        worker.configure_signals()
    autoreload.run_with_reloader(lambda: _beating(worker.run))


def _new_name() -> str:
    global _name
    _name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    return _name


def _beating(work) -> None:
    heartbeat = Heartbeat(_name or _new_name())
    heartbeat.start()
    logger.info("worker %s (%s backend)", _name, settings.TASKS_BACKEND)
    try:
        work()
    finally:
        heartbeat.stopping.set()


def _run_rq(queue: str, max_tasks: int | None) -> None:
    import django_rq
    from django_tasks_rq.backend import Job

    # SimpleWorker runs the task in this process, as the database worker does: no fork, so no
    # database connection is shared between parent and child, and killing the worker kills the
    # job. The scheduler thread moves deferred tasks (retries, waits for a slot) to the queue.
    worker = django_rq.get_worker(queue, job_class=Job, worker_class="rq.worker.SimpleWorker")
    worker.work(with_scheduler=True, max_jobs=max_tasks, logging_level="WARNING")
