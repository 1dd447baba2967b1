"""The substrate admins (currency, provider, client group, tariff) save and delete through the
billing services, so each change has its history line like on the func door."""

from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType

from billing.models import ClientGroup, Currency, Provider, Tariff
from common.models import History
from tests.factories import ClientGroupFactory, CurrencyFactory, ProviderFactory, TariffFactory

pytestmark = pytest.mark.django_db


def history(obj) -> list[tuple[str, str, str]]:
    rows = History.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk
    ).order_by("id")
    return [(h.username, h.action, h.desc) for h in rows]


@pytest.fixture
def usd(db):
    return CurrencyFactory()


CASES = {
    "currency": (
        Currency,
        lambda usd: {"name": "Euro", "iso": "EUR", "minor_units": "2"},
        {"name": "Euro zone"},
        lambda usd: CurrencyFactory(iso="GBP", name="Pound"),
    ),
    "provider": (
        Provider,
        lambda usd: {"name": "Cloud Co", "currency": usd.pk, "max_discount": "100"},
        {"name": "Cloud Company"},
        lambda usd: ProviderFactory(currency=usd),
    ),
    "clientgroup": (
        ClientGroup,
        lambda usd: {"name": "VIP"},
        {"name": "Gold"},
        lambda usd: ClientGroupFactory(),
    ),
    "tariff": (
        Tariff,
        lambda usd: {
            "name": "VPS",
            "provider": ProviderFactory(currency=usd).pk,
            "price": "10",
            "charge": "monthly",
        },
        {"name": "VPS XL", "price": "12.5"},
        lambda usd: TariffFactory(),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_adding_and_changing_records_history(staff, usd, name):
    model, add, change, _ = CASES[name]
    url = f"/admin/billing/{name}/"
    # when the operator adds one in the admin
    response = staff.post(f"{url}add/", add(usd))
    assert response.status_code == 302, response.content
    created = model.objects.order_by("-pk").first()
    # and changes it
    data = {**add(usd), **change}
    assert staff.post(f"{url}{created.pk}/change/", data).status_code == 302
    # then both are in its history, by the operator through the admin
    lines = history(created)
    assert [(u, a) for u, a, _ in lines][:2] == [
        ("operator", f"admin:{name}.add"),
        ("operator", f"admin:{name}.change"),
    ]
    assert any("has been changed from" in d for _, _, d in lines)
    created.refresh_from_db()
    if name == "tariff":
        assert created.price == Decimal("12.5")


@pytest.mark.parametrize("name", list(CASES))
def test_deleting_records_history(staff, usd, name):
    model, _, _, make = CASES[name]
    obj = make(usd)
    response = staff.post(f"/admin/billing/{name}/{obj.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not model.objects.filter(pk=obj.pk).exists()
    assert any("has been deleted" in d and u == "operator" for u, _, d in history(obj))


def test_bulk_delete_records_history_for_each(staff):
    groups = ClientGroupFactory.create_batch(2)
    staff.post(
        "/admin/billing/clientgroup/",
        {"action": "delete_selected", "_selected_action": [g.pk for g in groups], "post": "yes"},
    )
    assert not ClientGroup.objects.exists()
    assert all(any("has been deleted" in d for _, _, d in history(g)) for g in groups)


@pytest.mark.parametrize(
    ("iso", "minor_units", "price", "shown"),
    [("USD", 2, "1234.5", "1,234.50 USD"), ("JPY", 0, "150000", "150,000 JPY")],
)
def test_the_tariff_list_shows_prices_in_the_one_money_format(
    staff, iso, minor_units, price, shown
):
    currency = CurrencyFactory(iso=iso, minor_units=minor_units)
    TariffFactory(provider=ProviderFactory(currency=currency), price=Decimal(price))

    page = staff.get("/admin/billing/tariff/").content.decode()

    assert f'<td class="field-price_shown">{shown}</td>' in page
