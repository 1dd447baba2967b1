"""Scheduled accrual: daily by default, once at a time, a missed run catches up, shown in the admin."""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from common.jobs import jobs_sweep_lost
from common.models import Job
from ops.models import Schedule
from ops.schedule import ACCRUAL, Timetable, schedules_tick
from ops.worker import Heartbeat
from referrals.models import Reward
from tests.conftest import run_in_threads
from tests.factories import (
    ExpenseFactory,
    JobAttemptFactory,
    ReferralFactory,
    ReferralProgramFactory,
    RuleFactory,
)
from tests.ops.conftest import run_queued_tasks

UTC = datetime.UTC


def moment(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("every_hours", "at", "now", "expected"),
    [
        (24, "03:00", "2026-05-10 02:59", "2026-05-10 03:00"),
        (24, "03:00", "2026-05-10 03:00", "2026-05-11 03:00"),
        (24, "03:00", "2026-05-10 17:00", "2026-05-11 03:00"),
        (6, "03:00", "2026-05-10 10:00", "2026-05-10 15:00"),
        (6, "03:00", "2026-05-10 01:00", "2026-05-10 03:00"),
        (0.5, "00:00", "2026-05-10 10:10", "2026-05-10 10:30"),
    ],
)
def test_the_next_run_follows_the_timetable(every_hours, at, now, expected):
    timetable = Timetable(
        every=datetime.timedelta(hours=every_hours), at=datetime.time.fromisoformat(at)
    )
    assert timetable.next_after(moment(now)) == moment(expected)


@pytest.fixture
def earning(db):
    """A referral whose partner earns 10% of the referred client's 100.00 spent on 1 May."""
    program = ReferralProgramFactory(start_date=datetime.date(2026, 1, 1))
    referral = ReferralFactory(program=program)
    RuleFactory(program=program, name="r", reward_type="percent", amount=Decimal("10"))
    ExpenseFactory(client=referral.client, amount=Decimal("100"), created_at=moment("2026-05-01"))
    return referral


@pytest.fixture
def tick(django_capture_on_commit_callbacks):
    """A worker's tick at a moment, its jobs run once the tick commits (JOBS_INLINE)."""

    def at(text: str) -> list[Job]:
        with (
            time_machine.travel(moment(text), tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            return schedules_tick()

    return at


@pytest.mark.django_db
def test_accrual_runs_daily_without_a_person_and_records_its_figures(earning, settings, tick):
    # given the default timetable (daily at 03:00) and jobs run where they are queued
    settings.JOBS_INLINE = True
    # when a worker ticks before the first planned run
    assert tick("2026-05-10 01:00") == []
    schedule = Schedule.objects.get(name=ACCRUAL)
    assert schedule.next_run_at == moment("2026-05-10 03:00")
    assert not Reward.objects.exists()
    # when it ticks after it
    [job] = tick("2026-05-10 03:00:05")
    # then accrual ran once, its figures are kept, and the next run is planned for tomorrow
    job.refresh_from_db()
    schedule.refresh_from_db()
    assert (job.status, job.kind) == ("done", "ops.scheduled")
    assert Reward.objects.get().amount == Decimal("10.00")
    assert schedule.last_figures["rewards"] == 1
    assert schedule.next_run_at == moment("2026-05-11 03:00")


@pytest.mark.django_db
def test_a_missed_run_catches_up_once(earning, settings, tick):
    # given a schedule whose run was due three days ago (no worker was up)
    settings.JOBS_INLINE = True
    tick("2026-05-07 01:00")
    # when a worker comes back on the 10th at noon and ticks twice
    first = tick("2026-05-10 12:00")
    second = tick("2026-05-10 12:00")
    # then one run caught up and the next is tomorrow's, not the missed ones
    assert len(first) == 1 and second == []
    assert Reward.objects.count() == 1
    assert Schedule.objects.get().next_run_at == moment("2026-05-11 03:00")


@pytest.mark.django_db
def test_a_schedule_does_not_start_while_its_run_is_unfinished(earning, settings):
    # given a due schedule whose run is running (no inline jobs)
    with time_machine.travel(moment("2026-05-09 12:00"), tick=False):
        schedules_tick()
    with time_machine.travel(moment("2026-05-10 04:00"), tick=False):
        [running] = schedules_tick()
    Job.objects.filter(pk=running.pk).update(status="running")
    # when the next run is due while it is still unfinished
    with time_machine.travel(moment("2026-05-11 04:00"), tick=False):
        assert schedules_tick() == []
        # then once it ended, the next tick starts the due run and remembers the last one
        Job.objects.filter(pk=running.pk).update(status="done")
        [following] = schedules_tick()
    schedule = Schedule.objects.get()
    assert (schedule.last_job_id, schedule.current_job_id) == (running.pk, following.pk)


@pytest.mark.django_db(transaction=True)
def test_workers_ticking_at_once_start_the_run_once(earning, settings):
    # given a due schedule and six workers ticking at the same moment, each on its own connection
    with time_machine.travel(moment("2026-05-09 12:00"), tick=False):
        schedules_tick()
    with time_machine.travel(moment("2026-05-10 04:00"), tick=False):
        started = run_in_threads(lambda _: schedules_tick(), range(6))
    # then exactly one run was started, and no job row is left over from the others
    assert sum(len(jobs) for jobs in started) == 1
    assert Job.objects.filter(kind="ops.scheduled").count() == 1


@pytest.mark.django_db
def test_the_schedule_can_be_switched_off_and_retimed(earning, settings):
    settings.ACCRUAL_EVERY_HOURS = 0
    assert schedules_tick(at=moment("2026-05-10 12:00")) == []
    assert not Schedule.objects.exists()
    settings.ACCRUAL_EVERY_HOURS, settings.ACCRUAL_AT = 24, "03:00"
    schedules_tick(at=moment("2026-05-10 12:00"))
    settings.ACCRUAL_EVERY_HOURS, settings.ACCRUAL_AT = 12, "01:30"
    schedules_tick(at=moment("2026-05-10 12:00"))
    assert Schedule.objects.get().next_run_at == moment("2026-05-10 13:30")


@pytest.mark.django_db
def test_the_admin_shows_the_last_run_its_figures_and_the_next(earning, settings, staff, tick):
    settings.JOBS_INLINE = True
    tick("2026-05-09 12:00")
    [job] = tick("2026-05-10 04:00")
    tick("2026-05-10 04:00")  # the finished run becomes the last run
    page = staff.get("/admin/ops/schedule/").content.decode()
    assert "24 h from 03:00" in page
    assert f"/admin/common/job/{job.pk}/progress/" in page and "done" in page
    assert "rewards: 1" in page
    assert "2026-05-11 03:00 UTC" in page


@pytest.mark.django_db
def test_run_now_from_the_admin_starts_one_run(earning, settings, staff):
    with time_machine.travel(moment("2026-05-09 12:00"), tick=False):
        schedules_tick()
    schedule = Schedule.objects.get()
    form = {"action": "run_now", "_selected_action": [schedule.pk]}
    staff.post("/admin/ops/schedule/", form)
    staff.post("/admin/ops/schedule/", form)
    assert Job.objects.filter(kind="ops.scheduled").count() == 1
    assert Schedule.objects.get().next_run_at == moment("2026-05-10 03:00")


@pytest.mark.django_db
def test_a_run_whose_task_never_reached_the_queue_still_happens_and_the_schedule_goes_on(
    earning, settings, queue_outage, django_capture_on_commit_callbacks
):
    # given the task queue is down when the run is due at 03:00 on the 10th

    heartbeat = Heartbeat("test-worker")

    def beat_at(text: str) -> None:
        with time_machine.travel(moment(text), tick=False):
            with django_capture_on_commit_callbacks(execute=True):
                heartbeat.beat()
            run_queued_tasks()

    beat_at("2026-05-09 12:00")
    beat_at("2026-05-10 03:00:05")
    assert Job.objects.get(kind="ops.scheduled").status == "queued"
    # when the queue is back and the workers beat on
    queue_outage.end()
    beat_at("2026-05-10 03:01")
    beat_at("2026-05-10 03:10")
    # then the run happened that morning, and the next ones follow the timetable
    assert Reward.objects.count() == 1
    beat_at("2026-05-11 03:00:05")
    beat_at("2026-05-11 03:00:10")
    runs = Job.objects.filter(kind="ops.scheduled")
    assert [job.status for job in runs.order_by("pk")] == ["done", "done"]
    schedule = Schedule.objects.get()
    assert schedule.next_run_at == moment("2026-05-12 03:00")
    assert schedule.last_job == runs.order_by("pk").last()


@pytest.mark.django_db
def test_a_run_lost_with_its_worker_says_what_stays_and_catches_up_soon(earning, settings):
    # given the 03:00 run, taken by a worker that then died

    with time_machine.travel(moment("2026-05-09 12:00"), tick=False):
        schedules_tick()
    with time_machine.travel(moment("2026-05-10 03:00:05"), tick=False):
        [run] = schedules_tick()
    Job.objects.filter(pk=run.pk).update(status="running")
    taken = moment("2026-05-10 03:00:06")
    JobAttemptFactory(job=run, worker="gone", started_at=taken)
    # when the sweep finds it lost
    with time_machine.travel(moment("2026-05-10 03:02"), tick=False):
        assert jobs_sweep_lost() == 1
        assert schedules_tick() == []
    # then its message says that accrual's committed chunks stay (it is not all or nothing)
    lost = Job.objects.get(pk=run.pk)
    assert lost.status == "failed"
    assert lost.message == (
        "Failed: its worker stopped (no heartbeat); what it committed stays, "
        "and the next run takes up the rest."
    )
    # and a new run starts minutes later, not at tomorrow's 03:00
    with time_machine.travel(moment("2026-05-10 03:08"), tick=False):
        [again] = schedules_tick()
    schedule = Schedule.objects.get()
    assert (schedule.last_job_id, schedule.current_job_id) == (run.pk, again.pk)
    assert schedule.next_run_at == moment("2026-05-11 03:00")


@pytest.mark.django_db
def test_a_failing_run_is_tried_again_at_most_every_few_minutes(earning, settings):
    # given a run that failed at 03:00:10
    with time_machine.travel(moment("2026-05-09 12:00"), tick=False):
        schedules_tick()
    with time_machine.travel(moment("2026-05-10 03:00:05"), tick=False):
        [run] = schedules_tick()
    Job.objects.filter(pk=run.pk).update(
        status="failed", message="Failed: RuntimeError", finished_at=moment("2026-05-10 03:00:10")
    )
    # then the ticks of the next minutes start nothing, the one five minutes after starts it again
    for minute in ("03:00:20", "03:01", "03:04:59"):
        with time_machine.travel(moment(f"2026-05-10 {minute}"), tick=False):
            assert schedules_tick() == []
    with time_machine.travel(moment("2026-05-10 03:05:10"), tick=False):
        assert len(schedules_tick()) == 1


@pytest.mark.django_db
def test_the_accrual_command_refuses_while_a_run_is_in_progress_and_is_recorded_as_a_run(
    earning, settings
):
    # given the scheduled 03:00 run, queued and not finished
    with time_machine.travel(moment("2026-05-09 12:00"), tick=False):
        schedules_tick()
    with time_machine.travel(moment("2026-05-10 03:00:05"), tick=False):
        [running] = schedules_tick()
    # when the command is run meanwhile, it refuses, naming the run
    with (
        time_machine.travel(moment("2026-05-10 03:01"), tick=False),
        pytest.raises(CommandError, match=f"job {running.pk}"),
    ):
        call_command("accrue_referral_rewards", verbosity=0)
    assert not Reward.objects.exists()
    # when the run has ended, the command accrues
    Job.objects.filter(pk=running.pk).update(status="done")
    out = StringIO()
    with time_machine.travel(moment("2026-05-10 03:30"), tick=False):
        call_command("accrue_referral_rewards", stdout=out, verbosity=0)
    assert out.getvalue().strip() == "1 rewards accrued."
    # then its run is the schedule's last, with its figures, and the timetable is unchanged
    schedule = Schedule.objects.get()
    assert schedule.current_job is None
    assert (schedule.last_job.kind, schedule.last_job.status) == ("ops.scheduled", "done")
    assert schedule.last_job.pk != running.pk
    assert schedule.last_figures["rewards"] == 1
    assert schedule.next_run_at == moment("2026-05-11 03:00")
