"""Jobs run by real worker processes, on the database backend and on RQ against the real Redis."""

import contextlib
import datetime
import time

import pytest
import redis
from django.utils import timezone

from common.actors import Actor
from common.jobs import LOST_MESSAGE, job_done_so_far, job_start, jobs_sweep_lost
from common.models import Job
from ops.beats import beats
from ops.models import JobAttempt, JobTask
from ops.schedule import ACCRUAL
from ops.worker import Heartbeat
from promotions.jobs import GENERATE_CODES
from promotions.models import PromoCode
from tests.factories import JobAttemptFactory, PromotionFactory, ScheduleFactory
from tests.ops.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ACTOR = Actor.system("test")


@pytest.fixture(params=["database", "rq"])
def backend(request) -> dict[str, str]:
    """The worker's environment for each task backend (RQ on a queue of this test's own)."""
    if request.param == "database":
        return {}
    url = request.getfixturevalue("redis_queue")
    from django.conf import settings

    return {"TASKS_BACKEND": "rq", "JOBS_QUEUE": settings.JOBS_QUEUE, "RQ_URL": url}


def generation(promotion, *, count: int, template: str) -> Job:
    params = {
        "promotions": [promotion.pk],
        "template": template,
        "count": count,
        "onlydigit": False,
        "uselimit": None,
        "account_uselimit": None,
    }
    return job_start(kind=GENERATE_CODES, params=params, total=count, actor=ACTOR)


def fetch(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def test_a_worker_process_runs_a_queued_job_to_its_end(processes, backend):
    # given a generation job queued while no worker runs
    promotion = PromotionFactory()
    job = generation(promotion, count=3000, template="W-????????")
    assert fetch(job).status == "queued"
    # when a worker process starts
    processes.worker(**backend)
    # then it runs the job to its end: every code saved, one attempt, done
    finished = wait_until(
        lambda: fetch(job).status in ("done", "failed") and fetch(job), seconds=60
    )
    assert (finished.status, finished.done, finished.message) == (
        "done",
        3000,
        "3000 promo code(s) generated.",
    ), processes.log("worker")
    assert promotion.promocodes.count() == 3000
    assert list(JobAttempt.objects.values_list("outcome", flat=True)) == ["done"]


def test_a_worker_killed_mid_job_leaves_nothing_and_its_job_fails_within_the_limit(
    processes, backend, settings
):
    # given a worker generating a million codes, its progress already visible from this process
    settings.JOBS_LOST_AFTER = 2
    promotion = PromotionFactory()
    job = generation(promotion, count=1_000_000, template="K-??????????")
    worker = processes.worker(**backend)
    wait_until(
        lambda: fetch(job).status == "running" and job_done_so_far(fetch(job)) > 0, seconds=60
    )
    # when the worker is killed mid-job
    processes.kill(worker)
    killed_at = time.monotonic()
    # then nothing of the job was saved
    assert not PromoCode.objects.exists()
    # and once its heartbeat is older than the limit, the sweep fails it, saying why
    wait_until(lambda: jobs_sweep_lost() or fetch(job).status == "failed", seconds=30, every=0.2)
    assert time.monotonic() - killed_at < settings.JOBS_LOST_AFTER + 5
    failed = fetch(job)
    assert (failed.status, failed.done, failed.message) == ("failed", 0, LOST_MESSAGE)
    assert list(JobAttempt.objects.values_list("outcome", flat=True)) == ["lost"]
    assert not PromoCode.objects.exists()


def test_two_workers_on_one_queue_run_each_job_once(processes):
    # given two jobs and two database-backend workers
    first, second = PromotionFactory(), PromotionFactory()
    jobs = [
        generation(first, count=2000, template="A-????????"),
        generation(second, count=2000, template="B-????????"),
    ]
    processes.worker("one")
    processes.worker("two")
    # then both jobs end done, each after exactly one attempt
    wait_until(lambda: all(fetch(j).status == "done" for j in jobs), seconds=60)
    assert first.promocodes.count() == second.promocodes.count() == 2000
    assert sorted(JobAttempt.objects.values_list("job_id", "outcome")) == [
        (jobs[0].pk, "done"),
        (jobs[1].pk, "done"),
    ]


def test_the_heartbeat_lives_through_errors_that_are_not_the_databases(
    settings, queue_outage, caplog
):
    # given the task queue is down, a job whose task never reached it an hour ago, and a due
    # accrual schedule
    settings.JOBS_HEARTBEAT_SECONDS = 0.05
    hour_ago = timezone.now() - datetime.timedelta(hours=1)
    with contextlib.suppress(redis.ConnectionError):
        generation(PromotionFactory(), count=10, template="S-??????")
    JobTask.objects.update(queued_at=hour_ago)
    ScheduleFactory(name=ACCRUAL, every_hours=24, at=datetime.time(3), next_run_at=hour_ago)
    # when a worker's heartbeat runs, every enqueue failing with Redis' connection error
    heartbeat = Heartbeat("test-worker")
    heartbeat.start()
    try:
        # then the schedule's turn comes though the re-queue of the stranded job failed before it
        wait_until(lambda: Job.objects.filter(kind="ops.scheduled").exists(), seconds=10)
        assert any("stranded jobs failed" in r.getMessage() for r in caplog.records)
        started = Job.objects.get(kind="ops.scheduled").created_at
        # and the worker goes on beating afterwards
        wait_until(
            lambda: beats().worker_last_seen() > started + datetime.timedelta(seconds=0.2),
            seconds=10,
        )
        assert heartbeat.is_alive()
    finally:
        heartbeat.stopping.set()
        heartbeat.join(10)


@pytest.mark.django_db
def test_a_heartbeat_step_that_fails_leaves_the_others_to_run(settings):
    # given a timetable the schedule cannot read, and a job whose worker was lost
    settings.ACCRUAL_AT = "25:00"
    job = generation(PromotionFactory(), count=10, template="L-??????")
    Job.objects.filter(pk=job.pk).update(status="running")
    old = timezone.now() - datetime.timedelta(minutes=5)
    JobAttemptFactory(job=job, worker="gone", started_at=old)
    # when a worker beats
    Heartbeat("test-worker").beat()
    # then it said it lives and swept the lost job, though the schedule's step failed
    assert beats().worker_last_seen() is not None
    assert fetch(job).status == "failed"
