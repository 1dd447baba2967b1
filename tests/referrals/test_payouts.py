"""Paying partners (payouts_create_many): who paid, when and a reference; what was confirmed,
and nothing twice."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError

from common.actors import Actor
from common.models import History
from referrals import selectors
from referrals.accrual import rewards_accrue
from referrals.models import Payout, Reward
from referrals.services import payouts_create, payouts_create_many
from tests.conftest import run_in_threads
from tests.factories import (
    CurrencyFactory,
    ExpenseFactory,
    ReferralFactory,
    RuleFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def earning(amounts, currency=None):
    """A partner whose referral spent `amounts`, with a 10% rule accrued."""
    referral = ReferralFactory(program__start_date=START.date())
    RuleFactory(program=referral.program, amount=Decimal("10"))
    for amount in amounts:
        ExpenseFactory(
            client=referral.client,
            amount=Decimal(amount),
            currency=currency or referral.program.provider.currency,
            created_at=START,
        )
    rewards_accrue()
    return referral


def test_a_payout_records_who_paid_when_and_the_reference():
    referral = earning(["50", "20"])
    clerk = Actor(user=UserFactory(username="clerk"), ip="10.0.0.9", action="admin:reward.payout")
    with time_machine.travel(datetime.datetime(2026, 3, 1, 9, tzinfo=datetime.UTC), tick=False):
        [payout] = payouts_create(
            program=referral.program, partner=referral.partner, reference=" TX-1 ", actor=clerk
        )
    assert (payout.amount, payout.paid_by, payout.reference, payout.created_at) == (
        Decimal("7.00"),
        "clerk",
        "TX-1",
        datetime.datetime(2026, 3, 1, 9, tzinfo=datetime.UTC),
    )
    assert History.objects.filter(
        object_id=referral.program_id, desc__contains="(reference TX-1)", username="clerk"
    ).exists()


def test_a_payout_needs_a_reference():
    referral = earning(["50"])
    with pytest.raises(ValidationError, match="reference"):
        payouts_create(
            program=referral.program,
            partner=referral.partner,
            reference="  ",
            actor=Actor.system("t"),
        )
    assert not Payout.objects.exists()


def test_paying_many_pays_what_was_confirmed_or_nothing():
    # given two partners owed 5.00 USD and 2.00 USD
    first, second = earning(["50"]), earning(["20"])
    pairs = [(first.program, first.partner), (second.program, second.partner)]
    preview = selectors.payout_preview(pairs)
    assert [str(m) for m in preview.totals] == ["7.00 USD"]
    # when someone pays the second meanwhile
    payouts_create(
        program=second.program, partner=second.partner, reference="B", actor=Actor.system("t")
    )
    # then paying both as confirmed is refused as a whole
    with pytest.raises(ValidationError, match="changed since it was confirmed"):
        payouts_create_many(
            partners=pairs,
            reference="A",
            actor=Actor.system("t"),
            through=preview.through,
            confirmed=preview.confirmed,
        )
    assert Payout.objects.count() == 1
    assert Reward.objects.filter(payout__isnull=True).count() == 1


def test_paying_many_keeps_each_currency_apart_and_leaves_later_rewards():
    # given a partner owed in dollars and in euros
    eur = CurrencyFactory(iso="EUR", name="Euro")
    referral = earning(["50"])
    ExpenseFactory(client=referral.client, amount=Decimal("30"), currency=eur, created_at=START)
    rewards_accrue()
    preview = selectors.payout_preview([(referral.program, referral.partner)])
    # and a reward accrued after the operator looked
    ExpenseFactory(client=referral.client, amount=Decimal("90"), created_at=START)
    rewards_accrue()
    # when what they saw is paid
    made = payouts_create_many(
        partners=[(referral.program, referral.partner)],
        reference="R",
        actor=Actor.system("t"),
        through=preview.through,
        confirmed=preview.confirmed,
    )
    # then one payout per currency, and the later reward waits
    assert sorted((p.currency.iso, p.amount) for p in made) == [
        ("EUR", Decimal("3.00")),
        ("USD", Decimal("5.00")),
    ]
    assert [r.amount for r in Reward.objects.filter(payout__isnull=True)] == [Decimal("9.00")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_payments_of_one_partner_pay_each_reward_once():
    referral = earning(["50", "20", "30"])

    def pay(n):
        return payouts_create(
            program=referral.program,
            partner=referral.partner,
            reference=f"T{n}",
            actor=Actor.system("t"),
        )

    made = [p for batch in run_in_threads(pay, [1, 2, 3, 4]) for p in batch]
    assert [p.amount for p in made] == [Decimal("10.00")]
    assert Payout.objects.count() == 1 and not Reward.objects.filter(payout__isnull=True).exists()
