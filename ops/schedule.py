"""Work on a timetable, run by the workers: accrual of referral rewards, daily by default.

Every worker's heartbeat asks `schedules_tick`; the database decides which one starts the run
(ops.models.Schedule), so there is no scheduler process to keep alive and nothing runs twice at
once. A run that was due while no worker was up starts at the first tick after; the next one is
planned from the timetable, not from when the late run happened. A run that failed or lost its
worker is started again RETRY_AFTER later (accrual takes up where it stopped), and a run that no
worker started within START_WITHIN is failed and gives way to a new one.

`manage.py accrue_referral_rewards` runs the same work in its own process under the same claim
(`schedule_run_here`): refused while a run is in progress, recorded as the schedule's last run.
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
from common.jobs import job_create, job_kind, job_run, job_start, jobs_sweep_lost
from common.models import Job
from ops.models import Schedule

SCHEDULED = "ops.scheduled"
ACCRUAL = "referrals.accrual"

# A failed or lost run starts again this long after it ended, not at the next planned time (which
# may be a day away); a quick retry loop is what it must not become.
RETRY_AFTER = datetime.timedelta(minutes=5)
# A run still queued this long after it was started is failed and gives way to a new one.
START_WITHIN = datetime.timedelta(hours=1)
NOT_STARTED_MESSAGE = "Failed: it did not start within an hour (no worker took it)."

Figures = dict[str, Any]
Progress = Callable[[int], None]


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


def accrue(params: dict[str, Any], progress: Progress) -> Figures:
    """Accrue every reward due (a run by hand may name one program, and a last day)."""
    from referrals.accrual import rewards_accrue
    from referrals.models import ReferralProgram

    program = ReferralProgram.objects.get(pk=params["program"]) if params.get("program") else None
    until = datetime.date.fromisoformat(params["until"]) if params.get("until") else None
    return {"rewards": rewards_accrue(program=program, until=until, progress=progress)}


def accrual_timetable() -> Timetable | None:
    hours = float(settings.ACCRUAL_EVERY_HOURS)
    if hours <= 0:
        return None
    return Timetable(
        every=datetime.timedelta(hours=hours), at=datetime.time.fromisoformat(settings.ACCRUAL_AT)
    )


# name -> the work (given the run's parameters and a progress callback, answering its figures)
# and its timetable, None when switched off.
WORK: dict[
    str, tuple[Callable[[dict[str, Any], Progress], Figures], Callable[[], Timetable | None]]
] = {ACCRUAL: (accrue, accrual_timetable)}
TITLES = {ACCRUAL: "Scheduled accrual of referral rewards"}
# Who follows a run made in this process (the accrual command's progress bar), by schedule.
_followers: dict[str, Progress] = {}


class ScheduleBusy(Exception):
    """A run of the schedule is in progress."""

    def __init__(self, job: Job | None):
        super().__init__(f"job {job.pk if job else '?'} ({job.status if job else 'running'})")
        self.job = job


def schedules_tick(*, at: datetime.datetime | None = None) -> list[Job]:
    """Start every schedule that is due and not running; answers the jobs started."""
    at = at or timezone.now()
    started = []
    for name, (_, timetable_of) in WORK.items():
        timetable = timetable_of()
        if timetable is None:
            continue
        schedule = _schedule(name, timetable, at)
        _release_finished(schedule, at=at)
        if schedule.current_job_id is None and schedule.next_run_at <= at:
            job = schedule_start(name=name, next_run_at=timetable.next_after(at))
            if job is not None:
                started.append(job)
    return started


def schedule_start(*, name: str, next_run_at: datetime.datetime | None = None) -> Job | None:
    """Queue a run now unless one is in progress (None then); `next_run_at` moves the timetable on."""
    return _claim_run(
        name=name,
        params={"title": TITLES[name]},
        actor=Actor.system("schedule"),
        next_run_at=next_run_at,
        queue=True,
    )


def schedule_run_here(
    *, name: str, params: dict[str, Any], actor: Actor, progress: Progress | None = None
) -> tuple[Job, Figures]:
    """Run the schedule's work in this process now (a management command), under the same claim
    as the workers' runs: ScheduleBusy while a run is in progress. The run is a job of its own
    (with its attempt and heartbeat, so a killed command is found lost like a worker) and becomes
    the schedule's last run; the timetable is unchanged. Answers the job and its figures."""
    at = timezone.now()
    jobs_sweep_lost(at=at)
    schedule = _schedule(name, WORK[name][1](), at)
    _release_finished(schedule, at=at)
    job = _claim_run(name=name, params={**params, "by_hand": True}, actor=actor, queue=False)
    if job is None:
        current = Schedule.objects.filter(name=name).values_list("current_job", flat=True).first()
        raise ScheduleBusy(Job.objects.filter(pk=current).first())
    if progress is not None:
        _followers[name] = progress
    try:
        job = job_run(job.pk, inline=True)
    finally:
        _followers.pop(name, None)
    schedule = Schedule.objects.get(name=name)
    figures = schedule.last_figures if job.status == Job.Status.DONE else {}
    _release_finished(schedule, at=timezone.now())
    return job, figures


def _claim_run(
    *,
    name: str,
    params: dict[str, Any],
    actor: Actor,
    next_run_at: datetime.datetime | None = None,
    queue: bool,
) -> Job | None:
    """A new run recorded and made the schedule's current one in one transaction (`queue`: its
    task queued once that commits); None, and no job, when a run is in progress."""
    record = job_start if queue else job_create
    with transaction.atomic():
        job = record(kind=SCHEDULED, params={**params, "schedule": name}, total=1, actor=actor)
        changes: dict[str, Any] = {"current_job": job}
        if next_run_at is not None:
            changes["next_run_at"] = next_run_at
        if not Schedule.objects.filter(name=name, current_job=None).update(**changes):
            transaction.set_rollback(True)  # another worker runs it: our job never existed
            return None
    return job


def _schedule(name: str, timetable: Timetable | None, at: datetime.datetime) -> Schedule:
    """The schedule's row, made on first use (also for a run by hand while the timetable is off),
    replanned when its settings changed."""
    hours = timetable.every.total_seconds() / 3600 if timetable else 0.0
    schedule, _ = Schedule.objects.get_or_create(
        name=name,
        defaults={
            "every_hours": hours,
            "at": timetable.at if timetable else datetime.time(0),
            "next_run_at": timetable.next_after(at) if timetable else at,
        },
    )
    if timetable is not None and (schedule.every_hours, schedule.at) != (hours, timetable.at):
        # The settings changed: plan from the new timetable.
        schedule.every_hours, schedule.at = hours, timetable.at
        schedule.next_run_at = timetable.next_after(at)
        Schedule.objects.filter(pk=schedule.pk).update(
            every_hours=hours, at=timetable.at, next_run_at=schedule.next_run_at
        )
    return schedule


def _release_finished(schedule: Schedule, *, at: datetime.datetime) -> None:
    """A run that ended becomes the last run. A scheduled one that failed or lost its worker
    brings the next run forward to RETRY_AFTER after it ended; one still queued START_WITHIN after it was started
    (its task lost while the queue was away, the workers all down) is failed first."""
    job = Job.objects.filter(pk=schedule.current_job_id).first()
    if job is None:
        return
    retry_at = (job.finished_at or at) + RETRY_AFTER
    if job.status == Job.Status.QUEUED and job.created_at <= at - START_WITHIN:
        Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
            status=Job.Status.FAILED, message=NOT_STARTED_MESSAGE, finished_at=at
        )
        job.refresh_from_db()
        retry_at = at  # it never ran: a new one may start at once
    if job.status not in (Job.Status.DONE, Job.Status.FAILED):
        return
    changes: dict[str, Any] = {"current_job": None, "last_job": job}
    if job.status == Job.Status.FAILED and not job.params.get("by_hand"):
        changes["next_run_at"] = min(schedule.next_run_at, retry_at)
    if Schedule.objects.filter(pk=schedule.pk, current_job=job).update(**changes):
        schedule.current_job_id, schedule.last_job_id = None, job.pk
        schedule.next_run_at = changes.get("next_run_at", schedule.next_run_at)


@job_kind(SCHEDULED, all_or_nothing=False)
def run_scheduled(params: dict[str, Any], actor: Actor, progress) -> str:
    """A run of a schedule's work. Not all or nothing: accrual commits chunk by chunk, so a run
    that stops keeps what it committed, and the next run takes up the rest."""
    name = params["schedule"]
    work, _ = WORK[name]
    began = time.monotonic()
    figures = {
        **work(params, _followers.get(name, lambda done: None)),
        "seconds": round(time.monotonic() - began, 3),
    }
    Schedule.objects.filter(name=name).update(last_figures=figures)
    return ", ".join(f"{key}: {value}" for key, value in figures.items())
