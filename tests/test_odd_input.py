"""Odd input answers a protocol error on every door, never a 500: ids in other scripts' digits,
filters a column cannot hold, moments past the datetime range, lone surrogates, deep nesting,
bodies over the size limit."""

import json

import pytest
from rest_framework.test import APIClient

from promotions.models import Promotion
from tests.common.test_signin import DOORS
from tests.conftest import Door
from tests.digipay_api.conftest import ROUTE
from tests.factories import (
    ApiTokenFactory,
    ClientFactory,
    CompanyFactory,
    PromoCodeFactory,
    PromotionFactory,
    TariffFactory,
)

pytestmark = pytest.mark.django_db

DEEP = "[" * 50_000 + "]" * 50_000


@pytest.fixture
def shop(db):
    promotion = PromotionFactory()
    return {
        "promotion": promotion,
        "code": PromoCodeFactory(promotion=promotion),
        "client": ClientFactory(provider=promotion.provider),
        "tariff": TariffFactory(provider=promotion.provider),
    }


# The func door -----------------------------------------------------------------------------------


@pytest.mark.parametrize("digits", ["²", "١٢", "⁵"])
@pytest.mark.parametrize(
    ("func", "params"),
    [
        ("promotion.edit", {"elid": "{d}"}),
        ("promotion.delete", {"elid": "{d}"}),
        ("promotion.discount", {"elid": "{d}"}),
        ("promotion.discount.edit", {"plid": "{d}", "sok": "ok", "percentage": "5"}),
        ("promotion.edit", {"sok": "ok", "name": "X", "project": "{d}", "fromdate": "2026-01-01"}),
        ("promotion", {"id": "{d}"}),
        ("promotion", {"p_num": "{d}"}),
        (
            "promotion.quote",
            {"account": "1", "project": "1", "pricelist": "{d}", "price": "1", "currency": "USD"},
        ),
        ("currency.edit", {"sok": "ok", "name": "X", "iso": "XXX", "minor_units": "{d}"}),
    ],
)
def test_ids_in_other_digits_are_protocol_errors(door, shop, func, params, digits):
    filled = {k: v.replace("{d}", digits) for k, v in params.items()}
    response = door.raw(func, **filled)
    assert response.status_code == 200, response.content
    assert json.loads(response.content)["error"]["type"] in ("value", "missing")


@pytest.mark.parametrize(
    ("func", "param", "value"),
    [
        ("promotion.promocode.usage", "id", "abc"),
        ("promocode.usage", "id", "abc"),
        ("promotion.history", "ip", "abc"),
        ("promotion.history", "ip", "999.1.1.1"),
    ],
)
def test_a_filter_the_column_cannot_hold_is_a_value_error(door, shop, func, param, value):
    elid = shop["code"].pk if func == "promocode.usage" else shop["promotion"].pk
    answer = door(func, elid=elid, **{param: value})
    assert answer["error"]["type"] == "value" and answer["error"]["object"] == param


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-02", "9999-12-31"]
)
def test_a_moment_past_the_datetime_range_is_a_value_error_on_both_doors(door, operator, shop, at):
    answer = door(
        "promotion.quote",
        account=shop["client"].pk,
        project=shop["promotion"].provider_id,
        pricelist=shop["tariff"].pk,
        price="10",
        currency="USD",
        at=at,
    )
    assert (answer["error"]["type"], answer["error"]["object"]) == ("value", "at")
    api = APIClient()
    api.force_authenticate(operator)
    body = {
        "client": shop["client"].pk,
        "provider": shop["promotion"].provider_id,
        "at": at,
        "lines": [{"tariff": shop["tariff"].pk, "period": 1, "price": "10", "currency": "USD"}],
    }
    response = api.post("/api/v1/quotes", body, format="json")
    assert response.status_code == 400 and "at" in response.json()


@pytest.mark.parametrize("out", ["bjson", "xml"])
def test_deep_nesting_and_lone_surrogates_are_refused_before_sign_in(client, db, out):
    # anonymous: the body is read before anyone is identified
    for body, why in [
        (DEEP, "nested deeper"),
        ('{"func": "auth", "username": "\\ud800"}', "surrogate"),
    ]:
        response = client.post(f"/billmgr?out={out}", body, content_type="application/json")
        assert response.status_code == 200
        assert why in response.content.decode()


def test_a_lone_surrogate_saves_nothing(door, shop):
    body = {
        "func": "promotion.edit",
        "authinfo": "operator:secret",
        "sok": "ok",
        "name": "\ud800",
        "project": shop["promotion"].provider_id,
        "fromdate": "2026-01-01",
    }
    text = json.dumps(body)  # ensure_ascii: the surrogate travels as the escape \ud800
    response = door.client.post("/billmgr", text, content_type="application/json")
    assert response.json()["error"]["object"] == "body"
    assert Promotion.objects.count() == 1


@pytest.mark.parametrize("kind", ["json", "form"])
def test_a_body_over_the_size_limit_is_a_limit_error(client, db, kind):
    big = "a" * 3_000_000
    if kind == "json":
        response = client.post(
            "/billmgr?out=xml",
            json.dumps({"func": "promotion", "x": big}),
            content_type="application/json",
        )
    else:
        response = client.post("/billmgr?out=xml", {"func": "promotion", "x": big})
    assert response.status_code == 200
    assert b'<error type="limit" object="body">' in response.content


# REST and DigiPay ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/v1/quotes", "/api/v1/redemptions", "/api/v1/referrals/attach", "/api/v1/auth/token"],
)
@pytest.mark.parametrize("kind", ["deep", "surrogate"])
def test_rest_refuses_deep_nesting_and_lone_surrogates_with_400(operator, shop, path, kind):
    # given a valid order (or attachment, or sign-in) whose one text value is a lone surrogate
    order = {
        "client": shop["client"].pk,
        "provider": shop["promotion"].provider_id,
        "codes": ["\ud800"],
        "code": "\udfff",
        "username": "\ud800",
        "password": "x",
        "lines": [{"tariff": shop["tariff"].pk, "period": 1, "price": "10", "currency": "USD"}],
    }
    body = DEEP if kind == "deep" else json.dumps(order)
    api = APIClient()
    api.force_authenticate(operator)
    response = api.post(path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="odd-1")
    assert response.status_code == 400


@pytest.mark.parametrize("body", [DEEP, '{"referral_program_title": "\\ud800"}'])
def test_digipay_refuses_deep_nesting_and_lone_surrogates_in_its_envelope(client, db, body):
    company = CompanyFactory(name="Odd Pay")
    ApiTokenFactory(company=company, key="odd-key")
    response = client.post(
        ROUTE,
        body,
        content_type="application/json",
        headers={"Authorization": "Token odd-key", "CompanyID": company.public_id},
    )
    assert response.status_code == 400
    assert response.json()["success"] == 0


def test_anonymous_deep_nesting_on_rest_is_not_a_500(db):
    response = APIClient().post("/api/v1/auth/token", DEEP, content_type="application/json")
    assert response.status_code == 400


def test_the_func_door_reads_a_tiny_nested_body_still(door, shop):
    assert "elem" in Door(door.client)("promotion", method="json")


@pytest.mark.postgres
@pytest.mark.parametrize("door", ["admin", "basic", "token"])
def test_a_nul_in_a_user_name_is_a_wrong_sign_in_on_every_rest_door(client, operator, door):
    # PostgreSQL cannot hold NUL in text: a user name with one must not reach a query (on
    # /billmgr every parameter with a NUL is a `value` error before sign-in)
    outcome = DOORS[door](client, "oper\x00ator", "secret", "10.0.0.1")
    assert outcome == "wrong"
