"""Every money and count column carries a database CHECK, so an impossible value is unsaveable
whatever writes it; the one exception is named and justified."""

import pytest
from django.apps import apps
from django.db import connection, models

# Column -> why it may hold any value.
UNCHECKED = {
    ("billing_expense", "amount"): "refunds are negative expenses",
}
APPS = ("billing", "promotions", "referrals", "common", "billmgr_api")


def money_and_count_columns():
    for app in APPS:
        for model in apps.get_app_config(app).get_models():
            for field in model._meta.concrete_fields:
                numeric = isinstance(field, models.DecimalField | models.IntegerField)
                if numeric and not field.primary_key and not field.is_relation:
                    yield model._meta.db_table, field.column


@pytest.mark.postgres
@pytest.mark.django_db
def test_every_money_and_count_column_has_a_check():
    checked = set()
    with connection.cursor() as cursor:
        for table in {t for t, _ in money_and_count_columns()}:
            for constraint in connection.introspection.get_constraints(cursor, table).values():
                if constraint["check"]:
                    checked |= {(table, c) for c in constraint["columns"]}
    missing = sorted(set(money_and_count_columns()) - checked - set(UNCHECKED))
    assert missing == []
