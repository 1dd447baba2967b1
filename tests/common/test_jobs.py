"""Background jobs: the admin's long work runs after the request, all or nothing, with progress,
retried on transient database errors, at most JOBS_MAX_RUNNING at once, failed when its worker is
lost. Worker processes: tests/ops/test_worker.py."""

import datetime
import threading
import time

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from common.actors import Actor
from common.jobs import (
    JOBS,
    LOST_MESSAGE,
    job_create,
    job_kind,
    job_run,
    job_start,
    jobs_sweep_lost,
)
from common.models import Job
from ops.models import JobAttempt
from promotions.jobs import GENERATE_CODES
from promotions.models import PromoCode
from tests.conftest import run_in_threads
from tests.factories import JobAttemptFactory, PromoCodeFactory, PromotionFactory

ACTOR = Actor.system("test")


def generate(staff, promotion, **fields):
    return staff.post(
        "/admin/promotions/promotion/",
        {
            "action": "generate_codes",
            "_selected_action": [promotion.pk],
            "apply": "Generate",
            **fields,
        },
    )


@pytest.mark.django_db
def test_a_large_count_runs_in_the_background_and_the_page_follows_it(
    staff, settings, django_capture_on_commit_callbacks
):
    # given generation moves to the background from 100 codes
    settings.PROMOCODES_BACKGROUND_FROM, settings.JOBS_INLINE = 100, True
    promotion = PromotionFactory()
    # when 300 codes are asked for, the request only records the job and shows its page
    with django_capture_on_commit_callbacks(execute=False) as started:
        response = generate(staff, promotion, template="BG-??????", count=300)
    job = Job.objects.get()
    assert response.status_code == 302
    assert response.url == f"/admin/common/job/{job.pk}/progress/"
    assert (job.status, job.done, job.total) == ("queued", 0, 300)
    assert not PromoCode.objects.exists()
    queued = staff.get(response.url)
    assert queued.status_code == 200 and b'id="job-bar"' in queued.content
    # when the job runs after the commit
    for callback in started:
        callback()
    # then every code exists and the status says so, with the way back to the promotion
    assert promotion.promocodes.count() == 300
    status = staff.get(f"/admin/common/job/{job.pk}/status/").json()
    assert status | {"back": "", "links": []} == {
        "id": job.pk,
        "status": "done",
        "done": 300,
        "total": 300,
        "percent": 100,
        "message": "300 promo code(s) generated.",
        "finished": True,
        "back": "",
        "links": [],
    }
    assert status["back"] == f"/admin/promotions/promotion/{promotion.pk}/change/"
    # and the finished page links to the codes and their export
    assert status["links"] == [
        ["The codes", f"/admin/promotions/promocode/?promotion__id__exact={promotion.pk}"],
        ["Export the codes as CSV", f"/admin/promotions/promotion/{promotion.pk}/codes.csv"],
    ]
    page = staff.get(response.url).content.decode()
    assert f'<a href="/admin/promotions/promotion/{promotion.pk}/codes.csv">' in page


@pytest.mark.django_db
def test_a_failing_job_saves_nothing_and_says_why(
    staff, settings, django_capture_on_commit_callbacks
):
    # given a template with room for 100 codes and a background threshold of 50
    settings.PROMOCODES_BACKGROUND_FROM, settings.JOBS_INLINE = 50, True
    promotion = PromotionFactory()
    # when 80 are asked for, and 30 codes of the template appear before the job runs
    with django_capture_on_commit_callbacks(execute=False) as started:
        generate(staff, promotion, template="NO-??", count=80, onlydigit="on")
    for n in range(30):
        PromoCodeFactory(code=f"NO-{n:02d}")
    for callback in started:
        callback()
    # then the job failed with the reason and none of its codes was saved
    job = Job.objects.get()
    assert job.status == "failed" and "only 70 more" in job.message
    assert not promotion.promocodes.exists()


@pytest.mark.django_db
def test_a_job_runs_once(django_capture_on_commit_callbacks):
    runs = []
    job_kind("test.count")(lambda params, actor, progress: runs.append(1) or "ok")
    try:
        with django_capture_on_commit_callbacks(execute=False):
            job = job_start(kind="test.count", params={}, total=1, actor=ACTOR)
        job_run(job.pk)
        job_run(job.pk)
    finally:
        JOBS.pop("test.count")
    assert runs == [1] and Job.objects.get().status == "done"


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError):
        job_start(kind="nope", params={}, total=1, actor=ACTOR)


@pytest.fixture
def kind():
    """Registers test job kinds, removed after the test."""
    added = []

    def register(name, work):
        job_kind(name)(work)
        added.append(name)

    yield register
    for name in added:
        JOBS.pop(name)


def queued(kind_name: str, total: int = 1) -> Job:
    """A queued job whose task has not been sent yet."""
    return job_create(kind=kind_name, params={}, total=total, actor=ACTOR)


def outcomes(job: Job) -> list[str]:
    return list(job.attempts.order_by("number").values_list("outcome", flat=True))


@pytest.mark.django_db
def test_a_transient_database_error_is_retried_and_its_first_attempt_left_nothing(kind):
    # given a job whose first attempt writes a code, then meets a deadlock
    promotion = PromotionFactory()
    calls = []

    def work(params, actor, progress):
        with transaction.atomic():
            calls.append(1)
            PromoCode.objects.create(promotion=promotion, code=f"TRY-{len(calls)}")
            if len(calls) == 1:
                raise OperationalError("deadlock detected")
        return "written"

    kind("test.flaky", work)
    job = queued("test.flaky")
    # when it runs
    after_first = job_run(job.pk)
    # then it is queued again for a second attempt later, and the first attempt's code is gone
    from django_tasks_db.models import DBTaskResult

    again = DBTaskResult.objects.get()
    assert after_first.status == "queued" and "transient" in after_first.message
    assert again.args_kwargs["kwargs"]["job_id"] == job.pk and again.run_after > timezone.now()
    assert not PromoCode.objects.exists()
    # when the second attempt runs, it is done with its own code only
    done = job_run(job.pk)
    assert (done.status, done.message) == ("done", "written")
    assert list(PromoCode.objects.values_list("code", flat=True)) == ["TRY-2"]
    assert outcomes(job) == ["retry", "done"]


@pytest.mark.django_db
def test_a_job_fails_after_its_last_attempt(kind, settings):
    settings.JOBS_MAX_ATTEMPTS, settings.JOBS_INLINE = 2, True

    def work(params, actor, progress):
        raise OperationalError("server closed the connection unexpectedly")

    kind("test.down", work)
    job = queued("test.down")
    job_run(job.pk)
    final = job_run(job.pk)
    assert (final.status, final.message) == ("failed", "Failed: OperationalError")
    assert outcomes(job) == ["retry", "failed"]


@pytest.mark.django_db
def test_an_error_in_the_work_itself_is_not_retried(kind):
    kind("test.bug", lambda params, actor, progress: 1 / 0)
    job = queued("test.bug")
    final = job_run(job.pk)
    assert (final.status, final.message) == ("failed", "Failed: ZeroDivisionError")
    assert outcomes(job) == ["failed"]


@pytest.mark.django_db(transaction=True)
def test_no_more_jobs_run_at_once_than_the_cap(kind, settings):
    # given 6 jobs, at most 2 at once, each working for a moment
    settings.JOBS_MAX_RUNNING = 2
    running, most = [0], [0]
    lock = threading.Lock()

    def work(params, actor, progress):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return "ok"

    kind("test.busy", work)
    jobs = [queued("test.busy") for _ in range(6)]

    # when 6 workers take them at once, each trying again while its job waits for a slot
    def worker(job):
        while job_run(job.pk).status == "queued":
            time.sleep(0.05)

    run_in_threads(worker, jobs)
    # then all are done, never more than 2 at a time
    assert {Job.objects.get(pk=j.pk).status for j in jobs} == {"done"}
    assert most[0] == 2
    assert JobAttempt.objects.filter(outcome="done").count() == 6


@pytest.mark.django_db
def test_a_job_waiting_for_a_slot_says_so_and_comes_back(kind, settings):
    settings.JOBS_MAX_RUNNING = 1
    kind("test.quick", lambda params, actor, progress: "ok")
    busy, waiting = queued("test.quick"), queued("test.quick")
    now = timezone.now()
    JobAttemptFactory(job=busy, started_at=now)
    Job.objects.filter(pk=busy.pk).update(status="running")
    answer = job_run(waiting.pk)
    assert (answer.status, answer.message) == ("queued", "Waiting: 1 job(s) run at once.")
    assert not waiting.attempts.exists()


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_a_long_job_alive_while_lost_ones_fail(kind, settings):
    # given a heartbeat every 0.1 s, a limit of 0.6 s, and a job working for 1.5 s
    settings.JOBS_HEARTBEAT_SECONDS, settings.JOBS_LOST_AFTER = 0.1, 0.6
    release = threading.Event()

    def work(params, actor, progress):
        with transaction.atomic():
            release.wait(1.5)
        return "lived"

    kind("test.long", work)
    job = queued("test.long")
    # and an attempt whose worker stopped beating 10 s ago
    old = timezone.now() - datetime.timedelta(seconds=10)
    lost = queued("test.long")
    Job.objects.filter(pk=lost.pk).update(status="running")
    JobAttemptFactory(job=lost, slot=5, worker="w", started_at=old)
    # when the job runs while the sweep looks every 0.2 s
    runner = threading.Thread(target=lambda: job_run(job.pk))
    runner.start()
    swept = 0
    while runner.is_alive():
        swept += jobs_sweep_lost()
        time.sleep(0.2)
    runner.join()
    # then only the silent one failed
    assert swept == 1
    assert Job.objects.get(pk=job.pk).status == "done"
    failed = Job.objects.get(pk=lost.pk)
    assert (failed.status, failed.message) == ("failed", LOST_MESSAGE)
    assert outcomes(lost) == ["lost"]


@pytest.mark.django_db
def test_the_progress_page_of_a_job_whose_worker_is_lost_shows_it_failed(staff, settings):
    # given a running job whose worker last beat a minute ago
    job = queued(GENERATE_CODES)
    Job.objects.filter(pk=job.pk).update(status="running")
    old = timezone.now() - datetime.timedelta(seconds=60)
    JobAttemptFactory(job=job, started_at=old)
    # when its progress page polls it
    status = staff.get(f"/admin/common/job/{job.pk}/status/").json()
    # then it has failed, saying why
    assert (status["status"], status["finished"], status["message"]) == (
        "failed",
        True,
        LOST_MESSAGE,
    )


@pytest.mark.django_db
def test_inline_jobs_keep_their_retries(
    kind, settings, monkeypatch, django_capture_on_commit_callbacks
):
    # given jobs run where they are started, and a job meeting a deadlock at its first attempt
    import common.jobs

    settings.JOBS_INLINE = True
    pauses = []
    monkeypatch.setattr(common.jobs, "_pause", pauses.append, raising=False)
    calls = []

    def work(params, actor, progress):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("deadlock detected")
        return "second time lucky"

    kind("test.inline", work)
    # when it is started
    with django_capture_on_commit_callbacks(execute=True):
        job = job_start(kind="test.inline", params={}, total=1, actor=ACTOR)
    # then it was tried again after its delay, and is done
    job.refresh_from_db()
    assert (job.status, job.message) == ("done", "second time lucky")
    assert outcomes(job) == ["retry", "done"]
    assert pauses == [2.0]


@pytest.mark.django_db
def test_a_job_waiting_for_a_slot_asks_less_and_less_often(kind, settings):
    # given one slot, taken by a long job
    from django_tasks_db.models import DBTaskResult

    settings.JOBS_MAX_RUNNING = 1
    kind("test.quick", lambda params, actor, progress: "ok")
    busy, waiting = queued("test.quick"), queued("test.quick")
    now = timezone.now()
    JobAttemptFactory(job=busy, started_at=now)
    Job.objects.filter(pk=busy.pk).update(status="running")
    # when the waiting job's task comes back again and again
    delays = []
    waits = 0
    for _ in range(7):
        before = timezone.now()
        job_run(waiting.pk, waits=waits)
        task = DBTaskResult.objects.order_by("-enqueued_at").first()
        delays.append(round((task.run_after - before).total_seconds()))
        waits = task.args_kwargs["kwargs"]["waits"]
    # then each time it waits twice as long, up to half a minute
    assert delays == [2, 4, 8, 16, 30, 30, 30]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_beat_landing_while_the_sweep_looks_keeps_its_attempt_alive(kind, settings, monkeypatch):
    # given an attempt silent for a minute, past the 45 s limit
    from ops.beats import DatabaseBeats, beats

    settings.JOBS_LOST_AFTER = 45
    job = queued(GENERATE_CODES)
    Job.objects.filter(pk=job.pk).update(status="running")
    old = timezone.now() - datetime.timedelta(seconds=60)
    attempt = JobAttemptFactory(job=job, started_at=old)
    # when its worker's beat lands (on its own connection) between the sweep's look and its write
    looked = DatabaseBeats.attempt_seen

    def look_then_beat(board, seen_attempt):
        answer = looked(board, seen_attempt)
        run_in_threads(
            lambda _: beats().attempt(
                attempt_id=attempt.pk, job_id=job.pk, done=None, at=timezone.now()
            ),
            [None],
        )
        return answer

    monkeypatch.setattr(DatabaseBeats, "attempt_seen", look_then_beat)
    swept = jobs_sweep_lost()
    # then the attempt lives on: it keeps its slot and its job runs
    assert swept == 0
    assert JobAttempt.objects.get(pk=attempt.pk).finished_at is None
    assert Job.objects.get(pk=job.pk).status == "running"


def worker_last_beat(*, minutes_ago: float) -> None:
    from ops.beats import beats

    at = timezone.now() - datetime.timedelta(minutes=minutes_ago)
    beats().worker(worker="w", backend="database", started_at=at, at=at)


@pytest.mark.django_db
def test_without_a_needed_worker_a_queued_job_does_not_warn_of_one(staff, settings):
    # given no worker is needed (READYZ_WORKER_SECONDS=0) and the last one beat 10 minutes ago
    settings.READYZ_WORKER_SECONDS = 0
    worker_last_beat(minutes_ago=10)
    job = queued(GENERATE_CODES)
    # when its progress page asks
    status = staff.get(f"/admin/common/job/{job.pk}/status/").json()
    # then it is simply queued
    assert (status["status"], status["message"]) == ("queued", "")


@pytest.mark.django_db
def test_a_queued_job_warns_when_no_worker_was_seen_lately(staff, settings):
    settings.READYZ_WORKER_SECONDS = 60
    worker_last_beat(minutes_ago=10)
    job = queued(GENERATE_CODES)
    status = staff.get(f"/admin/common/job/{job.pk}/status/").json()
    assert status["message"] == (
        "Waiting for a worker: none was seen lately (`make worker` starts one)."
    )
