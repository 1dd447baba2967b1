"""Every foreign key of the project's tables leads some index, and no index of theirs is the first
column of another index alone: a PROTECT or CASCADE check, or a lookup by the key, never scans a
table, and no write maintains an index another one already gives."""

import pytest
from django.apps import apps
from django.db import connection
from django.db.models import Q

PROJECT_APPS = ["billing", "common", "dashboard", "ops", "promotions", "referrals"]


def _tables():
    for label in PROJECT_APPS:
        try:
            config = apps.get_app_config(label)
        except LookupError:
            continue
        for model in config.get_models():
            if model._meta.managed and not model._meta.proxy:
                yield model


def _indexes(model) -> list[list[str]]:
    """The columns, in order, of each index of the model's table that serves any lookup by its
    first column: unique constraints and the primary key included, partial ones (a WHERE) only
    when the WHERE is that column being set (every lookup by a value of it matches)."""
    partial = {
        c.name
        for c in (*model._meta.constraints, *model._meta.indexes)
        if getattr(c, "fields", None)  # an index or a unique constraint (not a check)
        and c.condition is not None
        and c.condition != Q(**{f"{c.fields[0]}__isnull": False})
    }
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return [
        c["columns"]
        for name, c in found.items()
        if (c["index"] or c["unique"] or c["primary_key"]) and name not in partial
    ]


@pytest.mark.django_db
def test_every_foreign_key_leads_an_index():
    # given the migrated schema
    # when each foreign key column is looked for as the first column of an index
    missing = [
        f"{model._meta.db_table}.{field.column}"
        for model in _tables()
        for field in model._meta.concrete_fields
        if field.is_relation
        and field.db_constraint  # the database checks it: a parent's delete reads the children
        and not any(cols and cols[0] == field.column for cols in _indexes(model))
    ]
    # then every one is found
    assert missing == []


@pytest.mark.django_db
def test_no_single_column_index_repeats_the_lead_of_a_wider_one():
    # given the migrated schema
    # when a one-column plain index's column also leads a wider index of the same table
    redundant = []
    for model in _tables():
        table = model._meta.db_table
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, table)
        wider = [cols for cols in _indexes(model) if len(cols) > 1]
        for name, c in constraints.items():
            plain = c["index"] and not c["unique"] and not c["primary_key"]
            if plain and len(c["columns"]) == 1 and any(w[0] == c["columns"][0] for w in wider):
                redundant.append(f"{table}.{name}")
    # then there is none: each write would maintain it for nothing
    assert redundant == []
