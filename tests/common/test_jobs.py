"""Background jobs: the admin's long work runs after the request, all or nothing, with progress."""

import datetime
import threading
import time

import pytest
from django.db import transaction

from common.actors import Actor
from common.jobs import JOBS, job_kind, job_run, job_start
from common.models import Job
from promotions.models import PromoCode
from tests.factories import PromoCodeFactory, PromotionFactory

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
    assert status | {"back": ""} == {
        "id": job.pk,
        "status": "done",
        "done": 300,
        "total": 300,
        "percent": 100,
        "message": "300 promo code(s) generated.",
        "finished": True,
        "back": "",
    }
    assert status["back"] == f"/admin/promotions/promotion/{promotion.pk}/change/"


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
        job_run(job.pk, actor=ACTOR)
        job_run(job.pk, actor=ACTOR)
    finally:
        JOBS.pop("test.count")
    assert runs == [1] and Job.objects.get().status == "done"


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError):
        job_start(kind="nope", params={}, total=1, actor=ACTOR)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_while_the_work_is_still_inside_its_transaction(settings):
    # given a job that reports 5 of 10 inside its transaction, then waits
    settings.JOBS_INLINE = False
    halfway, release = threading.Event(), threading.Event()

    def work(params, actor, progress):
        with transaction.atomic():
            progress(5)
            halfway.set()
            release.wait(10)
        return "finished"

    job_kind("test.wait")(work)
    try:
        # when it starts in its own thread after the commit
        job = job_start(kind="test.wait", params={}, total=10, actor=ACTOR)
        assert halfway.wait(10)
        # then another connection reads the progress before the work has committed
        assert Job.objects.get(pk=job.pk).done == 5
        release.set()
        for _ in range(100):
            if Job.objects.get(pk=job.pk).status == "done":
                break
            time.sleep(0.05)
    finally:
        release.set()
        JOBS.pop("test.wait")
    job.refresh_from_db()
    assert (job.status, job.done, job.message) == ("done", 10, "finished")


@pytest.mark.django_db
def test_a_job_whose_worker_is_gone_is_marked_failed_not_left_running(staff):
    # given a job running for three hours and one started a minute ago
    from django.utils import timezone

    stale = Job.objects.create(kind="k", total=5, status="running", username="u")
    fresh = Job.objects.create(kind="k", total=5, status="running", username="u")
    Job.objects.filter(pk=stale.pk).update(created_at=timezone.now() - datetime.timedelta(hours=3))
    # when its progress page is looked at
    status = staff.get(f"/admin/common/job/{stale.pk}/status/").json()
    # then the stale one has failed, saying why, and the fresh one still runs
    assert status["status"] == "failed" and "Abandoned" in status["message"]
    assert status["finished"] is True
    assert Job.objects.get(pk=fresh.pk).status == "running"
