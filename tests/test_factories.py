"""Every model of the project has one factory in tests/factories.py, and each builds a valid row."""

import inspect
from pathlib import Path

import factory
import pytest
from django.apps import apps
from django.conf import settings

from tests import factories


def project_models() -> list[type]:
    """The models of the apps that live in this repository (not Django's nor a library's)."""
    base = Path(settings.BASE_DIR).resolve()
    return [
        model
        for app in apps.get_app_configs()
        if Path(app.path).resolve().parent == base
        for model in app.get_models()
    ]


def model_factories() -> list[type[factory.django.DjangoModelFactory]]:
    return [
        value
        for _, value in inspect.getmembers(factories, inspect.isclass)
        if issubclass(value, factory.django.DjangoModelFactory) and value._meta.model is not None
    ]


def label(model: type) -> str:
    return model._meta.label


def test_every_project_model_has_exactly_one_factory():
    # given the project's models and the factories' models
    made = [label(f._meta.model) for f in model_factories()]
    # then each model has one factory, and no model has two
    assert sorted(m for m in map(label, project_models()) if made.count(m) != 1) == []


def test_the_project_apps_are_found():
    # a guard on the introspection itself: an empty list would make the test above pass
    assert {
        "common",
        "billing",
        "referrals",
        "promotions",
        "billmgr_api",
        "digipay_api",
        "ops",
    } <= {model._meta.app_label for model in project_models()}


@pytest.mark.django_db
@pytest.mark.parametrize("model_factory", model_factories(), ids=lambda f: f.__name__)
def test_each_factory_saves_a_row_that_passes_full_clean(model_factory):
    # when a factory makes its row with its defaults
    made = model_factory()
    # then the row is saved, and valid by the model's own rules
    saved = type(made).objects.get(pk=made.pk)
    saved.full_clean()
