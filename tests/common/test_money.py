"""The one money and date-time format people read: minor units, thousands, code after."""

import datetime
import zoneinfo
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import timezone

from common.money import moment_format, money_format
from tests.factories import CurrencyFactory


@pytest.mark.parametrize(
    ("amount", "currency", "minor_units", "shown"),
    [
        ("1234.5", "USD", 2, "1,234.50 USD"),
        ("24.0000", "USD", 2, "24.00 USD"),
        ("149.5000", "EUR", 2, "149.50 EUR"),
        ("-1234.5", "USD", 2, "-1,234.50 USD"),
        ("0", "USD", 2, "0.00 USD"),
        ("1234567", "JPY", 0, "1,234,567 JPY"),
        ("-300.0000", "JPY", 0, "-300 JPY"),
        ("1234.5", "KWD", 3, "1,234.500 KWD"),
        ("-0.125", "KWD", 3, "-0.125 KWD"),
        ("1000000.005", "USD", 2, "1,000,000.005 USD"),  # a fraction below the cent is kept
        ("1E+3", "USD", 2, "1,000.00 USD"),
    ],
)
def test_money_shows_minor_units_thousands_and_the_code_after(amount, currency, minor_units, shown):
    assert money_format(Decimal(amount), currency, minor_units=minor_units) == shown


@pytest.mark.parametrize(
    ("zone", "shown"),
    [("UTC", "2026-03-01 09:05 UTC"), ("Europe/Berlin", "2026-03-01 10:05 CET")],
)
def test_a_moment_is_shown_in_the_current_zone_with_the_zone_named(zone, shown):
    moment = datetime.datetime(2026, 3, 1, 9, 5, tzinfo=datetime.UTC)
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        assert moment_format(moment) == shown


def test_no_moment_shows_as_nothing():
    assert moment_format(None) == ""


@pytest.mark.django_db
def test_the_template_filters_format_by_a_currency_row_or_its_code():
    CurrencyFactory(iso="JPY", name="yen", minor_units=0)
    usd = CurrencyFactory(iso="USD")
    page = Template(
        "{% load money %}{{ a|money:usd }} / {{ b|money:'JPY' }} / {{ when|moment }} / {{ date }}"
    ).render(
        Context(
            {
                "usd": usd,
                "a": Decimal("1234.5"),
                "b": Decimal("5000.0000"),
                "when": datetime.datetime(2026, 3, 1, 9, 5, tzinfo=datetime.UTC),
                "date": datetime.datetime(2026, 3, 1, 9, 5, tzinfo=datetime.UTC),
            }
        )
    )
    assert page == "1,234.50 USD / 5,000 JPY / 2026-03-01 09:05 UTC / 2026-03-01 09:05 UTC"
