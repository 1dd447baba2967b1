"""Rules that cannot break a provider: ranges are checked when a rule is saved (12.12), a broken
rule stored around the services refuses itself with a reason while the others still apply, and a
rule may only name its own provider's tariffs and programs (12.19)."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from common.actors import Actor
from promotions import services
from promotions.engine.rules import rules_version_bump
from promotions.models import Condition, PromoCode, Promotion, Redemption
from tests.factories import (
    ClientFactory,
    ConditionFactory,
    CurrencyFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    ReferralProgramFactory,
    TariffFactory,
)

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


@pytest.fixture
def shop():
    provider = ProviderFactory()
    steady = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=steady, percentage=Decimal("10"))
    fragile = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=fragile, percentage=Decimal("30"))
    return {
        "provider": provider,
        "steady": steady,
        "fragile": fragile,
        "tariff": TariffFactory(provider=provider),
        "client": ClientFactory(provider=provider),
    }


def body(shop, *codes, explain=True) -> dict:
    return {
        "client": shop["client"].pk,
        "provider": shop["provider"].pk,
        "codes": list(codes),
        "explain": explain,
        "lines": [{"tariff": shop["tariff"].pk, "price": "100", "currency": "USD"}],
    }


@pytest.fixture
def api(operator) -> APIClient:
    client = APIClient()
    client.force_authenticate(operator)
    return client


# Ranges are checked when a rule is saved --------------------------------------------------------


@pytest.mark.parametrize(
    ("ctype", "fields"),
    [
        pytest.param("registration", {"periodtype": "year", "periodlength": 5000}, id="5000 years"),
        pytest.param(
            "registration", {"periodtype": "month", "periodlength": 1201}, id="1201 months"
        ),
        pytest.param(
            "expense_sum",
            {"periodtype": "day", "periodlength": 2_147_483_647, "summa": Decimal(1)},
            id="2**31-1 days",
        ),
    ],
)
def test_a_condition_period_beyond_a_hundred_years_is_refused(shop, ctype, fields):
    if "summa" in fields:
        fields["currency"] = CurrencyFactory()
    with pytest.raises(ValidationError) as exc:
        services.condition_create(promotion=shop["fragile"], actor=ACTOR, ctype=ctype, **fields)
    assert "periodlength" in exc.value.message_dict
    assert not Condition.objects.exists()


def test_a_century_is_the_longest_condition_period(shop):
    services.condition_create(
        promotion=shop["fragile"],
        actor=ACTOR,
        ctype="registration",
        periodtype="year",
        periodlength=100,
    )
    assert Condition.objects.count() == 1


def test_a_code_discount_period_beyond_a_hundred_years_is_refused(shop):
    with pytest.raises(ValidationError) as exc:
        services.promocode_create(
            promotion=shop["fragile"],
            actor=ACTOR,
            code="FOREVER",
            expiretype="period",
            periodtype="year",
            periodlength=5000,
        )
    assert "periodlength" in exc.value.message_dict
    assert not PromoCode.objects.exists()


@pytest.mark.parametrize("out", ["bjson", "xml"])
def test_the_func_door_answers_a_value_error_for_such_a_period(door, shop, out):
    answer = door(
        "promotion.condition.edit",
        out=out,
        sok="ok",
        plid=shop["fragile"].pk,
        ctype="registration",
        periodtype="year",
        periodlength="5000",
    )
    assert (answer["error"]["type"], answer["error"]["object"]) == ("value", "periodlength")


# A broken stored rule refuses itself; the others still apply -------------------------------------


def store_broken(promotion: Promotion, ctype: str, **fields) -> Condition:
    """A condition written straight into the database, past every validation."""
    condition = ConditionFactory(promotion=promotion, ctype="service_count", amount=0)
    Condition.objects.filter(pk=condition.pk).update(ctype=ctype, **fields)
    rules_version_bump(provider_id=promotion.provider_id)
    return condition


BROKEN = {
    "registration of 5000 years": (
        "registration",
        {"periodtype": "year", "periodlength": 5000, "amount": None},
    ),
    "expense_sum of 2**31-1 days": (
        "expense_sum",
        {"periodtype": "day", "periodlength": 2_147_483_647, "summa": Decimal(1)},
    ),
    "a type that does not exist": ("loyalty", {}),
    "a count that is missing": ("paid_services", {"amount": None}),
    "order periods that are not months": ("has_tariff", {"period": {"x": 1}}),
}


@pytest.mark.parametrize(("ctype", "fields"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_stored_condition_refuses_its_promotion_and_the_others_still_apply(
    api, shop, ctype, fields
):
    # given a 30% promotion whose condition was stored broken, beside a sound 10% one
    if ctype == "expense_sum":
        fields = {**fields, "currency_id": CurrencyFactory().pk}
    condition = store_broken(shop["fragile"], ctype, **fields)
    # when an order is quoted
    response = api.post("/api/v1/quotes", body(shop), format="json")
    # then the quote is answered: the sound promotion applies, the broken one says why not
    assert response.status_code == 200, response.content
    line = response.json()["lines"][0]
    assert (line["promotion"], line["discount"]) == (shop["steady"].pk, "10.00")
    reason = {v["promotion"]: v["reason"] for v in line["verdicts"]}[shop["fragile"].pk]
    assert f"condition {condition.pk}" in reason and "cannot be checked" in reason
    # and an order is still redeemed
    redeemed = api.post(
        "/api/v1/redemptions", body(shop), format="json", HTTP_IDEMPOTENCY_KEY="after"
    )
    assert redeemed.status_code == 201, redeemed.content


@pytest.mark.parametrize("out", ["bjson", "xml"])
def test_the_func_door_quotes_beside_a_broken_condition(door, shop, out):
    store_broken(shop["fragile"], "registration", periodtype="year", periodlength=5000)
    answer = door(
        "promotion.quote",
        out=out,
        account=shop["client"].pk,
        project=shop["provider"].pk,
        pricelist=shop["tariff"].pk,
        price="100",
        currency="USD",
    )
    assert answer["elem"][0]["promotion"] == str(shop["steady"].pk)


def test_a_code_stored_with_a_broken_discount_period_refuses_itself(api, shop):
    # given a code of the 30% promotion used once, then given a discount period of 5000 years
    code = PromoCodeFactory(promotion=shop["fragile"], code="AEON")
    first = api.post(
        "/api/v1/redemptions", body(shop, "AEON"), format="json", HTTP_IDEMPOTENCY_KEY="first"
    )
    assert first.status_code == 201, first.content
    PromoCode.objects.filter(pk=code.pk).update(
        expiretype="period", periodtype="year", periodlength=5000
    )
    rules_version_bump(provider_id=shop["provider"].pk)
    # when the client quotes with it again
    response = api.post("/api/v1/quotes", body(shop, "AEON"), format="json")
    # then the code is refused with the reason, and the sound promotion still applies
    assert response.status_code == 200, response.content
    data = response.json()
    assert not data["codes"][0]["valid"]
    assert "discount period is wrong" in data["codes"][0]["reason"]
    assert data["lines"][0]["promotion"] == shop["steady"].pk
    assert Redemption.objects.count() == 1


# A rule names only its own provider's things ---------------------------------------------------


def test_has_tariff_takes_only_a_tariff_of_the_promotions_provider(shop):
    with pytest.raises(ValidationError) as exc:
        services.condition_create(
            promotion=shop["fragile"],
            actor=ACTOR,
            ctype="has_tariff",
            pricelist=TariffFactory(),
            amount=1,
        )
    assert exc.value.message_dict == {"pricelist": ["The tariff belongs to another provider."]}


def test_affiliate_takes_only_a_program_of_the_promotions_provider(shop):
    with pytest.raises(ValidationError) as exc:
        services.condition_create(
            promotion=shop["fragile"],
            actor=ACTOR,
            ctype="affiliate",
            affiliate=ReferralProgramFactory(),
        )
    assert exc.value.message_dict == {
        "affiliate": ["The referral program belongs to another provider."]
    }
    own = ReferralProgramFactory(provider=shop["provider"])
    services.condition_create(
        promotion=shop["fragile"], actor=ACTOR, ctype="affiliate", affiliate=own
    )


def test_a_promotion_naming_its_providers_tariffs_cannot_move_to_another_provider(shop):
    # given a promotion with a discount on its provider's tariff
    services.discount_create(
        promotion=shop["fragile"],
        actor=ACTOR,
        percentage=Decimal("5"),
        type="pricelist",
        pricelist=[shop["tariff"]],
    )
    # when it is moved to another provider, then it is refused and stays
    with pytest.raises(ValidationError) as exc:
        services.promotion_update(
            promotion=shop["fragile"], actor=ACTOR, provider=ProviderFactory()
        )
    assert shop["tariff"].name in exc.value.message_dict["provider"][0]
    assert Promotion.objects.get(pk=shop["fragile"].pk).provider == shop["provider"]
    # while one without such rules moves
    moved = services.promotion_update(
        promotion=shop["steady"], actor=ACTOR, provider=ProviderFactory()
    )
    assert moved.provider != shop["provider"]


@pytest.mark.parametrize("out", ["bjson", "xml"])
def test_the_func_door_refuses_another_providers_tariff_in_a_condition(door, shop, out):
    answer = door(
        "promotion.condition.edit",
        out=out,
        sok="ok",
        plid=shop["fragile"].pk,
        ctype="has_tariff",
        pricelist=TariffFactory().pk,
        amount="1",
    )
    assert (answer["error"]["type"], answer["error"]["object"]) == ("value", "pricelist")
