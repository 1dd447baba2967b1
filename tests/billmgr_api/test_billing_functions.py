"""The substrate functions: project, currency, accountgroup, account, pricelist."""

import datetime
from decimal import Decimal

import pytest

from billing.models import Client, ClientGroup, Currency, Provider, Tariff
from tests.factories import (
    ClientFactory,
    ClientGroupFactory,
    CurrencyFactory,
    ProviderFactory,
    ServiceFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("out", ["bjson", "xml"])]


def test_currency_functions(door, out):
    created = door("currency.edit", out=out, sok="ok", name="Euro", iso="EUR", minor_units="2")
    assert Currency.objects.get(pk=created["id"]).iso == "EUR"
    assert door("currency", out=out)["elem"] == [
        {"id": created["id"], "name": "Euro", "iso": "EUR", "minor_units": "2"}
    ]
    dup = door("currency.edit", out=out, sok="ok", name="Euro again", iso="EUR")
    assert (dup["error"]["type"], dup["error"]["object"]) == ("exists", "iso")
    assert (
        door("currency.edit", out=out, sok="ok", name="X", iso="XXX", minor_units="9")["error"][
            "object"
        ]
        == "minor_units"
    )
    assert door("currency.delete", out=out, elid=created["id"])["ok"]


def test_project_functions(door, out):
    usd = CurrencyFactory()
    created = door("project.edit", out=out, sok="ok", name="Cloud Co", currency="USD")
    provider = Provider.objects.get(pk=created["id"])
    assert provider.currency == usd
    assert door("project.edit", out=out, elid=provider.pk) == {
        "id": str(provider.pk),
        "name": "Cloud Co",
        "currency": str(usd.pk),
        "max_discount": "100",
    }
    assert door("project", out=out, name="cloud")["elem"][0]["currency"] == "USD"
    # the provider's cap on a line's discount, in percent, within 0-100
    door("project.edit", out=out, sok="ok", elid=provider.pk, max_discount="30")
    assert Provider.objects.get(pk=provider.pk).max_discount == Decimal("30")
    too_much = door("project.edit", out=out, sok="ok", elid=provider.pk, max_discount="120")
    assert too_much["error"]["type"] == "value"
    assert Provider.objects.get(pk=provider.pk).max_discount == Decimal("30")
    # a currency in use cannot be deleted; the provider can
    blocked = door("currency.delete", out=out, elid=usd.pk)
    assert blocked["error"]["type"] == "value"
    assert door("project.delete", out=out, elid=provider.pk)["ok"]


def test_accountgroup_functions(door, out):
    created = door("accountgroup.edit", out=out, sok="ok", name="VIP")
    door("accountgroup.edit", out=out, sok="ok", elid=created["id"], name="Gold")
    assert ClientGroup.objects.get(pk=created["id"]).name == "Gold"
    assert door("accountgroup", out=out)["elem"] == [{"id": created["id"], "name": "Gold"}]
    assert door("accountgroup.delete", out=out, elid=created["id"])["ok"]


def test_account_functions(door, out):
    provider = ProviderFactory()
    groups = ClientGroupFactory.create_batch(2)
    created = door(
        "account.edit",
        out=out,
        sok="ok",
        name="Ann",
        email="ann@example.com",
        project=provider.pk,
        registration_date="2026-03-04",
        account_group=f"{groups[0].pk}, {groups[1].pk}",
    )
    client = Client.objects.get(pk=created["id"])
    assert client.registration_date.date() == datetime.date(2026, 3, 4)
    assert set(client.groups.all()) == set(groups)
    row = door("account", out=out, email="ann@")["elem"][0]
    assert row["registration_date"] == "2026-03-04"
    assert row["account_group"] == f"{groups[0].name}, {groups[1].name}"
    bad = door(
        "account.edit", out=out, sok="ok", name="B", email="not-an-email", project=provider.pk
    )
    assert bad["error"]["object"] == "email"
    assert door("account.delete", out=out, elid=client.pk)["ok"]


def test_account_without_date_registers_now(door, out):
    provider = ProviderFactory()
    created = door("account.edit", out=out, sok="ok", name="Now", project=provider.pk)
    assert Client.objects.get(pk=created["id"]).registration_date.date() == datetime.date.today()


def test_account_with_services_keeps_its_provider(door, out):
    service = ServiceFactory()
    other = ProviderFactory()
    answer = door("account.edit", out=out, sok="ok", elid=service.client_id, project=other.pk)
    assert answer["error"]["object"] == "project"


def test_pricelist_functions(door, out):
    provider = ProviderFactory()
    created = door(
        "pricelist.edit",
        out=out,
        sok="ok",
        name="VPS",
        project=provider.pk,
        price="9.99",
        charge="daily",
    )
    tariff = Tariff.objects.get(pk=created["id"])
    assert (tariff.price, tariff.charge) == (Decimal("9.99"), "daily")
    assert door("pricelist", out=out, charge="daily")["elem"][0]["price"] == "9.99"
    assert (
        door(
            "pricelist.edit",
            out=out,
            sok="ok",
            name="X",
            project=provider.pk,
            price="1",
            charge="hourly",
        )["error"]["object"]
        == "charge"
    )
    assert (
        door("pricelist.edit", out=out, sok="ok", name="X", project=provider.pk, price="-1")[
            "error"
        ]["object"]
        == "price"
    )
    assert door("pricelist.delete", out=out, elid=tariff.pk)["ok"]


def test_client_in_use_cannot_be_deleted(door, out):
    service = ServiceFactory()
    client = ClientFactory()
    answer = door("account.delete", out=out, elid=f"{client.pk}, {service.client_id}")
    assert answer["error"]["type"] == "value"
    assert Client.objects.filter(pk=client.pk).exists()
