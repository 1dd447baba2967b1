from django.db import models
from django.db.models import Q


class JobAttempt(models.Model):
    """One run of a background job by a worker: its place under the cap and its heartbeat.

    At most JOBS_MAX_RUNNING attempts are open at once over every worker: an open attempt holds a
    slot number, unique among open attempts, so taking a place is an insert that either wins or
    meets the unique index; there is no count-then-start.
    """

    class Outcome(models.TextChoices):
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        RETRY = "retry", "transient error, tried again"
        LOST = "lost", "lost its worker"

    job = models.ForeignKey(
        "common.Job", on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    number = models.PositiveSmallIntegerField()
    slot = models.PositiveSmallIntegerField()
    worker = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["slot"], condition=Q(finished_at__isnull=True), name="jobattempt_open_slot"
            ),
            models.UniqueConstraint(
                fields=["job"], condition=Q(finished_at__isnull=True), name="jobattempt_open_job"
            ),
            models.UniqueConstraint(fields=["job", "number"], name="jobattempt_number_once"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of job {self.job_id} ({self.outcome})"


class JobTask(models.Model):
    """The task that carries a queued job to a worker: which one, since when, and for whom.

    The task is queued after the job commits, so the two can part: an enqueue that fails (Redis
    away, SQLite locked), a task that fails before it takes its job. Every worker's sweep
    (common.jobs.jobs_requeue_stranded) queues a job again whose task is no longer waiting.
    """

    job = models.OneToOneField(
        "common.Job", on_delete=models.CASCADE, primary_key=True, related_name="task"
    )
    # The task's result id in the backend; empty until an enqueue succeeded.
    task_id = models.CharField(max_length=64, blank=True)
    queued_at = models.DateTimeField()
    # Who started the job (common.jobs.actor_dump), for every attempt and every re-queue.
    actor = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"task of job {self.job_id}"


class WorkerBeat(models.Model):
    """A worker process's last sign of life (PostgreSQL; on SQLite beats go to files, ops.beats)."""

    worker = models.CharField(max_length=200, primary_key=True)
    backend = models.CharField(max_length=20)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.worker


class Schedule(models.Model):
    """Work the workers run on a timetable (scheduled accrual), one run at a time.

    A worker that finds the schedule due starts a job and claims the schedule with a guarded
    update (`current_job IS NULL`) in the same transaction: of two workers, one wins and the
    other's job is rolled back. A run that was missed (no worker up) happens at the next tick.
    """

    name = models.CharField(max_length=100, unique=True)
    every_hours = models.FloatField()
    at = models.TimeField()
    next_run_at = models.DateTimeField()
    current_job = models.OneToOneField(
        "common.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_job = models.ForeignKey(
        "common.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_figures = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.name
