"""The tasks workers run (Django's Tasks API, the django-tasks backport on Django 5.2)."""

from django_tasks import task

from common.jobs import job_run
from ops import worker


@task()
def run_job(*, job_id: int, waits: int = 0) -> str:
    """An attempt at a background job (common.jobs), or a look for a free slot (`waits`: how many
    looks found none before); answers the job's status after it."""
    return job_run(job_id, worker=worker.name(), waits=waits).status
