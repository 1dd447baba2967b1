"""A worker process: the jobs' tasks (database or RQ backend), its heartbeat, the sweep of lost
jobs and the schedule, all in one process that `make worker` starts (and `make run` beside the
development server)."""

import logging
import os
import secrets
import socket
import threading

from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone

logger = logging.getLogger(__name__)

_name = ""


def name() -> str:
    """This worker's name, as its job attempts and beats carry it."""
    return _name or f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat(threading.Thread):
    """Every JOBS_HEARTBEAT_SECONDS: say this worker lives, fail lost jobs, start due schedules."""

    def __init__(self, worker: str):
        super().__init__(name="worker-heartbeat", daemon=True)
        self.worker = worker
        self.started_at = timezone.now()
        self.stopping = threading.Event()

    def beat(self) -> None:
        from common.jobs import jobs_sweep_lost
        from ops.beats import beats
        from ops.schedule import schedules_tick

        now = timezone.now()
        for step in (
            lambda: beats().worker(
                worker=self.worker,
                backend=settings.TASKS_BACKEND,
                started_at=self.started_at,
                at=now,
            ),
            lambda: jobs_sweep_lost(at=now),
            lambda: schedules_tick(at=now),
        ):
            try:
                step()
            except DatabaseError as exc:  # a locked or unreachable database: next beat again
                logger.warning("worker heartbeat: %s", exc)

    def run(self) -> None:
        try:
            while True:
                self.beat()
                if self.stopping.wait(settings.JOBS_HEARTBEAT_SECONDS):
                    return
        finally:
            connections.close_all()


def run(*, queue: str, max_tasks: int | None = None) -> None:
    """Work until stopped (SIGTERM/SIGINT: after the task at hand)."""
    global _name
    _name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    heartbeat = Heartbeat(_name)
    heartbeat.start()
    logger.info("worker %s on queue %s (%s backend)", _name, queue, settings.TASKS_BACKEND)
    try:
        if settings.TASKS_BACKEND == "rq":
            _run_rq(queue, max_tasks)
        else:
            _run_database(queue, max_tasks)
    finally:
        heartbeat.stopping.set()


def _run_database(queue: str, max_tasks: int | None) -> None:
    from django_tasks_db.management.commands.db_worker import Worker

    worker = Worker(
        queue_names=[queue],
        interval=0.5,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=max_tasks,
        worker_id=_name[-64:],
        excluded_queue_names=[],
    )
    worker.configure_signals()
    worker.run()


def _run_rq(queue: str, max_tasks: int | None) -> None:
    import django_rq
    from django_tasks_rq.backend import Job

    # SimpleWorker runs the task in this process, as the database worker does: no fork, so no
    # database connection is shared between parent and child, and killing the worker kills the
    # job. The scheduler thread moves deferred tasks (retries, waits for a slot) to the queue.
    worker = django_rq.get_worker(queue, job_class=Job, worker_class="rq.worker.SimpleWorker")
    worker.work(with_scheduler=True, max_jobs=max_tasks, logging_level="WARNING")
