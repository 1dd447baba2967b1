"""Reads every app shares."""

from django.contrib.contenttypes.models import ContentType
from django.db import models

from common.models import History, Job


def history_of(*, obj: models.Model) -> models.QuerySet[History]:
    """The change history recorded on `obj` (children record on their root), newest first."""
    return History.objects.filter(
        content_type=ContentType.objects.get_for_model(obj, for_concrete_model=True),
        object_id=obj.pk,
    )


def job_for(*, user, job_id: int) -> "Job | None":
    """The job if `user` may read it: one they started, or any with the right to view jobs. A
    running job whose worker stopped beating is failed first, so its state is current."""
    from common.jobs import jobs_sweep_lost

    job = Job.objects.filter(pk=job_id).first()
    if job is None or not (job.username == user.get_username() or user.has_perm("common.view_job")):
        return None
    if job.status == Job.Status.RUNNING and jobs_sweep_lost(job_id=job.pk):
        job.refresh_from_db()
    return job


def job_as_dict(job: Job) -> dict:
    """A job as the REST door shows it: its state, progress and, once done, its result."""
    from common.jobs import job_done_so_far

    done = job_done_so_far(job)
    return {
        "id": job.pk,
        "kind": job.kind,
        "status": job.status,
        "done": done,
        "total": job.total,
        "percent": int(done * 100 / job.total) if job.total else 100,
        "message": job.message,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "result": job.result if job.status == Job.Status.DONE else None,
    }
