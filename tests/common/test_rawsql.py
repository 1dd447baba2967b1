"""Hand-written reads give what the ORM gives: converted values, as records or instances."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection

from billing.models import Client, Tariff
from common.rawsql import Columns
from tests.factories import ClientFactory, TariffFactory

pytestmark = pytest.mark.django_db

CLIENT = Columns(Client, "id", "registration_date", "provider_id", alias="c")
TARIFF = Columns(Tariff, "name", "price", "id", "charge", alias="t")


def _raw_row(columns: Columns, pk: int) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns.sql()} FROM {columns.table} {columns.alias} "
            f"WHERE {columns.alias}.id = %s",
            [pk],
        )
        return cursor.fetchone()


@pytest.mark.parametrize(
    ("columns", "factory", "kwargs"),
    [
        (
            CLIENT,
            ClientFactory,
            {"registration_date": datetime.datetime(2024, 2, 29, 23, 59, 58, tzinfo=datetime.UTC)},
        ),
        (TARIFF, TariffFactory, {"price": Decimal("12.34")}),
    ],
    ids=["a moment", "a decimal"],
)
def test_a_record_holds_what_the_orm_reads(columns, factory, kwargs):
    # given a stored row whose values the database keeps in its own form (SQLite: text, floats)
    obj = factory(**kwargs)
    names = [f.attname for f in columns.fields]
    # when its columns are read by hand and made a record
    record = columns.record(_raw_row(columns, obj.pk))
    # then each field holds the ORM's value, by name, and the primary key is the record's pk
    expected = columns.model.objects.filter(pk=obj.pk).values_list(*names).get()
    assert tuple(record) == expected
    assert [getattr(record, name) for name in names] == list(expected)
    assert record.pk == obj.pk


def test_a_record_and_an_instance_agree():
    # given a stored tariff
    tariff = TariffFactory(price=Decimal("7.50"))
    row = _raw_row(TARIFF, tariff.pk)
    # when the same row is read as a record and as an instance
    record, instance = TARIFF.record(row), TARIFF.instance(row)
    # then both give the same values
    assert [getattr(record, f.attname) for f in TARIFF.fields] == [
        getattr(instance, f.attname) for f in TARIFF.fields
    ]
    assert (record.pk, instance.pk) == (tariff.pk, tariff.pk)


def test_a_row_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="3 values for 4 columns"):
        TARIFF.record(("a", Decimal(1), 1))
