"""promotion.quote, promotion.redeem and promotion.release: the engine through the func-style door."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from promotions.models import Discount, PromoCode, PromoCodeUsage, Redemption
from tests.factories import (
    ClientFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ServiceFactory,
    TariffFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("out", ["bjson", "xml"])]


@pytest.fixture
def shop(db):
    promotion = PromotionFactory()
    DiscountFactory(promotion=promotion, percentage=Decimal("25"))
    code = PromoCodeFactory(promotion=promotion, code="HALFOFF", uselimit=1)
    provider = promotion.provider
    return {
        "promotion": promotion,
        "code": code,
        "client": ClientFactory(provider=provider),
        "tariffs": TariffFactory.create_batch(2, provider=provider),
        "params": {"project": provider.pk, "currency": "USD, USD", "price": "100, 10.00"},
    }


def order_params(shop, **extra):
    return {
        **shop["params"],
        "account": shop["client"].pk,
        "pricelist": ", ".join(str(t.pk) for t in shop["tariffs"]),
        "period": "12, 1",
        **extra,
    }


def test_quote_lists_each_line_with_its_discount_and_verdicts(door, out, shop):
    # when two lines are quoted with the code
    answer = door("promotion.quote", out=out, **order_params(shop, promocode="halfoff"))
    # then each line is discounted 25% by the promotion, and the totals add up
    rows = answer["elem"]
    assert [(r["price"], r["discount"], r["final_price"]) for r in rows] == [
        ("100.00", "25.00", "75.00"),
        ("10.00", "2.50", "7.50"),
    ]
    assert all(
        r["promotion"] == str(shop["promotion"].pk) and r["promocode"] == "HALFOFF" for r in rows
    )
    assert (answer["total"], answer["discount_total"]) == ("82.50", "27.50")
    assert "applied" in rows[0]["verdicts"]


def test_quote_without_the_code_says_why_nothing_applied_when_asked(door, out, shop):
    # when quoted without the code, by default and with explain=on
    plain = door("promotion.quote", out=out, **order_params(shop))
    explained = door("promotion.quote", out=out, explain="on", **order_params(shop))
    # then nothing applies; the default answer is short, the explained one says why
    assert {r["discount"] for r in plain["elem"]} == {"0.00"}
    assert (plain["explained"], plain["elem"][0]["verdicts"]) == ("off", "")
    assert explained["explained"] == "on"
    assert "needs one of its promo codes" in explained["elem"][0]["verdicts"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"account": ""}, ("empty", "account")),
        ({"price": "100"}, ("value", "price")),
        ({"price": "abc, 1"}, ("value", "price")),
        ({"kind": "new, later"}, ("value", "kind")),
        ({"at": "yesterday"}, ("value", "at")),
        ({"pricelist": ""}, ("empty", "pricelist")),
    ],
)
def test_bad_orders_answer_protocol_errors(door, out, shop, change, error):
    answer = door("promotion.quote", out=out, **order_params(shop, **change))
    assert (answer["error"]["type"], answer["error"]["object"]) == error


def test_a_client_of_another_provider_is_named_as_account(door, out, shop):
    answer = door("promotion.quote", out=out, **order_params(shop, account=ClientFactory().pk))
    assert (answer["error"]["type"], answer["error"]["object"]) == ("value", "account")


def test_redeem_uses_the_code_once_per_key_and_release_frees_it(door, out, shop):
    params = order_params(shop, promocode="HALFOFF")
    # when redeemed twice with the same key
    first = door("promotion.redeem", out=out, idempotency_key="order-1", **params)
    again = door("promotion.redeem", out=out, idempotency_key="order-1", **params)
    # then one redemption, one use, and the repeat says so
    assert first["id"] == again["id"] and (first["repeated"], again["repeated"]) == ("off", "on")
    assert first["promocode"] == "HALFOFF" and first["discount_total"] == "27.50"
    assert PromoCode.objects.get(code="HALFOFF").use_count == 1
    # when another order tries the used-up code
    refused = door("promotion.redeem", out=out, idempotency_key="order-2", **params)
    assert refused["error"]["type"] == "limit" and "used up" in refused["error"]["msg"]
    # when the first order is released, the code is free again
    door("promotion.release", out=out, elid=first["id"])
    assert PromoCode.objects.get(code="HALFOFF").use_count == 0
    assert PromoCodeUsage.objects.get().status == "released"
    assert Redemption.objects.get().status == "released"


def test_redeem_needs_a_key(door, out, shop):
    answer = door("promotion.redeem", out=out, **order_params(shop))
    assert (answer["error"]["type"], answer["error"]["object"]) == ("empty", "idempotency_key")


def renewal_shop(shop):
    """A renewal discount lasting 3 months from the order, and a service ordered a month ago."""
    renewals = PromotionFactory(provider=shop["promotion"].provider)
    DiscountFactory(
        promotion=renewals,
        percentage=Decimal("40"),
        actiontype=Discount.ActionType.PROLONG,
        validity=Discount.Validity.MONTHS,
        validitylength=3,
    )
    service = ServiceFactory(
        client=shop["client"],
        tariff=shop["tariffs"][1],
        opened_at=timezone.now() - datetime.timedelta(days=30),
    )
    return renewals, service


def test_a_renewal_names_its_service_and_gets_a_discount_valid_months_from_the_order(
    door, out, shop
):
    # given a renewal discount valid 3 months from the order, and the client's month-old service
    renewals, service = renewal_shop(shop)
    params = order_params(shop, kind="new, renewal", explain="on")
    # when the second line renews that service, named in the `service` list (blank for line one)
    named = door("promotion.quote", out=out, service=f", {service.pk}", **params)
    # then the renewal gets the 40% discount
    assert (named["elem"][1]["promotion"], named["elem"][1]["discount"]) == (
        str(renewals.pk),
        "4.00",
    )
    # and without the service the verdict asks for it
    unnamed = door("promotion.quote", out=out, **params)
    assert unnamed["elem"][1]["discount"] == "0.00"
    assert "name the renewed service" in unnamed["elem"][1]["verdicts"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"service": "7"}, ("value", "service")),
        ({"service": "x, 7"}, ("value", "service")),
        ({"period": "², 1"}, ("value", "period")),
        ({"period": "0, 1"}, ("value", "period")),
        ({"promocode": ", ".join(f"C{n}" for n in range(11))}, ("value", "promocode")),
    ],
)
def test_order_rules_answer_value_errors_naming_the_parameter(door, out, shop, change, error):
    answer = door("promotion.quote", out=out, **order_params(shop, **change))
    assert (answer["error"]["type"], answer["error"]["object"]) == error


def test_an_order_of_more_than_500_lines_is_refused_as_rest_refuses_it(door, out, shop):
    # given an order of 501 lines
    tariff = shop["tariffs"][0].pk
    params = {
        **order_params(shop),
        "pricelist": ", ".join([str(tariff)] * 501),
        "period": ", ".join(["1"] * 501),
        "price": ", ".join(["1"] * 501),
        "currency": ", ".join(["USD"] * 501),
    }
    # when it is quoted or redeemed, then a value error names the lines
    for func in ("promotion.quote", "promotion.redeem"):
        answer = door(func, out=out, idempotency_key="big", **params)
        assert (answer["error"]["type"], answer["error"]["object"]) == ("value", "pricelist")
        assert "at most 500 lines" in answer["error"]["msg"]
    assert not Redemption.objects.exists()


def test_quote_names_each_stacked_promotions_part_and_what_budgets_have_left(door, out, shop):
    # given the 25% made combinable, and a combinable 5.00 off with a budget of 50.00 a day
    from common.actors import Actor
    from promotions import services

    actor = Actor.system("test")
    services.promotion_update(promotion=shop["promotion"], actor=actor, combine="combinable")
    budgeted = PromotionFactory(
        provider=shop["promotion"].provider,
        combine="combinable",
        budget=Decimal("50"),
        budget_period="day",
    )
    services.discount_create(
        promotion=budgeted, actor=actor, valuetype="amount", amount=Decimal("5")
    )
    # when the two lines are quoted with the code
    answer = door("promotion.quote", out=out, **order_params(shop, promocode="halfoff"))
    # then each line lists both parts in the order they applied (on 10.00 the 5.00 off is the
    # larger and goes first, the 25% takes 1.25 of the 5.00 left), and the budget says what the
    # order needs and what is left
    first, second = shop["promotion"].pk, budgeted.pk
    assert [r["applied"] for r in answer["elem"]] == [
        f"{first} 25.00, {second} 5.00",
        f"{second} 5.00, {first} 1.25",
    ]
    today = timezone.localdate().isoformat()
    assert answer["budgets"] == f"#{second} {today}: needs 10.00, 50.00 left"
