"""The permission matrix, built from the registries so a new function or route cannot slip by:
every func and REST route x a user without rights, with view only, and with the right needed."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import URLPattern
from rest_framework.test import APIClient

from billmgr_api.registry import FUNCS
from billmgr_api.resources import Resource
from common.apis import HasPerm, ModelPermissionsWithView
from config import api_urls
from tests.conftest import Door
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

GUARDED = sorted(name for name, spec in FUNCS.items() if spec.perm)
EDITS = sorted(
    name
    for name, spec in FUNCS.items()
    if spec.perm is None
    and not spec.public
    and isinstance(getattr(spec.handler, "__self__", None), Resource)
)
OPEN = sorted(name for name, spec in FUNCS.items() if spec.public)


def grant(user, *perms: str) -> None:
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


def view_of(perm: str) -> str:
    app_label, codename = perm.split(".")
    return f"{app_label}.view_{codename.split('_', 1)[1]}"


def error_type(answer: dict) -> str | None:
    return answer.get("error", {}).get("type")


def test_the_matrix_covers_every_registered_function():
    assert set(GUARDED) | set(EDITS) | set(OPEN) == set(FUNCS)


@pytest.mark.parametrize("name", GUARDED)
def test_each_function_refuses_without_its_permission_and_runs_with_it(client, name):
    perm = FUNCS[name].perm
    user = UserFactory(username="clerk")
    door = Door(client, authinfo="clerk:secret")
    # without rights: an access error
    assert error_type(door(name)) == "access"
    # with view only (when the function needs more than viewing): still an access error
    if view_of(perm) != perm:
        grant(user, view_of(perm))
        assert error_type(door(name)) == "access"
    # with the permission it needs: never an access error (a missing parameter may remain)
    grant(user, perm)
    assert error_type(door(name)) != "access"


@pytest.mark.parametrize("name", EDITS)
def test_edit_forms_need_view_and_creating_needs_add(client, name):
    resource: Resource = FUNCS[name].handler.__self__
    user = UserFactory(username="clerk")
    door = Door(client, authinfo="clerk:secret")
    assert error_type(door(name)) == "access"
    grant(user, resource.perm("view"))
    assert error_type(door(name)) is None
    assert error_type(door(name, sok="ok")) == "access"
    grant(user, resource.perm("add"))
    assert error_type(door(name, sok="ok")) != "access"


@pytest.mark.parametrize("name", OPEN)
def test_public_functions_answer_without_credentials(client, name):
    assert error_type(Door(client, authinfo=None)(name)) != "access"


def _routes():
    for pattern in api_urls.urlpatterns:
        view = getattr(pattern.callback, "view_class", None)
        if not isinstance(pattern, URLPattern) or view is None:
            continue
        classes = getattr(view, "permission_classes", [])
        path = re.sub(r"<int:\w+>", "1", str(pattern.pattern))
        if HasPerm in classes:
            yield pytest.param(path, "post", view.required_perm, id=path)
        elif ModelPermissionsWithView in classes:
            model = (
                view.queryset.model if view.queryset is not None else view().get_queryset().model
            )
            perm = f"{model._meta.app_label}.view_{model._meta.model_name}"
            yield pytest.param(path, "get", perm, id=path)


@pytest.mark.parametrize(("path", "method", "perm"), list(_routes()))
def test_each_rest_route_refuses_without_its_permission(path, method, perm):
    user = UserFactory(username="clerk")
    api = APIClient()
    api.force_authenticate(user)
    call = getattr(api, method)
    assert call(f"/api/v1/{path}", {}, format="json").status_code == 403
    if view_of(perm) != perm:
        grant(user, view_of(perm))
        user = type(user).objects.get(pk=user.pk)
        api.force_authenticate(user)
        assert call(f"/api/v1/{path}", {}, format="json").status_code == 403
    grant(user, perm)
    api.force_authenticate(type(user).objects.get(pk=user.pk))
    assert call(f"/api/v1/{path}", {}, format="json").status_code not in (401, 403)


def test_anonymous_rest_calls_are_refused():
    for param in _routes():
        path, method, _ = param.values
        assert getattr(APIClient(), method)(f"/api/v1/{path}").status_code in (401, 403)
