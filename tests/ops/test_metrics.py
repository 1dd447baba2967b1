"""/metrics: Prometheus text for operators, behind a token or an allowed network."""

import datetime
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from ops.metrics import REGISTRY
from tests.factories import (
    ClientFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    TariffFactory,
)

pytestmark = pytest.mark.django_db


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(response) -> dict[tuple[str, tuple], float]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


@pytest.fixture
def shop(operator):
    provider = ProviderFactory()
    promotion = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    PromoCodeFactory(promotion=promotion, code="ONCE", uselimit=1)
    api = APIClient()
    api.force_authenticate(operator)
    tariff = TariffFactory(provider=provider)

    def order(client, *codes):
        line = {"tariff": tariff.pk, "period": 1, "price": "10.00", "currency": "usd"}
        return {"client": client.pk, "provider": provider.pk, "codes": list(codes), "lines": [line]}

    return api, provider, order


def test_only_allowed_networks_or_the_token_read_the_metrics(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_NETWORKS = ["10.1.0.0/16"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    bearer = {"REMOTE_ADDR": "203.0.113.9", "HTTP_AUTHORIZATION": "Bearer s3cret-token"}
    assert client.get("/metrics", **bearer).status_code == 200
    wrong = {**bearer, "HTTP_AUTHORIZATION": "Bearer guess"}
    assert client.get("/metrics", **wrong).status_code == 403
    # a header in another script is a wrong token too, not an error
    odd = {**bearer, "HTTP_AUTHORIZATION": "Bearer s3cret-tökén"}
    assert client.get("/metrics", **odd).status_code == 403


def test_quotes_and_redemptions_are_counted_by_door_and_outcome_and_timed(shop, door):
    api, provider, order = shop
    first, second = ClientFactory(provider=provider), ClientFactory(provider=provider)
    before = {
        "quote_ok": sample("promo_quotes_total", door="rest", outcome="ok"),
        "quote_empty": sample("promo_quotes_total", door="billmgr", outcome="empty"),
        "redeemed": sample(
            "promo_redemptions_total", door="rest", operation="redeem", outcome="ok"
        ),
        "used_up": sample(
            "promo_redemptions_total", door="rest", operation="redeem", outcome="conflict"
        ),
        "timed": sample("promo_redemption_seconds_count", door="rest", operation="redeem"),
    }
    # when a quote goes through each door, one with a bad line, and a one-use code is redeemed twice
    assert api.post("/api/v1/quotes", order(first), format="json").status_code == 200
    door.raw("promotion.quote", account=first.pk)
    redeem = {"format": "json"}
    assert (
        api.post("/api/v1/redemptions", order(first, "ONCE"), HTTP_IDEMPOTENCY_KEY="a", **redeem)
    ).status_code == 201
    assert (
        api.post("/api/v1/redemptions", order(second, "ONCE"), HTTP_IDEMPOTENCY_KEY="b", **redeem)
    ).status_code == 409
    # then each is counted under its door and outcome, and the redemptions were timed
    assert sample("promo_quotes_total", door="rest", outcome="ok") == before["quote_ok"] + 1
    assert (
        sample("promo_quotes_total", door="billmgr", outcome="empty") == before["quote_empty"] + 1
    )
    assert sample("promo_redemptions_total", door="rest", operation="redeem", outcome="ok") == (
        before["redeemed"] + 1
    )
    assert sample(
        "promo_redemptions_total", door="rest", operation="redeem", outcome="conflict"
    ) == (before["used_up"] + 1)
    assert (
        sample("promo_redemption_seconds_count", door="rest", operation="redeem")
        == before["timed"] + 2
    )


@pytest.mark.parametrize("out", ["bjson", "json", "sjson", "xml"])
@pytest.mark.parametrize("method", ["get", "post", "json"])
def test_a_func_door_error_is_counted_with_its_protocol_type(door, out, method):
    before = sample("promo_quotes_total", door="billmgr", outcome="empty")
    # a quote without its order lines is an `empty` error, in every format and every request form
    door.raw("promotion.quote", out=out, method=method, account=1)
    assert sample("promo_quotes_total", door="billmgr", outcome="empty") == before + 1


def test_every_brake_refusal_is_counted_by_door_and_brake(client, settings, operator, shop):
    import base64

    from tests.digipay_api.conftest import DigiPay

    # given one wrong password per (name, address) and one unknown promo code per client allowed
    settings.THROTTLE_AUTH_FAILURES, settings.THROTTLE_AUTH_ADDRESS_FAILURES = 1, 100
    settings.THROTTLE_PROMOCODE_FAILURES = 1
    brakes = [
        ("admin", "auth"),
        ("rest", "auth"),
        ("digipay", "auth_address"),
        ("rest", "promocode"),
    ]

    def counted() -> dict:
        return {b: sample("promo_brake_refusals_total", door=b[0], scope=b[1]) for b in brakes}

    before = counted()
    # when the admin login is guessed at three times from one address
    for _ in range(3):
        client.post("/admin/login/", {"username": "operator", "password": "guess"},
                    REMOTE_ADDR="203.0.113.1")  # fmt: skip
    # and HTTP Basic on a GET of the REST door, from another
    basic = "Basic " + base64.b64encode(b"operator:guess").decode()
    for _ in range(3):
        client.get("/api/v1/promotions", HTTP_AUTHORIZATION=basic, REMOTE_ADDR="203.0.113.2")
    # and DigiPay tokens, from a third address allowed one wrong token
    settings.THROTTLE_AUTH_ADDRESS_FAILURES = 1
    guesser = DigiPay(client, "guess", "no-company")
    for _ in range(3):
        guesser.list()
    # and unknown promo codes in quotes
    api, provider, order = shop
    guessing = ClientFactory(provider=provider)
    for n in range(3):
        api.post("/api/v1/quotes", order(guessing, f"GUESS{n}"), format="json")
    # then each refusal was counted once, under its door and its brake
    after = counted()
    assert {b: after[b] - before[b] for b in brakes} == dict.fromkeys(brakes, 2)


def test_the_database_figures_are_in_the_scrape(client, shop, settings):
    from common.actors import Actor
    from common.jobs import job_start
    from promotions.jobs import GENERATE_CODES

    settings.METRICS_DATABASE_SECONDS = 0
    job_start(kind=GENERATE_CODES, params={}, total=5, actor=Actor.system("test"))
    figures = scraped(client.get("/metrics"))
    assert figures[("promo_codes", ())] == 1
    assert figures[("promo_task_queue_depth", (("queue", "default"),))] == 0  # not committed yet
    assert figures[("promo_jobs", (("kind", GENERATE_CODES), ("status", "queued")))] == 1
    assert not [name for name, _ in figures if name.startswith("promo_rewards")]  # no ledger yet


def test_budget_spent_is_in_the_scrape_and_a_release_gives_it_back(client, shop, settings):
    # given a promotion with a budget of 100.00 and two orders redeemed against it
    api, provider, order = shop
    settings.METRICS_DATABASE_SECONDS = 0
    budgeted = PromotionFactory(
        provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None, budget=Decimal("100")
    )
    DiscountFactory(promotion=budgeted, percentage=Decimal("50"))
    redeemed = []
    for n in range(2):
        answer = api.post(
            "/api/v1/redemptions",
            order(ClientFactory(provider=provider)),
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"budget-{n}",
        )
        assert answer.status_code == 201, answer.content
        redeemed.append(answer.json()["id"])
    spent = ("promo_budget_spent", (("currency", provider.currency.iso),))
    # then the scrape shows what the budget gave: 5.00 for each 10.00 order
    assert scraped(client.get("/metrics"))[spent] == 10.0
    # when one redemption is released, then its discount is given back
    assert api.post(f"/api/v1/redemptions/{redeemed[0]}/release").status_code == 200
    assert scraped(client.get("/metrics"))[spent] == 5.0
