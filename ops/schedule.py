"""Work on a timetable, run by the workers: accrual of referral rewards, daily by default.

Every worker's heartbeat asks `schedules_tick`; the database decides which one starts the run
(ops.models.Schedule), so there is no scheduler process to keep alive and nothing runs twice at
once. A run that was due while no worker was up starts at the first tick after; the next one is
planned from the timetable, not from when the late run happened.
"""

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.actors import Actor
from common.jobs import job_kind, job_start
from common.models import Job
from ops.models import Schedule

SCHEDULED = "ops.scheduled"
ACCRUAL = "referrals.accrual"

# name -> the work (answering its figures) and its timetable's settings.
Figures = dict[str, Any]


@dataclass(frozen=True)
class Timetable:
    every: datetime.timedelta
    at: datetime.time

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first planned run strictly after `moment`: `at` o'clock, then every `every`."""
        local = timezone.localtime(moment)
        anchor = timezone.make_aware(datetime.datetime.combine(local.date(), self.at))
        if anchor > moment:
            anchor -= datetime.timedelta(days=1)  # an anchor at or before moment
        steps = (moment - anchor) // self.every + 1
        return anchor + steps * self.every


def accrue() -> Figures:
    from referrals.accrual import rewards_accrue

    return {"rewards": rewards_accrue()}


def accrual_timetable() -> Timetable | None:
    hours = float(settings.ACCRUAL_EVERY_HOURS)
    if hours <= 0:
        return None
    return Timetable(
        every=datetime.timedelta(hours=hours), at=datetime.time.fromisoformat(settings.ACCRUAL_AT)
    )


WORK: dict[str, tuple[Callable[[], Figures], Callable[[], Timetable | None]]] = {
    ACCRUAL: (accrue, accrual_timetable)
}
TITLES = {ACCRUAL: "Scheduled accrual of referral rewards"}


def schedules_tick(*, at: datetime.datetime | None = None) -> list[Job]:
    """Start every schedule that is due and not running; answers the jobs started."""
    at = at or timezone.now()
    started = []
    for name, (_, timetable_of) in WORK.items():
        timetable = timetable_of()
        if timetable is None:
            continue
        schedule = _schedule(name, timetable, at)
        _release_finished(schedule)
        if schedule.next_run_at <= at:
            job = schedule_start(name=name, next_run_at=timetable.next_after(at))
            if job is not None:
                started.append(job)
    return started


def schedule_start(*, name: str, next_run_at: datetime.datetime | None = None) -> Job | None:
    """Start a run now unless one is running (None then); `next_run_at` moves the timetable on."""
    with transaction.atomic():
        job = job_start(
            kind=SCHEDULED,
            params={"schedule": name, "title": TITLES[name]},
            total=1,
            actor=Actor.system("schedule"),
        )
        changes: dict[str, Any] = {"current_job": job}
        if next_run_at is not None:
            changes["next_run_at"] = next_run_at
        if not Schedule.objects.filter(name=name, current_job=None).update(**changes):
            transaction.set_rollback(True)  # another worker runs it: our job never existed
            return None
    return job


def _schedule(name: str, timetable: Timetable, at: datetime.datetime) -> Schedule:
    hours = timetable.every.total_seconds() / 3600
    schedule, _ = Schedule.objects.get_or_create(
        name=name,
        defaults={
            "every_hours": hours,
            "at": timetable.at,
            "next_run_at": timetable.next_after(at),
        },
    )
    if (schedule.every_hours, schedule.at) != (hours, timetable.at):
        # The settings changed: plan from the new timetable.
        schedule.every_hours, schedule.at = hours, timetable.at
        schedule.next_run_at = timetable.next_after(at)
        Schedule.objects.filter(pk=schedule.pk).update(
            every_hours=hours, at=timetable.at, next_run_at=schedule.next_run_at
        )
    return schedule


def _release_finished(schedule: Schedule) -> None:
    """A finished (or failed, or lost) run becomes the last run."""
    job_id = schedule.current_job_id
    if job_id is None:
        return
    if Job.objects.filter(pk=job_id, status__in=[Job.Status.DONE, Job.Status.FAILED]).exists():
        Schedule.objects.filter(pk=schedule.pk, current_job_id=job_id).update(
            current_job=None, last_job_id=job_id
        )
        schedule.current_job_id, schedule.last_job_id = None, job_id


@job_kind(SCHEDULED)
def run_scheduled(params: dict[str, Any], actor: Actor, progress) -> str:
    name = params["schedule"]
    work, _ = WORK[name]
    began = time.monotonic()
    figures = {**work(), "seconds": round(time.monotonic() - began, 3)}
    Schedule.objects.filter(name=name).update(last_figures=figures)
    return ", ".join(f"{key}: {value}" for key, value in figures.items())
