"""Jobs whose task parted from them: an enqueue that failed after the job committed, a task that
failed before it took its job. Every worker's sweep queues such a job again; a scheduled run that
could not start for an hour gives way to a new one."""

import contextlib
import datetime

import pytest
import redis
import time_machine
from django.db import OperationalError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

import common.jobs
from common.actors import Actor
from common.jobs import job_start, jobs_requeue_stranded
from common.models import Job
from ops.models import Schedule
from ops.schedule import schedules_tick
from ops.worker import Heartbeat
from promotions.jobs import GENERATE_CODES
from tests.conftest import run_in_threads
from tests.factories import PromotionFactory
from tests.ops.conftest import run_queued_tasks

ACTOR = Actor.system("test")


def beat(*, minutes_later: float) -> None:
    """A worker's heartbeat that many minutes from now."""
    later = timezone.now() + datetime.timedelta(minutes=minutes_later)
    with time_machine.travel(later, tick=False):
        Heartbeat("test-worker").beat()


def generation(promotion, count: int = 20) -> Job:
    params = {
        "promotions": [promotion.pk],
        "template": "ST-????????",
        "count": count,
        "onlydigit": False,
        "uselimit": None,
        "account_uselimit": None,
    }
    return job_start(kind=GENERATE_CODES, params=params, total=count, actor=ACTOR)


@pytest.mark.django_db(transaction=True)
def test_a_generation_whose_enqueue_failed_answers_its_page_and_runs_once_the_queue_is_back(
    staff, settings, queue_outage
):
    # given the task queue is down and generation goes to the background from 100 codes
    settings.PROMOCODES_BACKGROUND_FROM = 100
    promotion = PromotionFactory()
    # when 300 codes are asked for in the admin
    response = staff.post(
        "/admin/promotions/promotion/",
        {
            "action": "generate_codes",
            "_selected_action": [promotion.pk],
            "apply": "Generate",
            "template": "Q-??????",
            "count": 300,
        },
    )
    # then the job is recorded and its page answers: waiting, not an error
    job = Job.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/{job.pk}/progress/")
    assert staff.get(response.url).status_code == 200
    assert job.status == "queued"
    # when the queue is back, a worker's sweep queues it again a few minutes later
    queue_outage.end()
    beat(minutes_later=1)
    run_queued_tasks()
    assert Job.objects.get(pk=job.pk).status == "queued"  # too early to tell it from a slow queue
    beat(minutes_later=5)
    run_queued_tasks()
    # then it ran to its end, once
    assert Job.objects.get(pk=job.pk).status == "done"
    assert promotion.promocodes.count() == 300


@pytest.mark.django_db(transaction=True)
def test_a_task_that_failed_before_it_took_its_job_is_queued_again(monkeypatch):
    # given a job whose task fails before it claims the job (the database away a moment)
    claim = common.jobs._claim
    calls = []

    def claim_once_broken(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return claim(*args, **kwargs)

    monkeypatch.setattr(common.jobs, "_claim", claim_once_broken)
    promotion = PromotionFactory()
    job = generation(promotion)
    run_queued_tasks()
    assert Job.objects.get(pk=job.pk).status == "queued"
    # when a worker's sweep comes by later
    beat(minutes_later=5)
    run_queued_tasks()
    # then the job ran
    assert Job.objects.get(pk=job.pk).status == "done"
    assert promotion.promocodes.count() == 20


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_task_still_waits_in_the_queue_is_not_queued_twice():
    # given a job whose task waits in the queue (no worker took it for ten minutes)
    generation(PromotionFactory())
    assert DBTaskResult.objects.count() == 1
    # when the sweep comes by
    beat(minutes_later=10)
    # then its task is left to come
    assert DBTaskResult.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_run_that_cannot_start_for_an_hour_gives_way_to_a_new_one(
    settings, queue_outage
):
    # given the 03:00 run, queued while the task queue is down, and down it stays
    utc = datetime.UTC
    with time_machine.travel(datetime.datetime(2026, 5, 9, 12, tzinfo=utc), tick=False):
        schedules_tick()
    with time_machine.travel(datetime.datetime(2026, 5, 10, 3, 0, 5, tzinfo=utc), tick=False):
        [stuck] = schedules_tick()
    # when the workers tick through the hour after
    with time_machine.travel(datetime.datetime(2026, 5, 10, 3, 50, tzinfo=utc), tick=False):
        assert schedules_tick() == []
    with time_machine.travel(datetime.datetime(2026, 5, 10, 4, 0, 10, tzinfo=utc), tick=False):
        [fresh] = schedules_tick()
    # then after an hour the stuck run is failed, saying why, and a new one took its place
    stuck.refresh_from_db()
    assert stuck.status == "failed"
    assert stuck.message == "Failed: it did not start within an hour (no worker took it)."
    schedule = Schedule.objects.get()
    assert (schedule.last_job_id, schedule.current_job_id) == (stuck.pk, fresh.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_sweeping_at_once_queue_a_stranded_job_once(queue_outage):
    # given a job whose enqueue failed, ten minutes ago
    with contextlib.suppress(redis.ConnectionError):
        job = generation(PromotionFactory())
    job = Job.objects.get()
    queue_outage.end()
    # when six workers sweep at the same moment ten minutes later, each on its own connection
    later = timezone.now() + datetime.timedelta(minutes=10)
    requeued = run_in_threads(lambda _: jobs_requeue_stranded(at=later), range(6))
    # then one of them queued it again, and one task carries it
    assert sorted(requeued) == [0, 0, 0, 0, 0, 1]
    assert DBTaskResult.objects.count() == 1
    run_queued_tasks()
    assert Job.objects.get(pk=job.pk).status == "done"
