"""The tasks workers run (Django's Tasks API, the django-tasks backport on Django 5.2)."""

from typing import Any

from django_tasks import task

from common.jobs import job_run
from ops import worker


@task()
def run_job(*, job_id: int, actor: dict[str, Any], attempt: int = 1) -> str:
    """One attempt at a background job (common.jobs); answers the job's status after it."""
    return job_run(job_id, actor=actor, attempt=attempt, worker=worker.name()).status
