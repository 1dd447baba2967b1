"""Processes started by tests: workers and app servers on the test database, on free ports."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-only-secret-key-for-processes-started-by-tests-0123456789"


def database_url() -> str:
    """The test database, as processes started by the test reach it."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "PGBOUNCER", "TASKS_BACKEND", "REDIS_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY=SECRET,
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url(),
        JOBS_HEARTBEAT_SECONDS="0.2",
        ACCRUAL_EVERY_HOURS="0",
        PYTHONUNBUFFERED="1",
    )
    if settings.DATABASES["default"].get("DISABLE_SERVER_SIDE_CURSORS"):
        env["PGBOUNCER"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], object], *, seconds: float, every: float = 0.05) -> object:
    """check()'s first truthy answer; fails the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"still not so after {seconds} s")
        time.sleep(every)


class Processes:
    def __init__(self, logs: Path):
        self.logs = logs
        self.running: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], **env: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        # A session of its own: stopping it stops what it started (RQ's scheduler process).
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=process_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log = log
        self.running.append(process)
        return process

    def worker(self, name: str = "worker", **env: str) -> subprocess.Popen:
        return self.start(name, [sys.executable, "manage.py", "worker"], **env)

    def kill(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def stop_all(self) -> None:
        for process in self.running:
            self._signal(process, signal.SIGTERM)
        for process in self.running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
            self._signal(process, signal.SIGKILL)  # and whatever it left in its session
            process.wait(10)
            process.log.close()

    @staticmethod
    def _signal(process: subprocess.Popen, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def redis_queue(settings) -> Iterator[str]:
    """A queue of our own on the machine's Redis, the RQ backend set up for it, emptied after."""
    import django_rq
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"needs Redis at {url}")
    name = f"promo-test-{os.getpid()}-{time.monotonic_ns()}"
    settings.TASKS_BACKEND, settings.JOBS_QUEUE = "rq", name
    queues = [name, "default"]
    settings.RQ_QUEUES = {q: {"URL": url, "DEFAULT_TIMEOUT": -1} for q in queues}
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": queues}}
    try:
        yield url
    finally:
        django_rq.get_queue(name).delete(delete_jobs=True)


class QueueOutage:
    """The task queue unreachable, as in a Redis outage: the RQ backend on a port where nothing
    listens, so every enqueue fails. `end()` brings a queue back (the database backend, whose
    tasks `run_queued_tasks` runs)."""

    def __init__(self, settings):
        self.settings = settings
        url = f"redis://127.0.0.1:{free_port()}/0"
        settings.TASKS_BACKEND = "rq"
        settings.RQ_QUEUES = {"default": {"URL": url, "DEFAULT_TIMEOUT": -1}}
        settings.TASKS = {
            "default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}
        }

    def end(self) -> None:
        self.settings.TASKS_BACKEND = "database"
        self.settings.TASKS = {
            "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}
        }


@pytest.fixture
def queue_outage(settings) -> QueueOutage:
    return QueueOutage(settings)


def run_queued_tasks() -> None:
    """Run the database backend's ready tasks in this process, as its worker does (without
    closing connections between tasks, so it works inside a test's transaction too)."""
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult
    from django_tasks_db.utils import exclusive_transaction

    worker = Worker(
        queue_names=[settings.JOBS_QUEUE],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
    )
    while True:
        with exclusive_transaction():
            task = DBTaskResult.objects.ready().filter(queue_name=settings.JOBS_QUEUE).get_locked()
            if task is None:
                return
            task.claim(worker.worker_id)
        worker.run_task(task)
