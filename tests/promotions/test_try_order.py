"""The admin's "try an order": a quote for a chosen client and lines, with every verdict."""

import datetime
from decimal import Decimal

import pytest
import time_machine

from common.models import Attempt
from promotions.models import PromoCode, PromoCodeUsage
from tests.factories import (
    ClientFactory,
    ConditionFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ServiceFactory,
    TariffFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
URL = "/admin/promotions/promotion/try-order/"


def lines(*rows: dict) -> dict:
    form = {"lines-TOTAL_FORMS": str(len(rows)), "lines-INITIAL_FORMS": "0"}
    for i, row in enumerate(rows):
        form |= {f"lines-{i}-{k}": v for k, v in row.items()}
    return form


@time_machine.travel("2026-06-15 10:00:00+00:00", tick=False)
def test_the_quote_shows_the_discount_and_why_each_promotion_did_or_did_not_apply(staff):
    # given a 25% promotion for everyone and a promotion that needs a code
    tariff = TariffFactory(price=Decimal("20.00"))
    provider = tariff.provider
    sale = PromotionFactory(
        name="Quarter off", provider=provider, fromdate=datetime.date(2026, 6, 1)
    )
    DiscountFactory(promotion=sale, percentage=Decimal("25"))
    coded = PromotionFactory(
        name="Code only", provider=provider, fromdate=datetime.date(2026, 6, 1)
    )
    DiscountFactory(promotion=coded, percentage=Decimal("50"))
    ConditionFactory(promotion=coded, ctype="service_count", amount=5)
    PromoCodeFactory(promotion=coded, code="HALF")
    client = ClientFactory(provider=provider)
    # when a 3-month line is tried with the code, for a client without 5 services
    page = staff.post(
        URL,
        {
            "client": client.pk,
            "codes": "half",
            **lines({"tariff": tariff.pk, "period": 3, "kind": "new"}),
        },
    ).content.decode()
    # then the line costs 60.00, gets 15.00 off from the sale, and both verdicts say why
    assert "<td>60.00 USD</td>" in page and "<td>15.00 USD</td>" in page
    assert "<td>45.00 USD</td>" in page
    assert "<strong>Quarter off</strong>: applied" in page
    assert "<strong>Code only</strong>:" in page and "active services" in page
    assert "Total <strong>45.00 USD</strong>, of which discount 15.00 USD" in page
    # and nothing was used
    assert PromoCode.objects.get(code="HALF").use_count == 0
    assert not PromoCodeUsage.objects.exists()


@time_machine.travel("2026-06-15 10:00:00+00:00", tick=False)
def test_the_quote_explains_even_promotions_far_from_the_line(staff):
    # given a promotion whose only discount is for renewals, which a checkout's default answer
    # leaves out for a new order (it is not even close)
    tariff = TariffFactory(price=Decimal("20.00"))
    renewals = PromotionFactory(
        name="Renewals only", provider=tariff.provider, fromdate=datetime.date(2026, 6, 1)
    )
    DiscountFactory(promotion=renewals, percentage=Decimal("30"), actiontype="prolong")
    client = ClientFactory(provider=tariff.provider)
    # when a new order is tried
    page = staff.post(
        URL, {"client": client.pk, **lines({"tariff": tariff.pk, "period": 1, "kind": "new"})}
    ).content.decode()
    # then the page still says why that promotion gave nothing
    assert "<strong>Renewals only</strong>:" in page
    assert "<td>20.00 USD</td>" in page


def test_an_order_without_lines_or_with_a_foreign_tariff_says_so(staff):
    client = ClientFactory()
    empty = staff.post(URL, {"client": client.pk, **lines({"period": 1, "kind": "new"})})
    assert "at least one line" in empty.content.decode()
    foreign = staff.post(
        URL,
        {"client": client.pk, **lines({"tariff": TariffFactory().pk, "period": 1, "kind": "new"})},
    )
    assert "is not a tariff of provider" in foreign.content.decode()


def test_the_page_needs_the_view_permission(client):
    client.force_login(UserFactory(is_staff=True))
    assert client.get(URL).status_code == 403


def test_the_promotion_list_links_to_it(staff):
    assert URL in staff.get("/admin/promotions/promotion/").content.decode()


@time_machine.travel("2026-06-15 10:00:00+00:00", tick=False)
def test_a_renewal_names_its_service_and_gets_the_discount_valid_months_from_the_order(staff):
    # given a renewal discount valid 3 months from the order, and a service ordered a month ago
    tariff = TariffFactory(price=Decimal("20.00"))
    renewals = PromotionFactory(provider=tariff.provider, fromdate=datetime.date(2026, 6, 1))
    DiscountFactory(
        promotion=renewals,
        percentage=Decimal("50"),
        actiontype="prolong",
        validity="months",
        validitylength=3,
    )
    client = ClientFactory(provider=tariff.provider)
    service = ServiceFactory(
        client=client, tariff=tariff, opened_at=datetime.datetime(2026, 5, 15, tzinfo=datetime.UTC)
    )
    renewal = {"tariff": tariff.pk, "period": 1, "kind": "renewal"}
    # when the renewal is tried naming the service, and without it
    named = staff.post(URL, {"client": client.pk, **lines({**renewal, "service": service.pk})})
    unnamed = staff.post(URL, {"client": client.pk, **lines(renewal)})
    # then the named one gets half off, and the other is told to name the service
    assert "<td>10.00 USD</td>" in named.content.decode()
    assert "Total <strong>10.00 USD</strong>" in named.content.decode()
    assert "name the renewed service" in unnamed.content.decode()


def test_an_order_obeys_the_doors_code_limit(staff):
    # given a client and eleven codes
    client = ClientFactory()
    tariff = TariffFactory(provider=client.provider)
    codes = ", ".join(f"GUESS{n}" for n in range(11))
    # when an order is tried with them
    page = staff.post(
        URL,
        {
            "client": client.pk,
            "codes": codes,
            **lines({"tariff": tariff.pk, "period": 1, "kind": "new"}),
        },
    ).content.decode()
    # then it is refused as the doors refuse it, with no quote and no guess counted
    assert "An order carries at most 10 promo codes." in page
    assert 'id="quote-lines"' not in page
    assert not Attempt.objects.exists()


@time_machine.travel("2026-06-15 10:00:30+00:00", tick=False)
def test_unknown_codes_are_braked_as_on_the_doors(staff, settings):
    # given a budget of three unknown codes per client and address
    settings.THROTTLE_PROMOCODE_FAILURES, settings.THROTTLE_PROMOCODE_SECONDS = 3, 60
    client = ClientFactory()
    tariff = TariffFactory(provider=client.provider)
    order = {"client": client.pk, **lines({"tariff": tariff.pk, "period": 1, "kind": "new"})}
    # when three guesses are tried, then a fourth
    for guess in ("AAA", "BBB", "CCC"):
        assert 'id="quote-lines"' in staff.post(URL, {**order, "codes": guess}).content.decode()
    braked = staff.post(URL, {**order, "codes": "DDD"}).content.decode()
    # then the fourth is refused for a while, and an order without codes is still quoted
    assert "Too many unknown promo codes lately; try again in 30 seconds." in braked
    assert 'id="quote-lines"' not in braked
    assert 'id="quote-lines"' in staff.post(URL, order).content.decode()


@time_machine.travel("2026-06-15 10:00:00+00:00", tick=False)
def test_every_reason_names_the_promotions_and_every_amount_its_currency(staff, settings):
    # given two open promotions on a tariff, the bigger one wins; a code of an expired promotion
    tariff = TariffFactory(price=Decimal("1200.00"))
    provider = tariff.provider
    black_friday = PromotionFactory(
        name="Black Friday", provider=provider, fromdate=datetime.date(2026, 6, 1)
    )
    DiscountFactory(promotion=black_friday, percentage=Decimal("30"))
    small = PromotionFactory(
        name="Small one", provider=provider, fromdate=datetime.date(2026, 6, 1)
    )
    DiscountFactory(promotion=small, percentage=Decimal("10"))
    old = PromotionFactory(
        name="Last spring",
        provider=provider,
        fromdate=datetime.date(2026, 3, 1),
        todate=datetime.date(2026, 3, 31),
    )
    PromoCodeFactory(promotion=old, code="OLD")
    client = ClientFactory(provider=provider)
    settings.TIME_ZONE = "Europe/Berlin"
    # when the operator tries a line with the old code
    page = staff.post(
        URL,
        {
            "client": client.pk,
            "codes": "OLD",
            "at": "2026-06-15 12:00",
            **lines({"tariff": tariff.pk, "period": 1, "kind": "new"}),
        },
    ).content.decode()
    # then the reasons say names and amounts with their currency, never an id
    assert "<strong>Black Friday</strong>: applied: 30% off (360.00 USD)" in page
    assert (
        "<strong>Small one</strong>: not applied: Black Friday is exclusive and goes first "
        "(it gives 360.00 USD, this one 120.00 USD)" in page
    )
    assert "OLD: code OLD belongs to Last spring, which is not active now" in page
    assert f"promotion {black_friday.pk}" not in page
    # and the moment is shown in the operator's zone, named
    assert "As placed at 2026-06-15 12:00 CEST." in page
    assert "Europe/Berlin time" in page


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        (
            "not chosen: promotion 7 gives 36.00, this one 5.50",
            "not chosen: Black Friday gives 36.00 USD, this one 5.50 USD",
        ),
        ("applied: 12.5% off (1234.50)", "applied: 12.5% off (1,234.50 USD)"),
        (
            "expenses in the last 1 month >= 100.00 USD",
            "expenses in the last 1 month >= 100.00 USD",
        ),
        (
            "code X belongs to promotion 99, which is not active now",
            "code X belongs to promotion 99, which is not active now",
        ),
        ("active services >= 5", "active services >= 5"),
    ],
)
def test_a_reason_is_said_with_names_and_currencies(reason, said):
    from promotions.selectors import reason_for_people

    assert reason_for_people(reason, names={7: "Black Friday"}, currency="USD") == said


@pytest.mark.parametrize(
    ("model_name", "field_name", "make", "term"),
    [
        ("service", "client", lambda: ClientFactory(name="Ann Example"), "Ann"),
        ("service", "tariff", lambda: TariffFactory(name="VPS S"), "VPS"),
        ("promocodeusage", "service", lambda: ServiceFactory(tariff__name="VPS S"), "VPS"),
    ],
)
def test_the_pickers_find_clients_tariffs_and_services_as_one_types(
    staff, model_name, field_name, make, term
):
    found = make()
    app_label = "promotions" if model_name == "promocodeusage" else "billing"

    answer = staff.get(
        "/admin/autocomplete/",
        {"app_label": app_label, "model_name": model_name, "field_name": field_name, "term": term},
    ).json()

    assert answer["results"] == [{"id": str(found.pk), "text": str(found)}]


@time_machine.travel("2026-06-15 10:00:00+00:00", tick=False)
def test_stacked_promotions_are_named_in_their_order_with_their_codes(staff):
    # given a combinable 10% first (priority 1) and a combinable 5.00 off with a code
    tariff = TariffFactory(price=Decimal("100.00"))
    provider = tariff.provider
    first = PromotionFactory(
        name="Ten",
        provider=provider,
        fromdate=datetime.date(2026, 6, 1),
        priority=1,
        combine="combinable",
    )
    DiscountFactory(promotion=first, percentage=Decimal("10"))
    second = PromotionFactory(
        name="Five off",
        provider=provider,
        fromdate=datetime.date(2026, 6, 1),
        combine="combinable",
    )
    DiscountFactory(promotion=second, valuetype="amount", percentage=None, amount=Decimal("5"))
    PromoCodeFactory(promotion=second, code="FIVE")
    # when a line is tried with the code
    page = staff.post(
        URL,
        {
            "client": ClientFactory(provider=provider).pk,
            "codes": "five",
            **lines({"tariff": tariff.pk, "period": 1, "kind": "new"}),
        },
    ).content.decode()
    # then both apply, named in their order, 10.00 then 5.00 off the 90.00 left
    assert "<td>15.00 USD</td>" in page and "<td>85.00 USD</td>" in page
    assert "<td>Ten + Five off</td><td>FIVE</td>" in page
    assert "<strong>Five off</strong>: combined with Ten: 5 off (5.00 USD)" in page
