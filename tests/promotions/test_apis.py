"""The REST door /api/v1: quotes, redemptions, releases, lists, authentication and the schema."""

import base64
import datetime
import re
from decimal import Decimal
from types import SimpleNamespace

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from common.actors import Actor
from common.selectors import history_of
from promotions import services
from promotions.engine import Line, Order
from promotions.models import Condition, PromoCode, PromoCodeUsage, Redemption
from tests.factories import (
    ClientFactory,
    ConditionFactory,
    CurrencyFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    TariffFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 6, 15, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def api(operator) -> APIClient:
    client = APIClient()
    client.force_authenticate(operator)
    return client


@pytest.fixture
def shop(db) -> SimpleNamespace:
    """A provider billing in USD, a tariff, a client, and an open-ended promotion giving 10% off."""
    provider = ProviderFactory()
    promotion = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    return SimpleNamespace(
        provider=provider,
        tariff=TariffFactory(provider=provider),
        client=ClientFactory(provider=provider),
        promotion=promotion,
    )


def order_body(shop, *codes: str, price: str = "10.00", **line) -> dict:
    return {
        "client": shop.client.pk,
        "provider": shop.provider.pk,
        "codes": list(codes),
        "lines": [
            {"tariff": shop.tariff.pk, "period": 1, "price": price, "currency": "usd", **line}
        ],
    }


def redeem(api: APIClient, body: dict, key: str | None):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return api.post("/api/v1/redemptions", body, format="json", **headers)


def use_count(code: PromoCode) -> int:
    return PromoCode.objects.get(pk=code.pk).use_count


def redeemed(shop, code: str) -> Redemption:
    """A redemption made through the service, for the tests that release one."""
    order = Order(
        client_id=shop.client.pk,
        provider_id=shop.provider.pk,
        at=datetime.datetime.now(datetime.UTC),
        lines=(Line(tariff_id=shop.tariff.pk, period=1, price=Decimal(10), currency="USD"),),
        codes=(code,),
    )
    redemption, _ = services.redemption_redeem(
        order=order, idempotency_key=f"svc-{code}", actor=Actor.system("test")
    )
    return redemption


# Quotes -----------------------------------------------------------------------------------------


def test_quote_answers_each_line_with_every_promotions_verdict_and_the_totals(api, shop):
    # given the 10% promotion with a code, a 20% promotion for clients with a service (this one
    # has none), and an order of two lines
    PromoCodeFactory(promotion=shop.promotion, code="TEN")
    loyal = PromotionFactory(
        provider=shop.provider, fromdate=datetime.date(2020, 1, 1), todate=None
    )
    DiscountFactory(promotion=loyal, percentage=Decimal("20"))
    ConditionFactory(promotion=loyal, ctype=Condition.Type.SERVICE_COUNT, amount=1)
    body = order_body(shop, "ten", price="10")
    body["lines"].append(
        {"tariff": shop.tariff.pk, "period": 12, "price": "120", "currency": "USD"}
    )
    # when the operator asks for a quote
    response = api.post("/api/v1/quotes", body, format="json")
    # then each line names the winning promotion and code, and why the other did not apply
    assert response.status_code == 200
    refused = "condition not met: active services >= 1 fails: active services: 0"

    def line(period, price, discount, final):
        return {
            "tariff": shop.tariff.pk,
            "period": period,
            "kind": "new",
            "currency": "USD",
            "price": price,
            "discount": discount,
            "final_price": final,
            "promotion": shop.promotion.pk,
            "code": "TEN",
            "applied": [{"promotion": shop.promotion.pk, "code": "TEN", "discount": discount}],
            "verdicts": [
                {
                    "promotion": shop.promotion.pk,
                    "applied": True,
                    "reason": f"applied: 10% off ({discount})",
                },
                {"promotion": loyal.pk, "applied": False, "reason": refused},
            ],
        }

    assert response.json() == {
        "lines": [line(1, "10.00", "1.00", "9.00"), line(12, "120.00", "12.00", "108.00")],
        "codes": [
            {
                "code": "TEN",
                "valid": True,
                "promotion": shop.promotion.pk,
                "reason": "code TEN is valid",
            }
        ],
        "budgets": [],
        "total": "117.00",
        "discount_total": "13.00",
        "explained": False,
    }
    # and a quote uses nothing
    assert not Redemption.objects.exists()
    assert PromoCode.objects.get(code="TEN").use_count == 0


@pytest.mark.parametrize(
    ("iso", "minor_units", "price", "expected"),
    [
        pytest.param("USD", 2, "9.99", ("9.99", "1.25", "8.74"), id="cents"),
        pytest.param("USD", 2, "9.9951", ("10.00", "1.25", "8.75"), id="cents, price rounded"),
        pytest.param("JPY", 0, "999", ("999", "125", "874"), id="no minor unit"),
        pytest.param("JPY", 0, "998.5", ("999", "125", "874"), id="yen, price rounded"),
        pytest.param("KWD", 3, "9.9999", ("10.000", "1.250", "8.750"), id="three decimals"),
    ],
)
def test_quote_money_is_strings_rounded_to_the_currencys_minor_units(
    api, iso, minor_units, price, expected
):
    # given a 12.5% promotion of a provider billing in the currency
    currency = CurrencyFactory(iso=iso, name=iso, minor_units=minor_units)
    provider = ProviderFactory(currency=currency)
    promotion = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=promotion, percentage=Decimal("12.5"))
    tariff = TariffFactory(provider=provider)
    body = {
        "client": ClientFactory(provider=provider).pk,
        "provider": provider.pk,
        "lines": [{"tariff": tariff.pk, "period": 1, "price": price, "currency": iso}],
    }
    # when a line is quoted
    response = api.post("/api/v1/quotes", body, format="json")
    # then price, discount, final price and totals carry exactly the currency's minor units
    assert response.status_code == 200, response.content
    data = response.json()
    line = data["lines"][0]
    assert (line["price"], line["discount"], line["final_price"]) == expected
    assert (data["total"], data["discount_total"]) == (expected[2], expected[1])


def test_quote_without_any_promotion_answers_a_zero_discount_in_minor_units(api, shop):
    # given a provider none of whose promotions is live
    shop.promotion.archived = True
    shop.promotion.save()
    # when a line is quoted
    response = api.post("/api/v1/quotes", order_body(shop, price="7.5"), format="json")
    # then nothing is taken off, and the zero is written in cents like the rest
    line = response.json()["lines"][0]
    assert (line["price"], line["discount"], line["final_price"]) == ("7.50", "0.00", "7.50")
    assert (line["promotion"], line["code"], line["verdicts"]) == (None, None, [])
    assert response.json()["total"] == "7.50"


def test_an_order_in_two_currencies_is_answered_400(api, shop):
    # given an order with a line in dollars and a line in yen
    CurrencyFactory(iso="JPY", name="Yen", minor_units=0)
    body = order_body(shop)
    body["lines"].append(
        {"tariff": shop.tariff.pk, "period": 1, "price": "1000", "currency": "JPY"}
    )
    # when it is quoted
    response = api.post("/api/v1/quotes", body, format="json")
    # then it is refused: "total" cannot be one amount in two currencies
    assert response.status_code == 400, response.json()
    assert list(response.json()) == ["lines"]


def _without(field):
    def change(body, shop):
        del body[field]

    return change


def _set_line(**values):
    def change(body, shop):
        body["lines"][0].update(values)

    return change


def _foreign_tariff(body, shop):
    body["lines"][0]["tariff"] = TariffFactory().pk


def _missing_tariff(body, shop):
    body["lines"][0]["tariff"] = 999_999


def _foreign_client(body, shop):
    body["client"] = ClientFactory().pk


def _empty_lines(body, shop):
    body["lines"] = []


@pytest.mark.parametrize("url", ["/api/v1/quotes", "/api/v1/redemptions"])
@pytest.mark.parametrize(
    ("change", "errors"),
    [
        pytest.param(_without("lines"), {"lines": ["This field is required."]}, id="no lines"),
        pytest.param(_empty_lines, {"lines": ["An order has at least one line."]}, id="[]"),
        pytest.param(_without("client"), {"client": ["This field is required."]}, id="no client"),
        pytest.param(
            _set_line(price="-0.01"),
            {"lines": {"0": {"price": ["A price is zero or more."]}}},
            id="negative price",
        ),
        pytest.param(
            _set_line(kind="refund"),
            {"lines": {"0": {"kind": ["kind is one of new, renewal, not 'refund'."]}}},
            id="bad kind",
        ),
        pytest.param(
            _set_line(period=0),
            {"lines": {"0": {"period": ["A period is 1 to 1200 months."]}}},
            id="period 0",
        ),
        pytest.param(
            _set_line(service=0),
            {"lines": {"0": {"service": ["The renewed service is named by its id."]}}},
            id="service 0",
        ),
        pytest.param(
            lambda body, shop: body.update(lines=body["lines"] * 501),
            {"lines": ["An order has at most 500 lines, not 501."]},
            id="501 lines",
        ),
        pytest.param(
            lambda body, shop: body.update(codes=[f"C{n}" for n in range(11)]),
            {"codes": ["An order carries at most 10 promo codes."]},
            id="11 codes",
        ),
    ],
)
def test_malformed_orders_are_answered_400_with_the_fields_errors(api, shop, url, change, errors):
    # given an order with one thing wrong
    body = order_body(shop)
    change(body, shop)
    # when it is quoted or redeemed
    response = (
        redeem(api, body, "k")
        if url.endswith("redemptions")
        else api.post(url, body, format="json")
    )
    # then the answer is 400 naming the field, and nothing is redeemed
    assert response.status_code == 400
    assert response.json() == errors
    assert not Redemption.objects.exists()


@pytest.mark.parametrize("url", ["/api/v1/quotes", "/api/v1/redemptions"])
@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        pytest.param(
            _foreign_tariff,
            "lines",
            "Tariff {tariff} is not a tariff of provider {provider}.",
            id="tariff of another provider",
        ),
        pytest.param(
            _missing_tariff,
            "lines",
            "Tariff {tariff} is not a tariff of provider {provider}.",
            id="unknown tariff",
        ),
        pytest.param(
            _foreign_client,
            "client",
            "Client {client} is not a client of provider {provider}.",
            id="client of another provider",
        ),
        pytest.param(
            _set_line(currency="XXX"), "lines", "Unknown currency XXX.", id="unknown currency"
        ),
    ],
)
def test_orders_naming_what_the_provider_does_not_have_are_answered_400(
    api, shop, url, change, field, message
):
    # given an order naming another provider's tariff or client, or no such thing
    body = order_body(shop)
    change(body, shop)
    names = {"tariff": body["lines"][0]["tariff"], "client": body["client"]}
    # when it is quoted or redeemed
    response = (
        redeem(api, body, "k")
        if url.endswith("redemptions")
        else api.post(url, body, format="json")
    )
    # then the answer is 400 with the engine's message under the field
    assert response.status_code == 400
    assert response.json() == {field: [message.format(provider=shop.provider.pk, **names)]}
    assert not Redemption.objects.exists()


# Redemptions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"HTTP_IDEMPOTENCY_KEY": "   "}, {"HTTP_IDEMPOTENCY_KEY": "k" * 256}],
    ids=["missing", "blank", "too long"],
)
def test_redeeming_without_a_usable_idempotency_key_is_answered_400(api, shop, headers):
    # given a valid order with a code
    code = PromoCodeFactory(promotion=shop.promotion, code="KEYLESS")
    # when it is redeemed without a key, or with a blank or over-long one
    response = api.post(
        "/api/v1/redemptions", order_body(shop, "KEYLESS"), format="json", **headers
    )
    # then it is refused naming the header, and nothing is used
    assert response.status_code == 400
    assert list(response.json()) == ["Idempotency-Key"]
    assert not Redemption.objects.exists()
    assert use_count(code) == 0


def test_a_key_of_255_characters_is_accepted(api, shop):
    # given a code
    PromoCodeFactory(promotion=shop.promotion, code="LONGKEY")
    # when an order is redeemed under the longest key allowed, padded with spaces
    response = redeem(api, order_body(shop, "LONGKEY"), "  " + "k" * 255 + "  ")
    # then it is redeemed under the key without the spaces
    assert response.status_code == 201
    assert Redemption.objects.get().idempotency_key == "k" * 255


def test_redeeming_answers_201_with_the_redemption_then_200_with_the_same_on_retry(api, shop):
    # given a code
    code = PromoCodeFactory(promotion=shop.promotion, code="REDEEM", uselimit=3)
    body = order_body(shop, "redeem")
    # when an order is redeemed under a key
    first = redeem(api, body, "order-77")
    # then it is created: the quote's lines and the code's usage come back with its id
    assert first.status_code == 201
    data = first.json()
    stored = Redemption.objects.get()
    usage = PromoCodeUsage.objects.get()
    assert (data["id"], data["status"], data["idempotency_key"]) == (
        stored.pk,
        "active",
        "order-77",
    )
    assert [
        (ln["price"], ln["discount"], ln["final_price"], ln["code"]) for ln in data["lines"]
    ] == [("10.00", "1.00", "9.00", "REDEEM")]
    assert (data["total"], data["discount_total"]) == ("9.00", "1.00")
    assert data["usages"] == [
        {"id": usage.pk, "code": "REDEEM", "promotion": shop.promotion.pk, "status": "active"}
    ]
    assert use_count(code) == 1
    # when the same order comes again under the same key
    again = redeem(api, body, "order-77")
    # then the answer is 200 with the same body, and the code is not used again
    assert again.status_code == 200
    assert again.json() == data
    assert use_count(code) == 1
    assert Redemption.objects.count() == 1


def test_redeeming_records_the_api_user_in_history(api, shop, operator):
    # given a code
    PromoCodeFactory(promotion=shop.promotion, code="WHO")
    # when the operator redeems an order through the API
    response = redeem(api, order_body(shop, "WHO"), "k")
    # then the redemption's history names the operator and the door
    entry = history_of(obj=Redemption.objects.get(pk=response.json()["id"])).get()
    assert (entry.user, entry.action, entry.desc) == (
        operator,
        "api.redeem",
        "Order redeemed with WHO",
    )


def test_redeeming_an_exhausted_code_is_answered_409_with_the_reason(api, shop):
    # given a code used as often as it may be
    code = PromoCodeFactory(promotion=shop.promotion, code="SPENT", uselimit=2, use_count=2)
    # when an order is redeemed with it
    response = redeem(api, order_body(shop, "SPENT"), "k")
    # then the answer is a conflict with the engine's reason, and nothing is used
    assert response.status_code == 409
    assert response.json() == {"detail": "code SPENT has been used up (2 of 2)"}
    assert not Redemption.objects.exists()
    assert use_count(code) == 2


def test_reusing_a_key_for_another_order_is_answered_409(api, shop):
    # given an order redeemed under a key
    code = PromoCodeFactory(promotion=shop.promotion, code="ONCE")
    redeem(api, order_body(shop, "ONCE"), "k-1")
    # when another order (another price) comes under that key
    response = redeem(api, order_body(shop, "ONCE", price="11.00"), "k-1")
    # then it is a conflict naming the key, and the code is used once
    assert response.status_code == 409
    assert response.json() == {"detail": "Idempotency key 'k-1' was used for a different order."}
    assert use_count(code) == 1


def test_a_retry_with_the_price_written_differently_is_the_same_order(api, shop):
    # given an order redeemed with its price written "10.00"
    code = PromoCodeFactory(promotion=shop.promotion, code="SAME")
    first = redeem(api, order_body(shop, "SAME", price="10.00"), "k-1")
    # when it is retried with the price as "10" and the currency in upper case
    again = redeem(api, order_body(shop, "SAME", price="10", currency="USD"), "k-1")
    # then it is recognised as the same order
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert use_count(code) == 1


# Release ----------------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_release_answers_200_with_the_released_redemption(api, shop):
    # given a redemption of a code
    code = PromoCodeFactory(promotion=shop.promotion, code="BACK")
    redemption = redeemed(shop, "BACK")
    # when it is released through the API, twice
    first = api.post(f"/api/v1/redemptions/{redemption.pk}/release")
    again = api.post(f"/api/v1/redemptions/{redemption.pk}/release")
    # then both answers show it released with its usage, and the use went back once
    assert (first.status_code, again.status_code) == (200, 200)
    data = first.json()
    assert (data["id"], data["status"]) == (redemption.pk, "released")
    assert [u["status"] for u in data["usages"]] == ["released"]
    assert again.json() == data
    assert use_count(code) == 0
    stored = Redemption.objects.get()
    assert (stored.status, stored.released_at) == ("released", NOW)


def test_releasing_an_unknown_redemption_is_answered_404(api, shop):
    # given a redemption
    redemption = redeemed(shop, PromoCodeFactory(promotion=shop.promotion).code)
    # when a redemption that does not exist is released
    response = api.post(f"/api/v1/redemptions/{redemption.pk + 1}/release")
    # then the answer is 404 and the existing one stays active
    assert response.status_code == 404
    assert Redemption.objects.get().status == "active"


# Authentication and permissions -----------------------------------------------------------------


ENDPOINTS = ["quote", "redeem", "release", "promotions", "promocodes"]


def call(api: APIClient, endpoint: str, shop, **auth):
    """One request to an endpoint, with a body it would accept from the operator."""
    if endpoint == "quote":
        return api.post("/api/v1/quotes", order_body(shop), format="json", **auth)
    if endpoint == "redeem":
        return api.post(
            "/api/v1/redemptions",
            order_body(shop, "PERM"),
            format="json",
            HTTP_IDEMPOTENCY_KEY="perm-key",
            **auth,
        )
    if endpoint == "release":
        return api.post(f"/api/v1/redemptions/{shop.redemption.pk}/release", **auth)
    return api.get(f"/api/v1/{endpoint}", **auth)


SUCCESS = {"quote": 200, "redeem": 201, "release": 200, "promotions": 200, "promocodes": 200}


@pytest.fixture
def door(shop) -> SimpleNamespace:
    """The shop with a code to redeem and an active redemption to release."""
    PromoCodeFactory(promotion=shop.promotion, code="PERM")
    shop.redemption = redeemed(shop, PromoCodeFactory(promotion=shop.promotion, code="HELD").code)
    return shop


def nothing_changed(shop) -> bool:
    return (
        Redemption.objects.get().status == "active"
        and not Redemption.objects.filter(idempotency_key="perm-key").exists()
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_anonymous_requests_are_refused(door, endpoint):
    # when a request comes without credentials
    response = call(APIClient(), endpoint, door)
    # then it is refused as unauthenticated, and nothing changes
    assert response.status_code in (401, 403)
    assert nothing_changed(door)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_wrong_basic_credentials_are_refused_with_401(door, endpoint):
    # given a user
    UserFactory(username="clerk", is_superuser=True)
    # when a request comes with a wrong password
    response = call(APIClient(), endpoint, door, HTTP_AUTHORIZATION=basic("clerk", "wrong"))
    # then it is refused and nothing changes
    assert response.status_code == 401
    assert nothing_changed(door)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_http_basic_credentials_of_the_operator_work(door, operator, endpoint):
    # when the operator calls with HTTP Basic credentials
    response = call(APIClient(), endpoint, door, HTTP_AUTHORIZATION=basic("operator", "secret"))
    # then the request is served
    assert response.status_code == SUCCESS[endpoint], response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_token_obtained_with_username_and_password_authenticates(door, operator, endpoint):
    # given a token the operator obtained with its username and password
    response = APIClient().post(
        "/api/v1/auth/token", {"username": "operator", "password": "secret"}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    # when the operator calls with the token
    served = call(APIClient(), endpoint, door, HTTP_AUTHORIZATION=f"Token {token}")
    # then the request is served, and one with a made-up token is refused
    assert served.status_code == SUCCESS[endpoint], served.content
    made_up = call(APIClient(), endpoint, door, HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert made_up.status_code == 401


def test_no_token_is_given_for_a_wrong_password(operator):
    # when a token is asked for with a wrong password
    response = APIClient().post(
        "/api/v1/auth/token", {"username": "operator", "password": "guess"}, format="json"
    )
    # then the answer is 400 without a token
    assert response.status_code == 400
    assert "token" not in response.json()


def staff_with(*codenames: str):
    user = UserFactory(username="clerk", is_staff=True, is_superuser=False)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="promotions", codename__in=codenames)
    )
    assert user.user_permissions.count() == len(codenames)
    return user


@pytest.mark.parametrize(
    ("perms", "allowed"),
    [
        pytest.param((), set(), id="no permissions"),
        pytest.param(("view_promotion",), {"quote", "promotions"}, id="view_promotion"),
        pytest.param(("view_promocode",), {"promocodes"}, id="view_promocode"),
        pytest.param(("add_redemption",), {"redeem"}, id="add_redemption"),
        pytest.param(("change_redemption",), {"release"}, id="change_redemption"),
    ],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_staff_users_need_the_permission_of_each_endpoint(door, perms, allowed, endpoint):
    # given a staff user holding only some permissions
    staff_with(*perms)
    # when the user calls an endpoint with its own credentials
    response = call(APIClient(), endpoint, door, HTTP_AUTHORIZATION=basic("clerk", "secret"))
    # then it is served only with the endpoint's permission, and refused with 403 otherwise
    if endpoint in allowed:
        assert response.status_code == SUCCESS[endpoint], response.content
    else:
        assert response.status_code == 403
        assert nothing_changed(door)


# Lists ------------------------------------------------------------------------------------------


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


def test_promotions_are_listed_in_pages_by_limit_and_offset(api):
    # given five promotions
    made = PromotionFactory.create_batch(5)
    # when the second page of two is asked for
    response = api.get("/api/v1/promotions", {"limit": 2, "offset": 2})
    # then it holds the third and fourth, with the total count and links to both neighbours
    data = response.json()
    assert data["count"] == 5
    assert [row["id"] for row in data["results"]] == [made[2].pk, made[3].pk]
    assert "offset=4" in data["next"]
    assert "limit=2" in data["previous"]
    # and the last page has no next link
    assert api.get("/api/v1/promotions", {"limit": 2, "offset": 4}).json()["next"] is None


@time_machine.travel(NOW, tick=False)
def test_a_promotion_row_shows_its_fields_and_todays_status(api):
    # given a promotion that ended yesterday
    promotion = PromotionFactory(
        name="Spring", fromdate=datetime.date(2026, 3, 1), todate=datetime.date(2026, 6, 14)
    )
    # when promotions are listed
    row = api.get("/api/v1/promotions").json()["results"][0]
    # then its row shows its fields and that it has expired
    assert row == {
        "id": promotion.pk,
        "name": "Spring",
        "provider": promotion.provider_id,
        "fromdate": "2026-03-01",
        "todate": "2026-06-14",
        "archived": False,
        "status": "expired",
        "priority": 0,
        "combine": "exclusive",
        "budget": None,
        "budget_period": "total",
        "client_budget": None,
    }


@pytest.fixture
def season(db) -> SimpleNamespace:
    """Promotions of two providers around NOW (2026-06-15), in every status."""
    with time_machine.travel(NOW, tick=False):
        north, south = ProviderFactory(), ProviderFactory()

        def make(name, provider, fromdate, todate, archived=False):
            PromotionFactory(
                name=name, provider=provider, fromdate=fromdate, todate=todate, archived=archived
            )

        d = datetime.date
        make("Spring sale", north, d(2026, 3, 1), d(2026, 5, 31))
        make("Summer sale", north, d(2026, 6, 1), d(2026, 8, 31))
        make("Ends today", north, d(2026, 6, 1), d(2026, 6, 15))
        make("Old summer", north, d(2025, 6, 1), d(2025, 8, 31), archived=True)
        make("Autumn sale", south, d(2026, 9, 1), None)
        make("Forever", south, d(2026, 1, 1), None)
        make("Ended yesterday", south, d(2026, 6, 1), d(2026, 6, 14))
    return SimpleNamespace(north=north, south=south)


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            {"status": "active"}, ["Summer sale", "Ends today", "Forever"], id="status active"
        ),
        pytest.param(
            {"status": "expired"}, ["Spring sale", "Ended yesterday"], id="status expired"
        ),
        pytest.param({"status": "planned"}, ["Autumn sale"], id="status planned"),
        pytest.param({"status": "archived"}, ["Old summer"], id="status archived"),
        pytest.param({"name": "SALE"}, ["Spring sale", "Summer sale", "Autumn sale"], id="name"),
        pytest.param({"name": "summer", "status": "active"}, ["Summer sale"], id="name and status"),
        pytest.param(
            {"provider": "south"}, ["Autumn sale", "Forever", "Ended yesterday"], id="provider"
        ),
        pytest.param(
            {"provider": "north", "status": "expired"}, ["Spring sale"], id="provider and status"
        ),
    ],
)
def test_promotions_are_filtered_by_provider_status_and_name(api, season, query, expected):
    # given promotions of two providers in every status
    if "provider" in query:
        query = {**query, "provider": getattr(season, query["provider"]).pk}
    # when they are listed with filters
    response = api.get("/api/v1/promotions", query)
    # then only the matching ones come, in id order, counted
    assert names(response) == expected
    assert response.json()["count"] == len(expected)


def test_an_unknown_status_filter_is_answered_400(api, season):
    # when promotions are listed by a status that does not exist
    response = api.get("/api/v1/promotions", {"status": "sleeping"})
    # then the filter is refused by name rather than ignored
    assert response.status_code == 400
    assert list(response.json()) == ["status"]


@pytest.fixture
def codes(db) -> SimpleNamespace:
    """Codes of two promotions: used up, with uses left, and without a limit."""
    spring, summer = PromotionFactory(), PromotionFactory()
    for promotion, code, uselimit, used in [
        (spring, "SPRING-1", 1, 1),
        (spring, "SPRING-2", 5, 2),
        (spring, "SPR-FREE", None, 40),
        (summer, "SUMMER-1", 3, 3),
        (summer, "SUMMER-2", None, 0),
        (summer, "XSPRING", 2, 0),
    ]:
        PromoCodeFactory(promotion=promotion, code=code, uselimit=uselimit, use_count=used)
    return SimpleNamespace(spring=spring, summer=summer)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({"promotion": "spring"}, ["SPRING-1", "SPRING-2", "SPR-FREE"], id="promotion"),
        pytest.param({"code": "spring"}, ["SPRING-1", "SPRING-2"], id="code prefix"),
        pytest.param({"code": "SPR"}, ["SPRING-1", "SPRING-2", "SPR-FREE"], id="short prefix"),
        pytest.param({"exhausted": "true"}, ["SPRING-1", "SUMMER-1"], id="exhausted"),
        pytest.param(
            {"exhausted": "false"},
            ["SPRING-2", "SPR-FREE", "SUMMER-2", "XSPRING"],
            id="not exhausted, unlimited included",
        ),
        pytest.param(
            {"promotion": "summer", "exhausted": "false"},
            ["SUMMER-2", "XSPRING"],
            id="promotion and not exhausted",
        ),
    ],
)
def test_promo_codes_are_filtered_by_promotion_prefix_and_exhaustion(api, codes, query, expected):
    # given codes of two promotions, some used up
    if "promotion" in query:
        query = {**query, "promotion": getattr(codes, query["promotion"]).pk}
    # when they are listed with filters
    response = api.get("/api/v1/promocodes", query)
    # then only the matching codes come, in id order
    assert response.status_code == 200
    assert [row["code"] for row in response.json()["results"]] == expected
    assert response.json()["count"] == len(expected)


def test_promo_codes_are_listed_in_pages_with_their_counters(api, codes):
    # given six codes
    # when the first page of four is asked for
    data = api.get("/api/v1/promocodes", {"limit": 4}).json()
    # then four rows come of six, each with its limits and uses
    assert data["count"] == 6
    assert data["previous"] is None
    assert "offset=4" in data["next"]
    first = data["results"][0]
    assert (first["code"], first["promotion"], first["uselimit"], first["use_count"]) == (
        "SPRING-1",
        codes.spring.pk,
        1,
        1,
    )
    assert [row["code"] for row in data["results"]] == [
        "SPRING-1",
        "SPRING-2",
        "SPR-FREE",
        "SUMMER-1",
    ]


# Schema -----------------------------------------------------------------------------------------


def test_the_openapi_schema_documents_the_endpoints(db):
    # when the schema is fetched, without credentials
    response = APIClient().get("/api/schema/")
    # then it is served and documents the quote and redemption endpoints
    assert response.status_code == 200
    body = response.content.decode()
    for path in ("/api/v1/quotes", "/api/v1/redemptions", "/api/v1/promocodes"):
        assert f"{path}:" in body
    assert "Idempotency-Key" in body


@pytest.mark.parametrize(
    ("path", "asset"),
    [
        ("/api/docs/", "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"),
        ("/api/redoc/", "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"),
    ],
)
def test_the_api_docs_pages_load_their_assets_from_this_server(db, path, asset):
    # when a docs page is fetched
    response = APIClient().get(path)
    # then it is served and its scripts come from the sidecar's static files, never a CDN
    assert response.status_code == 200
    body = response.content.decode()
    assert asset in body
    assert not re.search(r"""(src|href)=["']https?://""", body)


def test_the_site_root_sends_to_the_admin(db):
    response = APIClient().get("/")
    assert (response.status_code, response["Location"]) == (302, "/admin/")


def test_explain_asks_for_every_promotions_verdict(api, shop):
    # given the 10% promotion and a 5% one that loses
    small = PromotionFactory(
        provider=shop.provider, fromdate=datetime.date(2020, 1, 1), todate=None
    )
    DiscountFactory(promotion=small, percentage=Decimal("5"))
    third = PromotionFactory(
        provider=shop.provider, fromdate=datetime.date(2020, 1, 1), todate=None
    )
    DiscountFactory(promotion=third, percentage=Decimal("1"))
    # when quoted by default and with explain
    plain = api.post("/api/v1/quotes", order_body(shop), format="json").json()
    full = api.post("/api/v1/quotes", {**order_body(shop), "explain": True}, format="json").json()
    # then the default names the winner and the runner-up, the explained answer everyone
    assert [v["promotion"] for v in plain["lines"][0]["verdicts"]] == [shop.promotion.pk, small.pk]
    assert [v["promotion"] for v in full["lines"][0]["verdicts"]] == [
        shop.promotion.pk,
        small.pk,
        third.pk,
    ]
    assert (plain["explained"], full["explained"]) == (False, True)


def test_the_openapi_schema_documents_explain_and_the_renewed_service(db):
    schema = APIClient().get("/api/schema/?format=json").json()
    quote = schema["components"]["schemas"]["QuoteInput"]["properties"]
    assert (
        quote["explain"]["type"] == "boolean"
        and "Every live promotion" in quote["explain"]["description"]
    )
    line = schema["components"]["schemas"]["LineInput"]["properties"]
    assert "renewed service" in line["service"]["description"]


def test_idempotency_keys_are_each_callers_own_per_provider(api, shop, operator):
    # given operator A's redemption under key order-1001
    PromoCodeFactory(promotion=shop.promotion, code="SHARED", uselimit=10)
    first = redeem(api, order_body(shop, "SHARED"), "order-1001")
    assert first.status_code == 201
    # when operator B sends the same key for the same order
    other = UserFactory(username="b", is_superuser=True)
    api_b = APIClient()
    api_b.force_authenticate(other)
    second = redeem(api_b, order_body(shop, "SHARED"), "order-1001")
    # then B's order is redeemed as B's own, not answered with A's redemption
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]
    # when A uses the same key at another provider, that is another order too
    elsewhere = ProviderFactory()
    promotion = PromotionFactory(
        provider=elsewhere, fromdate=datetime.date(2020, 1, 1), todate=None
    )
    DiscountFactory(promotion=promotion)
    body = {
        "client": ClientFactory(provider=elsewhere).pk,
        "provider": elsewhere.pk,
        "lines": [
            {"tariff": TariffFactory(provider=elsewhere).pk, "price": "10", "currency": "USD"}
        ],
    }
    assert redeem(api, body, "order-1001").status_code == 201
    # and A's retry under the key is still answered with A's first redemption
    again = redeem(api, order_body(shop, "SHARED"), "order-1001")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert Redemption.objects.count() == 3


# Overlapping promotions, value types and budgets (issue 16) -------------------------------------


@pytest.mark.parametrize(
    "valuetype, value, discounted",
    [("percent", "25", "25.00"), ("amount", "30", "30.00"), ("price", "60", "40.00")],
)
def test_each_value_type_is_quoted_through_rest(api, shop, valuetype, value, discounted):
    # given only a discount of the value type
    shop.promotion.discounts.all().delete()
    services.discount_create(
        promotion=shop.promotion,
        actor=Actor.system("test"),
        valuetype=valuetype,
        **(
            {"percentage": Decimal(value)} if valuetype == "percent" else {"amount": Decimal(value)}
        ),
    )
    # when a line of 100.00 is quoted
    response = api.post("/api/v1/quotes", order_body(shop, price="100.00"), format="json")
    # then the discount is what the type says, with its part in `applied`
    line = response.json()["lines"][0]
    assert response.status_code == 200
    assert line["discount"] == discounted
    assert line["applied"] == [
        {"promotion": shop.promotion.pk, "code": None, "discount": discounted}
    ]
    assert line["verdicts"][0]["reason"].startswith("applied: ")


def test_combinable_promotions_stack_through_rest_and_the_list_shows_the_fields(api, shop):
    # given the shop's 10% made combinable at priority 1, and a combinable 20% below it
    services.promotion_update(
        promotion=shop.promotion, actor=Actor.system("t"), priority=1, combine="combinable"
    )
    second = PromotionFactory(
        provider=shop.provider,
        fromdate=datetime.date(2020, 1, 1),
        todate=None,
        combine="combinable",
        budget=Decimal("500"),
        budget_period="month",
    )
    DiscountFactory(promotion=second, percentage=Decimal("20"))
    # when quoted
    response = api.post("/api/v1/quotes", order_body(shop, price="100.00"), format="json")
    body = response.json()
    # then both apply, the second on the price the first left, and its budget is shown unreserved
    assert [(a["promotion"], a["discount"]) for a in body["lines"][0]["applied"]] == [
        (shop.promotion.pk, "10.00"),
        (second.pk, "18.00"),
    ]
    assert body["budgets"] == [
        {
            "promotion": second.pk,
            "period": timezone.localdate().strftime("%Y-%m"),
            "needs": "18.00",
            "left": "500.00",
            "client_left": None,
        }
    ]
    listed = {p["id"]: p for p in api.get("/api/v1/promotions").json()["results"]}
    assert (listed[second.pk]["combine"], listed[second.pk]["budget"]) == ("combinable", "500.0000")
    assert listed[shop.promotion.pk]["priority"] == 1
