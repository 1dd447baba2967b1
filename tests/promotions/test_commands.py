"""Management commands: generate_promocodes and load_demo."""

import re
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import Client as BillingClient
from common.selectors import history_of
from promotions import codegen
from promotions.models import PromoCode, Promotion
from promotions.selectors import redemptions_per_day
from referrals.models import Partnership, Reward
from tests.factories import PromoCodeFactory, PromotionFactory

pytestmark = pytest.mark.django_db


def generate(*args, **options) -> str:
    out = StringIO()
    call_command("generate_promocodes", *args, no_progress=True, stdout=out, **options)
    return out.getvalue()


# generate_promocodes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "onlydigit", "count"),
    [("CLI-??????", False, 1500), ("pin-?????", True, 300), ("D-??", True, 100)],
)
def test_generate_promocodes_makes_count_unique_codes_of_the_template(template, onlydigit, count):
    # given a promotion
    promotion = PromotionFactory()
    # when the command generates codes for it
    out = generate(
        str(promotion.pk),
        template=template,
        count=count,
        onlydigit=onlydigit,
        uselimit=3,
        account_uselimit=1,
    )
    # then exactly `count` distinct codes of the template exist, with the limits given
    codes = list(promotion.promocodes.values_list("code", flat=True))
    assert len(codes) == len(set(codes)) == count
    pattern = codegen.template_regex(template.upper(), digits_only=onlydigit)
    assert all(re.search(pattern, c) for c in codes)
    assert set(promotion.promocodes.values_list("uselimit", "account_uselimit", "onlydigit")) == {
        (3, 1, onlydigit)
    }
    assert out.strip() == f"{count} promo codes generated for promotion {promotion.pk}"
    # and the run is in the promotion's history as the system's
    line = history_of(obj=promotion).get()
    assert (line.username, line.action) == ("system", "generate_promocodes")


def test_generate_promocodes_avoids_codes_that_exist(db):
    # given a template with 10 codes, 7 of them taken by another promotion
    for n in range(7):
        PromoCodeFactory(code=f"X-{n}")
    promotion = PromotionFactory()
    # when the 3 left are generated
    generate(str(promotion.pk), template="X-?", count=3, onlydigit=True)
    # then they are exactly the free ones
    assert set(promotion.promocodes.values_list("code", flat=True)) == {"X-7", "X-8", "X-9"}


@pytest.mark.parametrize(
    ("template", "count", "onlydigit", "message"),
    [
        ("NOPLACEHOLDER", 1, False, 'needs at least one "?"'),
        ("T-?", 11, True, "can make only 10 more codes"),
        ("T-?", 37, False, "can make only 36 more codes"),
        ("T-??", 0, False, "at least one code"),
        ("T" * 100 + "?", 1, False, "longer than a promo code may be"),
    ],
)
def test_generate_promocodes_refuses_a_bad_template_or_count(template, count, onlydigit, message):
    promotion = PromotionFactory()
    with pytest.raises(CommandError, match=re.escape(message)):
        generate(str(promotion.pk), template=template, count=count, onlydigit=onlydigit)
    assert not PromoCode.objects.exists()
    assert not history_of(obj=promotion).exists()


def test_generate_promocodes_refuses_an_unknown_promotion(db):
    with pytest.raises(CommandError, match="There is no promotion 4242"):
        generate("4242", template="A-????", count=1)
    assert not PromoCode.objects.exists()


# load_demo --------------------------------------------------------------------------------------


def counts() -> dict[str, int]:
    return {
        "promotions": Promotion.objects.count(),
        "clients": BillingClient.objects.count(),
        "codes": PromoCode.objects.count(),
        "users": get_user_model().objects.count(),
    }


def test_load_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("load_demo", stdout=StringIO())
    assert counts() == {"promotions": 0, "clients": 0, "codes": 0, "users": 0}


@time_machine.travel("2026-04-01 09:00:00+00:00", tick=False)
def test_load_demo_loads_once_and_the_operator_can_log_in(settings, client):
    settings.DEBUG = True
    # when the demo is loaded twice
    first_out = StringIO()
    call_command("load_demo", stdout=first_out)
    after_first = counts()
    second_out = StringIO()
    call_command("load_demo", stdout=second_out)
    # then the first run made the demo and the second made nothing new
    # (5 named clients, 60 shoppers who used Black Friday codes, 12 partners' friends; three
    # overlapping promotions with a code each)
    assert after_first == {"promotions": 6, "clients": 77, "codes": 325, "users": 1}
    assert counts() == after_first
    assert first_out.getvalue().startswith("Demo data loaded")
    assert second_out.getvalue().strip() == "Demo data is loaded already."
    # and the demo promotions are live, with their codes and history made through the services
    spring = Promotion.objects.get(name="Spring sale")
    assert {p.status for p in Promotion.objects.all()} == {"active"}
    spring_codes = list(spring.promocodes.exclude(code="SPRING-VIP").values_list("code", flat=True))
    assert len(set(spring_codes)) == 20
    assert all(
        re.search(codegen.template_regex("SPRING-??????", digits_only=False), c)
        for c in spring_codes
    )
    assert PromoCode.objects.filter(code="WELCOME20").exists()
    assert {h.action for h in history_of(obj=spring)} == {"load_demo"}
    # and the activity the admin's charts show: 60 codes used over the last 30 days, rewards
    friday = Promotion.objects.get(name="Black Friday")
    assert sum(n for _, n in redemptions_per_day(promotion=friday, days=30)) == 60
    assert len([n for _, n in redemptions_per_day(promotion=friday, days=30) if n]) > 10
    assert Reward.objects.exists() and Reward.objects.filter(payout__isnull=False).exists()
    assert Partnership.objects.count() == 3
    # and the operator admin/admin can log in to the admin
    assert client.login(username="admin", password="admin")
    assert client.get("/admin/promotions/promotion/").status_code == 200
