from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class History(models.Model):
    """One change to a tracked object; children (discounts, codes) record on their root object."""

    changedate = models.DateTimeField(auto_now_add=True, db_index=True)
    # Its index is the composite one's first column (Meta.indexes): one index less per write.
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, db_index=False)
    object_id = models.PositiveBigIntegerField()
    desc = models.TextField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    username = models.CharField(max_length=150)
    ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=100)

    class Meta:
        verbose_name_plural = "history"
        ordering = ["-changedate", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id", "changedate"])]

    def __str__(self) -> str:
        return self.desc


class Job(models.Model):
    """Long work started from the admin and run in the background, with its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    kind = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveBigIntegerField()
    done = models.PositiveBigIntegerField(default=0)
    message = models.TextField(blank=True)
    result = models.JSONField(
        null=True, blank=True, help_text="What a finished job found (a backtest's figures)."
    )
    username = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(done__lte=models.F("total")), name="job_done_le_total"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"


class Attempt(models.Model):
    """Failures counted per key (a hashed user name, address or client) in a fixed time window."""

    key = models.CharField(max_length=64)
    window_start = models.DateTimeField()
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "window_start"], name="attempt_once_per_window")
        ]
        indexes = [models.Index(fields=["window_start"])]

    def __str__(self) -> str:
        return f"{self.failures} failures from {self.window_start}"


class SigninNetwork(models.Model):
    """A network a user signed in from lately (the key is a hash of the user name and the
    network): sign-ins from it are spared the per-user cap (common/signin.py)."""

    key = models.CharField(max_length=64, unique=True)
    last_signin = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"signed in {self.last_signin}"
