"""Brakes on brute force: failed sign-ins and unknown promo codes, per user or client and per
address, refused with a `limit` error (429 on REST) until the window ends."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from common.models import Attempt
from common.throttle import Throttled, brakes_check, throttle_check, throttle_fail, throttle_take
from tests.conftest import Door, run_in_threads
from tests.factories import (
    ClientFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    TariffFactory,
)

NOW = "2026-06-15 10:00:30+00:00"


@pytest.fixture
def tight(settings):
    settings.THROTTLE_AUTH_FAILURES, settings.THROTTLE_AUTH_SECONDS = 3, 60
    settings.THROTTLE_PROMOCODE_FAILURES, settings.THROTTLE_PROMOCODE_SECONDS = 3, 60
    return settings


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize("out", ["bjson", "xml"])
def test_wrong_passwords_lock_the_user_out_until_the_window_ends(client, operator, tight, out):
    # given three wrong passwords for the operator
    wrong = Door(client, authinfo="operator:nope")
    for _ in range(3):
        assert wrong("promotion", out=out)["error"]["type"] == "auth"
    # when the right password comes next, then it is refused with a limit error too
    right = Door(client)
    refused = right("promotion", out=out)["error"]
    assert refused["type"] == "limit" and "try again in 30 seconds" in refused["msg"]
    # and func=auth is braked the same way
    login = Door(client, authinfo=None)("auth", out=out, username="operator", password="secret")
    assert login["error"]["type"] == "limit"
    # when the window has passed, the right password works again
    with time_machine.travel("2026-06-15 10:01:01+00:00", tick=False):
        assert "error" not in right("promotion", out=out)


@pytest.fixture
def shop(db):
    promotion = PromotionFactory(fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    PromoCodeFactory(promotion=promotion, code="REAL")
    provider = promotion.provider
    return {
        "client": ClientFactory(provider=provider),
        "provider": provider,
        "tariff": TariffFactory(provider=provider),
    }


def quote_body(shop, *codes):
    return {
        "client": shop["client"].pk,
        "provider": shop["provider"].pk,
        "codes": list(codes),
        "lines": [{"tariff": shop["tariff"].pk, "period": 1, "price": "10", "currency": "USD"}],
    }


@time_machine.travel(NOW, tick=False)
def test_guessing_codes_is_braked_per_client_on_rest_and_on_the_func_door(
    client, operator, shop, tight
):
    api = APIClient()
    api.force_authenticate(operator)
    # given a client who tried three codes that do not exist (real ones do not count)
    assert api.post("/api/v1/quotes", quote_body(shop, "REAL"), format="json").status_code == 200
    for guess in ("AAAA", "BBBB", "CCCC"):
        assert api.post("/api/v1/quotes", quote_body(shop, guess), format="json").status_code == 200
    # when the client quotes with any code again, REST answers 429 with Retry-After
    braked = api.post("/api/v1/quotes", quote_body(shop, "REAL"), format="json")
    assert braked.status_code == 429 and braked["Retry-After"] == "30"
    redeemed = api.post(
        "/api/v1/redemptions",
        quote_body(shop, "REAL"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert redeemed.status_code == 429
    # and the func door answers a limit error
    answer = Door(client)(
        "promotion.quote",
        project=shop["provider"].pk,
        account=shop["client"].pk,
        pricelist=shop["tariff"].pk,
        period=1,
        price="10",
        currency="USD",
        promocode="REAL",
    )
    assert answer["error"]["type"] == "limit" and answer["error"]["object"] == "promocode"
    # while an order without codes still gets its quote
    assert api.post("/api/v1/quotes", quote_body(shop), format="json").status_code == 200


@pytest.mark.django_db
def test_failures_count_in_fixed_windows(settings):
    settings.THROTTLE_AUTH_FAILURES, settings.THROTTLE_AUTH_SECONDS = 2, 60
    at = datetime.datetime(2026, 6, 15, 10, 0, 59, tzinfo=datetime.UTC)
    throttle_fail(scope="auth", keys=["user:a"], count=2, at=at)
    with pytest.raises(Throttled) as braked:
        throttle_check(scope="auth", keys=["user:a", "ip:x"], at=at)
    assert braked.value.retry_after == 1
    throttle_check(scope="auth", keys=["user:a"], at=at + datetime.timedelta(seconds=1))
    throttle_check(scope="auth", keys=["user:b"], at=at)
    assert "user:a" not in str(list(Attempt.objects.values_list("key", flat=True)))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_failures_are_all_counted(settings):
    at = datetime.datetime(2026, 6, 15, 10, 0, 0, tzinfo=datetime.UTC)
    run_in_threads(lambda _: throttle_fail(scope="auth", keys=["user:z"], at=at), list(range(12)))
    assert Attempt.objects.get().failures == 12


@time_machine.travel(NOW, tick=False)
def test_one_order_cannot_carry_more_guesses_than_are_left(operator, shop, tight):
    api = APIClient()
    api.force_authenticate(operator)
    # given a budget of 3: an order with 4 unknown codes and a real one is refused whole
    guesses = quote_body(shop, "REAL", "G1", "G2", "G3", "G4")
    assert api.post("/api/v1/quotes", guesses, format="json").status_code == 429
    # and an order may not name more than 10 codes at all
    many = quote_body(shop, *(f"X{i}" for i in range(11)))
    refused = api.post("/api/v1/quotes", many, format="json")
    assert refused.status_code == 400 and "at most 10" in str(refused.json())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_attempts_get_exactly_the_budget(settings):
    # given a budget of 3 failures and 12 attempts at once from one address, all failing
    settings.THROTTLE_AUTH_FAILURES, settings.THROTTLE_AUTH_SECONDS = 3, 3600

    def attempt(_):
        try:
            throttle_take(scope="auth", keys=["ip:1.2.3.4"])
        except Throttled:
            return "refused"
        return "tried"

    outcomes = run_in_threads(attempt, list(range(12)))
    # then exactly 3 were let through to try a password, and the count says 3
    assert outcomes.count("tried") == 3
    assert Attempt.objects.get().failures == 3


@pytest.mark.django_db
@pytest.mark.parametrize("scope", ["promocode", "click", "auth_address"])
def test_an_address_key_counts_on_the_addresses_network_in_every_scope(settings, scope):
    at = datetime.datetime(2026, 6, 15, 10, 0, tzinfo=datetime.UTC)
    # given a scope's whole budget spent by one address of an IPv6 /64
    spent = {"promocode": 20, "click": 60, "auth_address": 30}[scope]
    throttle_fail(scope=scope, keys=["ip:2001:db8:5:6::1"], count=spent, at=at)
    # then every address of that /64 is refused, also written as IPv4-mapped or expanded
    for other in ["2001:db8:5:6:abcd::9", "2001:0db8:0005:0006:0000:0000:0000:0002"]:
        with pytest.raises(Throttled):
            throttle_check(scope=scope, keys=[f"ip:{other}"], at=at)
    # and the next /64 is not
    throttle_check(scope=scope, keys=["ip:2001:db8:5:7::1"], at=at)
    # an IPv4 address is itself, whether written plainly or IPv4-mapped
    throttle_fail(scope=scope, keys=["ip:192.0.2.1"], count=spent, at=at)
    with pytest.raises(Throttled):
        throttle_check(scope=scope, keys=["ip:::ffff:192.0.2.1"], at=at)
    throttle_check(scope=scope, keys=["ip:192.0.2.2"], at=at)


@pytest.mark.django_db
def test_one_check_of_two_scopes_refuses_with_the_first_scope_spent(settings):
    # given a key that spent the caller scope's budget, and one under the client scope's
    settings.THROTTLE_PROMOCODE_FAILURES = 3
    settings.THROTTLE_PROMOCODE_CALLER_FAILURES = 2
    at = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
    throttle_fail(scope="promocode", keys=["client:1"], count=2, at=at)
    throttle_fail(scope="promocode_caller", keys=["caller:1"], count=2, at=at)
    keys = (k for k in [("promocode", "client:1"), ("promocode_caller", "caller:1")])
    # when both are checked at once (the keys given as a generator)
    with pytest.raises(Throttled) as refused:
        brakes_check(keys=keys, at=at)
    # then the spent scope refuses; counted past it, the client's scope refuses first
    assert refused.value.scope == "promocode_caller"
    throttle_fail(scope="promocode", keys=["client:1"], count=1, at=at)
    with pytest.raises(Throttled) as refused:
        brakes_check(keys=[("promocode", "client:1"), ("promocode_caller", "caller:1")], at=at)
    assert refused.value.scope == "promocode"
    # and a check made after counting (`over`) lets the exact budget through
    brakes_check(
        keys=[("promocode", "client:1"), ("promocode_caller", "caller:1")], at=at, over=True
    )
