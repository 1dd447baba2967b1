from django.conf import settings
from django.db import models


class BillmgrSession(models.Model):
    """A `func=auth` session; it ends after an hour without requests."""

    key = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField()

    def __str__(self) -> str:
        return f"session of {self.user}"


class SavedFilter(models.Model):
    """What `promotion.filter` set for a user; the list applies it until it is changed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    func = models.CharField(max_length=100)
    params = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "func"], name="saved_filter_one_per_user_func")
        ]

    def __str__(self) -> str:
        return f"{self.func} filter of {self.user}"
