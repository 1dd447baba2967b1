"""Reads every app shares."""

from django.contrib.contenttypes.models import ContentType
from django.db import models

from common.models import History


def history_of(*, obj: models.Model) -> models.QuerySet[History]:
    """The change history recorded on `obj` (children record on their root), newest first."""
    return History.objects.filter(
        content_type=ContentType.objects.get_for_model(obj, for_concrete_model=True),
        object_id=obj.pk,
    )
