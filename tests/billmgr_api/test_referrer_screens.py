"""BILLmanager 6's referrer screens on the func door (program as `elid`, `partner` for one
referrer): referrers, their referrals and their rewards, in bjson, sjson and xml as clients parse
them."""

import datetime
from decimal import Decimal

import pytest
import time_machine

from common.actors import Actor
from referrals import services
from referrals.accrual import rewards_accrue
from referrals.models import Payout
from tests.factories import (
    ClientFactory,
    CurrencyFactory,
    ExpenseFactory,
    ReferralFactory,
    ReferralProgramFactory,
    RuleFactory,
    ServiceFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("out", ["bjson", "sjson", "xml"])]
ACTOR = Actor.system("test")


def at(month: int, day: int, hour: int = 12) -> datetime.datetime:
    return datetime.datetime(2026, month, day, hour, tzinfo=datetime.UTC)


@pytest.fixture
def screens():
    """Paula brings Ann by her code and Bob by her link; two rules pay Ann's USD charges; Ann
    also pays in EUR; Paula is paid once in March. Rewards accrue on 1 and 2 April."""
    program = ReferralProgramFactory(
        name="Friends",
        promocode="FRIEND@ID@",
        url="https://example.com/join",
        start_date=datetime.date(2026, 1, 1),
    )
    paula = ClientFactory(name="Paula", provider=program.provider)
    ann = ClientFactory(name="Ann", email="ann@example.com", provider=program.provider)
    bob = ClientFactory(name="Bob", email="", provider=program.provider)
    ten = RuleFactory(program=program, name="ten", amount=Decimal("10"))
    bonus = RuleFactory(program=program, name="bonus", reward_type="fixed", amount=Decimal("1"))
    services.referral_attach_by_code(
        client=ann, code=f"friend{paula.pk}", actor=ACTOR, at=at(1, 10)
    )
    services.referral_attach(
        client=bob,
        partner_id=paula.pk,
        program=program,
        source="link",
        actor=ACTOR,
        at=at(1, 11),
        via=f"https://example.com/join?from={paula.pk}",
    )
    eur = CurrencyFactory(iso="EUR", name="Euro")
    ServiceFactory(client=bob)  # a service, no charge: no purchase yet
    ExpenseFactory(client=ann, amount=Decimal("50.00"), created_at=at(2, 1))
    ExpenseFactory(client=ann, amount=Decimal("20.00"), currency=eur, created_at=at(2, 3))
    with time_machine.travel(at(4, 1, 9), tick=False):
        rewards_accrue(program=program)
        services.payouts_create(program=program, partner=paula, reference="P-1", actor=ACTOR)
    ExpenseFactory(client=ann, amount=Decimal("30.00"), created_at=at(3, 5))
    with time_machine.travel(at(4, 2, 9), tick=False):
        rewards_accrue(program=program)
    ReferralFactory(program=program)  # another partner's referral
    ReferralFactory()  # another program's referral
    return program, paula, ann, bob, ten, bonus


def test_the_referrers_list_sums_money_per_currency_never_across(door, out, screens):
    program, paula, *_ = screens
    rows = door("referralprogram.partner", out=out, elid=program.pk)["elem"]
    mine = next(r for r in rows if r["id"] == str(paula.pk))
    # Ann's USD charges earned 10% + 1 each (5 + 1, 3 + 1), her EUR one 10% only (the fixed
    # reward is in the program's USD): 10.00 USD and 2.00 EUR, of which March's were paid
    assert (mine["name"], mine["code"], mine["referrals"]) == ("Paula", f"FRIEND{paula.pk}", "2")
    assert (mine["earned"], mine["unpaid"]) == ("2.00 EUR, 10.00 USD", "4.00 USD")


def test_a_referrers_referrals_as_billmanager_6_lists_them(door, out, screens):
    program, paula, ann, bob, ten, bonus = screens
    rows = door("referralprogram.referral", out=out, elid=program.pk, partner=paula.pk)["elem"]
    assert [r["account_id"] for r in rows] == [str(ann.pk), str(bob.pk)]
    ann_row, bob_row = rows
    assert {k: ann_row[k] for k in ann_row if k != "id"} == {
        "name": "Ann (ann@example.com)",
        "account": "Ann",
        "account_id": str(ann.pk),
        "partner": "Paula",
        "partner_id": str(paula.pk),
        "total_expenses": "20.00 EUR, 80.00 USD",
        "paid_amount": "2.00 EUR, 6.00 USD",
        "rules": f"{ten.pk}, {bonus.pk}",
        "joined_at": "2026-01-10T12:00:00+00:00",
        "source": "promocode",
        "came_from": f"By promo code 'FRIEND{paula.pk}'",
        "first_purchase_at": "2026-02-01T12:00:00+00:00",
        "last_purchase_at": "2026-03-05T12:00:00+00:00",
    }
    assert (bob_row["name"], bob_row["came_from"], bob_row["total_expenses"]) == (
        "Bob",
        f"https://example.com/join?from={paula.pk}",
        "",
    )
    assert (bob_row["rules"], bob_row["first_purchase_at"], bob_row["last_purchase_at"]) == (
        "",
        "",
        "",
    )
    # without `partner`, the program's referrals of every referrer
    every = door("referralprogram.referral", out=out, elid=program.pk)["elem"]
    assert len(every) == 3


def test_a_referrers_rewards_one_row_per_accrual_day_and_currency(door, out, screens):
    program, paula, *_, ten, bonus = screens
    answer = door("referralprogram.reward", out=out, elid=program.pk, partner=paula.pk)
    rows = [
        (r["date"], r["amount"], r["currency"], r["paid_amount"], r["rules"], r["rewards"])
        for r in answer["elem"]
    ]
    # the two rules' rewards of one day are one row; newest day first
    assert rows == [
        ("2026-04-02", "4.00", "USD", "0.00", f"{ten.pk}, {bonus.pk}", "2"),
        ("2026-04-01", "2.00", "EUR", "2.00", f"{ten.pk}", "1"),
        ("2026-04-01", "6.00", "USD", "6.00", f"{ten.pk}, {bonus.pk}", "2"),
    ]
    assert {r["partner_id"] for r in answer["elem"]} == {str(paula.pk)}
    assert answer["p_elems"] == "3"


def test_an_unknown_referrer_is_a_missing_error(door, out, screens):
    program, *_ = screens
    stranger = ClientFactory(provider=program.provider)
    answer = door("referralprogram.referral", out=out, elid=program.pk, partner=stranger.pk)
    assert (answer["error"]["type"], answer["error"]["object"]) == ("missing", "partner")


def test_a_failed_payout_is_not_shown_as_paid(door, out, screens):
    program, paula, ann, *_ = screens
    # given March's payout to Paula marked failed by the bank
    services.payouts_mark_many(
        payouts=paula.payouts.all(), status=Payout.Status.FAILED, actor=ACTOR
    )
    # then neither her referral's row nor her rewards show anything paid
    referrals = door("referralprogram.referral", out=out, elid=program.pk, partner=paula.pk)
    ann_row = next(r for r in referrals["elem"] if r["account_id"] == str(ann.pk))
    assert ann_row["paid_amount"] == ""
    rewards = door("referralprogram.reward", out=out, elid=program.pk, partner=paula.pk)
    assert {r["paid_amount"] for r in rewards["elem"]} == {"0.00"}
    # and what was paid is owed again
    mine = next(
        r
        for r in door("referralprogram.partner", out=out, elid=program.pk)["elem"]
        if r["id"] == str(paula.pk)
    )
    assert mine["unpaid"] == "2.00 EUR, 10.00 USD"
