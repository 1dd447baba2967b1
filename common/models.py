from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class History(models.Model):
    """One change to a tracked object; children (discounts, codes) record on their root object."""

    changedate = models.DateTimeField(auto_now_add=True, db_index=True)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
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
