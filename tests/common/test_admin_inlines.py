"""Every inline an operator can edit saves through services, so each row's save (a condition
group's too, and its deletion) leaves a history line like every other door's."""

import pytest
from django.contrib import admin
from django.test import RequestFactory

from common.admin_tools import ServiceSavedAdmin
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_every_editable_inline_of_a_service_saved_admin_has_its_writers():
    request = RequestFactory().post("/")
    request.user = UserFactory(is_superuser=True, is_staff=True)
    missing = []
    for model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, ServiceSavedAdmin):
            continue
        writers = model_admin.inline_writers(request, model())
        for inline in model_admin.get_inline_instances(request, None):
            editable = inline.has_add_permission(request, None) or inline.has_change_permission(
                request, None
            )
            if editable and inline.model not in writers:
                missing.append(f"{type(model_admin).__name__}: {inline.model.__name__}")
    assert missing == []
