"""The order contract every door shares: limits, code spelling and idempotency keys, in one place."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from common.actors import Actor
from common.models import Attempt
from promotions import services
from tests.factories import (
    ClientFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    TariffFactory,
)

NOW = datetime.datetime(2026, 6, 15, 10, 0, 30, tzinfo=datetime.UTC)


def line(**values) -> dict:
    return {"tariff": 1, "period": 12, "price": Decimal("10.00"), "currency": "usd", **values}


def build(lines=None, codes=(), **order):
    return services.order_build(
        client=order.get("client", 1),
        provider=order.get("provider", 1),
        lines=[line()] if lines is None else lines,
        codes=codes,
        at=order.get("at"),
    )


def refusal(**order) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as exc:
        build(**order)
    return exc.value.message_dict


def test_an_order_is_built_with_normalised_codes_and_upper_case_currencies():
    # when an order names codes in any case, with blanks, spaces and repeats
    order = build(
        lines=[line(kind="renewal", service=7)],
        codes=[" welcome20 ", "", "WELCOME20", "spring", "  "],
        at=NOW,
    )
    # then each code is named once, as stored, and the line keeps its renewed service
    assert order.codes == ("WELCOME20", "SPRING")
    assert (order.lines[0].currency, order.lines[0].kind, order.lines[0].service_id) == (
        "USD",
        "renewal",
        7,
    )
    assert order.at == NOW


@time_machine.travel(NOW, tick=False)
def test_an_order_without_a_moment_is_placed_now():
    assert build().at == NOW


@pytest.mark.parametrize(
    ("order", "errors"),
    [
        pytest.param({"lines": []}, {"lines": ["An order has at least one line."]}, id="no lines"),
        pytest.param(
            {"lines": [line()] * 501},
            {"lines": ["An order has at most 500 lines, not 501."]},
            id="501 lines",
        ),
        pytest.param(
            {"codes": [f"c{n}" for n in range(11)]},
            {"codes": ["An order carries at most 10 promo codes."]},
            id="11 codes",
        ),
        pytest.param(
            {"codes": ["X" * 101]},
            {"codes": ["A promo code has at most 100 characters."]},
            id="long code",
        ),
        pytest.param(
            {"lines": [line(), line(period=0, price=Decimal("-1"))]},
            {
                "lines.1.period": ["A period is 1 to 1200 months."],
                "lines.1.price": ["A price is zero or more."],
            },
            id="second line",
        ),
        pytest.param(
            {"lines": [line(period=1201)]},
            {"lines.0.period": ["A period is 1 to 1200 months."]},
            id="period 1201",
        ),
        pytest.param(
            {"lines": [line(price=Decimal("0.00001"))]},
            {"lines.0.price": ["A price has at most 16 digits before the point and 4 after it."]},
            id="fifth decimal",
        ),
        pytest.param(
            {"lines": [line(price=Decimal("NaN"))]},
            {"lines.0.price": ["A price is an amount like 10.00."]},
            id="NaN",
        ),
        pytest.param(
            {"lines": [line(kind="refund")]},
            {"lines.0.kind": ["kind is one of new, renewal, not 'refund'."]},
            id="kind",
        ),
        pytest.param(
            {"lines": [line(currency=" ")]},
            {"lines.0.currency": ["A currency is named by its ISO code, like USD."]},
            id="currency",
        ),
        pytest.param(
            {"lines": [line(service=0)]},
            {"lines.0.service": ["The renewed service is named by its id."]},
            id="service",
        ),
        pytest.param(
            {"client": 0, "provider": None},
            {
                "client": ["The client is named by its id."],
                "provider": ["The provider is named by its id."],
            },
            id="ids",
        ),
        pytest.param(
            {"at": datetime.datetime(2026, 6, 15, 10, 0)},
            {"at": ["The moment of the order carries its time zone."]},
            id="naive moment",
        ),
    ],
)
def test_orders_breaking_a_rule_are_refused_naming_each_field(order, errors):
    assert refusal(**order) == errors


def test_ten_codes_written_several_ways_are_ten_codes():
    # given ten codes, each also written in lower case
    codes = [f"C{n}" for n in range(10)] + [f"c{n}" for n in range(10)]
    # then the order carries ten codes and is accepted
    assert len(build(codes=codes).codes) == 10


@pytest.mark.parametrize(
    ("raw", "key"), [("k", "k"), ("  order-1  ", "order-1"), ("k" * 255, "k" * 255)]
)
def test_idempotency_keys_are_stored_without_surrounding_spaces(raw, key):
    assert services.idempotency_key_clean(raw) == key


@pytest.mark.parametrize(
    ("raw", "code"), [(None, "required"), ("  ", "required"), ("k" * 256, None)]
)
def test_a_missing_or_too_long_idempotency_key_is_refused(raw, code):
    with pytest.raises(ValidationError) as exc:
        services.idempotency_key_clean(raw)
    assert [e.code for e in exc.value.error_dict["idempotency_key"]] == [code]


# The guessing brake reads the codes as stored (12.21) ----------------------------------------


@pytest.fixture
def coded(db, settings):
    settings.THROTTLE_PROMOCODE_FAILURES, settings.THROTTLE_PROMOCODE_SECONDS = 1, 60
    promotion = PromotionFactory(fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=promotion, percentage=Decimal("20"))
    PromoCodeFactory(promotion=promotion, code="WELCOME20")
    provider = promotion.provider
    return {
        "client": ClientFactory(provider=provider),
        "provider": provider,
        "tariff": TariffFactory(provider=provider),
    }


@time_machine.travel(NOW, tick=False)
def test_a_valid_code_typed_in_lower_case_is_not_counted_as_a_guess(operator, coded):
    api = APIClient()
    api.force_authenticate(operator)
    body = {
        "client": coded["client"].pk,
        "provider": coded["provider"].pk,
        "codes": ["welcome20"],
        "lines": [{"tariff": coded["tariff"].pk, "price": "10", "currency": "USD"}],
    }
    # when the client quotes twice with its code typed in lower case (a budget of one guess)
    answers = [api.post("/api/v1/quotes", body, format="json") for _ in range(2)]
    # then both quotes get the code's discount and nothing is counted against client or address
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].json()["discount_total"] == "2.00"
    assert not Attempt.objects.filter(failures__gt=0).exists()


@time_machine.travel(NOW, tick=False)
def test_the_service_counts_only_unknown_codes_whatever_their_case(coded):
    # given an order with the real code in lower case and one unknown code
    order = services.order_build(
        client=coded["client"].pk,
        provider=coded["provider"].pk,
        lines=[{"tariff": coded["tariff"].pk, "price": Decimal(10), "currency": "USD"}],
        codes=["welcome20", "nosuch"],
    )
    # when it is quoted
    services.order_quote(order=order, actor=Actor(user=None, ip="10.1.1.1", action="test"))
    # then one failure is counted, for the unknown code, against the client and the address
    assert sorted(Attempt.objects.values_list("failures", flat=True)) == [1, 1]


@time_machine.travel(NOW, tick=False)
def test_one_clients_guesses_do_not_brake_the_other_clients_of_an_integration(
    operator, coded, settings
):
    # given an integration quoting for all its clients from one address, a budget of 3 unknown
    # codes per client, and a caller's budget of 5
    settings.THROTTLE_PROMOCODE_FAILURES = 3
    settings.THROTTLE_PROMOCODE_CALLER_FAILURES = 5
    api = APIClient(REMOTE_ADDR="10.0.0.1")
    api.force_authenticate(operator)
    other = ClientFactory(provider=coded["provider"])

    def quote(client, *codes):
        return api.post(
            "/api/v1/quotes",
            {
                "client": client.pk,
                "provider": coded["provider"].pk,
                "codes": list(codes),
                "lines": [{"tariff": coded["tariff"].pk, "price": "10", "currency": "USD"}],
            },
            format="json",
        )

    # when one client guesses three codes
    assert quote(coded["client"], "G1", "G2", "G3").status_code == 200
    # then that client is braked, and another client of the same integration is not
    assert quote(coded["client"], "WELCOME20").status_code == 429
    assert quote(other, "WELCOME20").status_code == 200
    # until the integration as a whole has named too many unknown codes
    assert quote(other, "G4", "G5").status_code == 200
    assert quote(other, "G6").status_code == 429
    assert quote(ClientFactory(provider=coded["provider"]), "WELCOME20").status_code == 429
