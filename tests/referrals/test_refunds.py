"""Refunds reverse rewards: accrual writes a reversing row (negative, `reverses` = the reward) for
the share of each reward a refund gives back, once; a reversal of a paid reward is deducted from
the next payout, and a balance may go negative."""

import datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.services import expense_create
from common.actors import Actor
from referrals import selectors, services
from referrals.accrual import reversal_amount, rewards_accrue
from referrals.models import Payout, ReferralProgram, Reward, RewardState
from tests.factories import (
    CurrencyFactory,
    ExpenseFactory,
    ReferralFactory,
    ReferralProgramFactory,
    RuleConditionFactory,
    RuleFactory,
)

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


@pytest.fixture
def referral():
    referral = ReferralFactory(program__start_date=START.date())
    RuleFactory(program=referral.program, amount=Decimal("10"))
    return referral


def charge(referral, amount, day=1):
    return ExpenseFactory(
        client=referral.client,
        amount=Decimal(amount),
        currency=referral.program.provider.currency,
        created_at=START + datetime.timedelta(days=day),
    )


def refund(expense, amount):
    return expense_create(refunds=expense, amount=Decimal(amount), actor=ACTOR)


def pay(referral, reference):
    return services.payouts_create(
        program=referral.program, partner=referral.partner, reference=reference, actor=ACTOR
    )


def states(**filters) -> dict[int, str]:
    return {r.pk: r.state for r in selectors.with_states(Reward.objects.filter(**filters), at=NOW)}


def balances(referral) -> selectors.Balances:
    [row], _ = selectors.partner_rows(program=referral.program, at=NOW)
    return row.balances


def money(amounts) -> list[str]:
    return [str(m) for m in amounts]


def test_a_partial_refund_reverses_its_share_and_a_rerun_adds_nothing(referral):
    # given a reward of 10.00 on a charge of 100
    bought = charge(referral, "100")
    rewards_accrue()
    [earned] = Reward.objects.all()
    # when 33.33 of it is refunded and accrual runs, then again
    back = refund(bought, "-33.33")
    assert rewards_accrue() == 1
    assert rewards_accrue() == 0
    # then one reversing row gives back 33.33% of the reward, on the refund, for the same partner
    [reversal] = Reward.objects.filter(reverses__isnull=False)
    assert (reversal.reverses, reversal.expense, reversal.amount) == (
        earned,
        back,
        Decimal("-3.33"),
    )
    assert (reversal.beneficiary, reversal.rule, reversal.role, reversal.currency) == (
        earned.beneficiary,
        earned.rule,
        earned.role,
        earned.currency,
    )
    assert reversal.payable_at == earned.payable_at
    # and the reward stays payable for what is left
    assert states() == {earned.pk: "payable", reversal.pk: "payable"}
    assert money(balances(referral).payable) == ["6.67 USD"]


def test_refunds_in_parts_give_back_exactly_the_whole_reward(referral):
    # given a reward of 3.33 on a charge of 33.30 refunded in three unequal parts
    bought = charge(referral, "33.30")
    rewards_accrue()
    for part in ("-11.10", "-11.11", "-11.09"):
        refund(bought, part)
        rewards_accrue()
    # then the reversals add up to the reward exactly, and it is reversed
    [earned] = Reward.objects.filter(reverses__isnull=True)
    given_back = [r.amount for r in Reward.objects.filter(reverses=earned).order_by("pk")]
    assert earned.amount == Decimal("3.33") and sum(given_back) == -earned.amount
    assert states(pk=earned.pk) == {earned.pk: RewardState.REVERSED}
    assert balances(referral).earned[0].amount == 0


def test_a_charge_and_its_refund_in_one_run_reverse_in_that_run(referral):
    bought = charge(referral, "50")
    refund(bought, "-50")
    assert rewards_accrue() == 2
    assert sorted(r.amount for r in Reward.objects.all()) == [Decimal("-5.00"), Decimal("5.00")]
    assert money(balances(referral).payable) == []  # nothing to pay: 5.00 - 5.00


def test_a_refund_after_payout_is_deducted_from_the_next_payout(referral):
    # given two rewards paid (10.00 + 2.00)
    first = charge(referral, "100")
    charge(referral, "20")
    rewards_accrue()
    assert pay(referral, "P-1").payouts[0].amount == Decimal("12.00")
    # when the first charge is refunded in whole and accrued
    refund(first, "-100")
    rewards_accrue()
    # then the partner owes 10.00: the balance is negative and shown so, nothing is paid
    assert money(balances(referral).payable) == ["-10.00 USD"]
    assert money(balances(referral).reversed) == ["-10.00 USD"]
    made = pay(referral, "P-2")
    assert made.payouts == [] and "-10.00 USD: nothing to pay" in str(made.skipped[0])
    # when the partner earns 25.00 more, then the next payout pays 15.00 and takes the deduction
    charge(referral, "250")
    rewards_accrue()
    [payout] = pay(referral, "P-3").payouts
    assert payout.amount == Decimal("15.00") and payout.rewards_count == 2
    reversal = Reward.objects.get(reverses__isnull=False)
    assert reversal.payout == payout
    # and the refunded reward reads reversed, the deduction and the other rewards paid
    earned = {r.expense.amount: r.pk for r in Reward.objects.filter(reverses__isnull=True)}
    assert states() == {
        earned[Decimal("100")]: "reversed",
        reversal.pk: "paid",
        earned[Decimal("20")]: "paid",
        earned[Decimal("250")]: "paid",
    }
    assert sum(p.amount for p in Payout.objects.all()) == sum(
        r.amount for r in Reward.objects.all()
    )


def test_a_refund_before_the_referral_was_attached_reverses_once_it_earns(referral):
    # given a client who bought and had part of it refunded before accrual ever saw a referral
    program = referral.program
    late = ReferralFactory.build(program=program)  # not saved yet: a plain client
    late.partner.save()
    late.client.save()
    bought = ExpenseFactory(client=late.client, amount=Decimal("80"), created_at=START)
    charge(referral, "10")
    rewards_accrue()  # reads the purchase while the client is nobody's referral
    back = refund(bought, "-20")
    rewards_accrue()  # reads the refund: no reward to reverse yet
    # when the client is attached (joined before the purchase) and accrual runs
    late.save()
    rewards_accrue()
    # then the purchase earns and its refund reverses it, once
    rows = Reward.objects.filter(referral=late).order_by("pk")
    assert [(r.expense_id, r.amount) for r in rows] == [
        (bought.pk, Decimal("8.00")),
        (back.pk, Decimal("-2.00")),
    ]
    assert rewards_accrue() == 0


def test_a_switched_off_program_still_gives_back_on_refunds(referral):
    bought = charge(referral, "100")
    rewards_accrue()
    ReferralProgram.objects.filter(pk=referral.program_id).update(status="inactive")
    refund(bought, "-40")
    assert rewards_accrue() == 1
    assert Reward.objects.get(reverses__isnull=False).amount == Decimal("-4.00")
    assert rewards_accrue() == 0


def test_a_measured_rule_reverses_too(referral):
    rule = referral.program.rules.get()
    RuleConditionFactory(rule=rule, ctype="1", comparison="ge", amount_ctype_1=Decimal(50))
    bought = charge(referral, "60")
    rewards_accrue()
    refund(bought, "-30")
    rewards_accrue()
    assert sorted(r.amount for r in Reward.objects.all()) == [Decimal("-3.00"), Decimal("6.00")]


def test_the_database_refuses_a_reversal_that_disagrees_or_gives_back_too_much(referral):
    bought = charge(referral, "100")
    other = charge(referral, "100")
    rewards_accrue()
    earned = Reward.objects.get(expense=bought)
    back = refund(bought, "-100")
    wrong = refund(other, "-1")

    def insert(expense, amount, reverses=earned) -> bool:
        try:
            moment = connection.ops.adapt_datetimefield_value
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO referrals_reward (beneficiary_id, referral_id, rule_id, "
                    "expense_id, role, amount, currency_id, kind, created_at, payable_at, "
                    "reverses_id) VALUES (%s, %s, %s, %s, 'referrer', %s, %s, 'cash', %s, %s, %s)",
                    [
                        earned.beneficiary_id,
                        earned.referral_id,
                        earned.rule_id,
                        expense.pk,
                        Decimal(amount),
                        earned.currency_id,
                        moment(NOW),
                        moment(earned.payable_at),
                        reverses.pk,
                    ],
                )
        except IntegrityError:
            return False
        return True

    assert not insert(wrong, "-1")  # a refund of another charge
    assert not insert(back, "-10.01")  # more than the reward
    assert not insert(back, "5")  # a positive reversal
    assert insert(back, "-10.00")
    assert not insert(back, "-0.01")  # the unique key (and nothing is left to give back)


# Every reversal agrees with a reference computed the obvious way ---------------------------------


def half_up(amount: Decimal, places: int) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def reference_reversals(rewards, refunds) -> dict[int, Decimal]:
    """{refund id: what it gives back} for one rule's rewards: the refunds of a charge in id
    order, each giving back share(after) - share(before), the share of the refunded amount
    rounded half up, the whole reward once the charge is refunded in whole."""
    given = {}
    for reward in rewards:
        charged = reward.expense.amount
        refunded = Decimal(0)
        for back in sorted((r for r in refunds if r.refunds_id == reward.expense_id), key=id_of):
            before, refunded = refunded, refunded - back.amount

            def share(x, reward=reward, charged=charged):
                if x >= charged:
                    return reward.amount
                return half_up(reward.amount * x / charged, reward.currency.minor_units)

            amount = share(before) - share(refunded)
            if amount:
                given[back.pk] = amount
    return given


def id_of(expense) -> int:
    return expense.pk


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    charges=st.lists(
        st.tuples(
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999"), places=2),
            st.sampled_from(["USD", "JPY"]),
            st.lists(st.integers(min_value=1, max_value=100), max_size=4),  # refunds, % of left
        ),
        min_size=1,
        max_size=5,
    ),
    percent=st.sampled_from(["10", "2.5", "33"]),
    runs=st.sampled_from(["each", "end"]),
)
def test_reversals_match_the_reference_in_any_order_of_runs(charges, percent, runs):
    with transaction.atomic():
        usd = CurrencyFactory(iso="USD")
        jpy = CurrencyFactory(iso="JPY", name="Yen", minor_units=0)
        program = ReferralProgramFactory(start_date=START.date(), provider__currency=usd)
        RuleFactory(program=program, amount=Decimal(percent))
        referral = ReferralFactory(program=program)
        currencies = {"USD": usd, "JPY": jpy}
        made = []
        for amount, iso, parts in charges:
            amount = half_up(amount, currencies[iso].minor_units) or Decimal(1)
            bought = ExpenseFactory(
                client=referral.client, amount=amount, currency=currencies[iso], created_at=START
            )
            if runs == "each":
                rewards_accrue()
            for percent_of_left in parts:
                bought.refresh_from_db()
                left = bought.amount - bought.refunded
                part = half_up(left * percent_of_left / 100, currencies[iso].minor_units)
                if part > 0:
                    made.append(refund(bought, -part))
                    if runs == "each":
                        rewards_accrue()
        rewards_accrue()
        assert rewards_accrue() == 0
        rewards = list(Reward.objects.filter(reverses__isnull=True).select_related("expense"))
        got = {r.expense_id: r.amount for r in Reward.objects.filter(reverses__isnull=False)}
        assert got == reference_reversals(rewards, made)
        # and no reward is ever given back more than it earned
        for reward in rewards:
            given_back = sum(r.amount for r in Reward.objects.filter(reverses=reward))
            assert reward.amount + given_back >= 0
            reward.expense.refresh_from_db()
            if reward.expense.refunded == reward.expense.amount:
                assert reward.amount + given_back == 0
        transaction.set_rollback(True)


@pytest.mark.parametrize(
    ("earned", "charged", "before", "after", "minor", "given"),
    [
        ("10.00", "100", "0", "100", 2, "-10.00"),  # whole
        ("10.00", "100", "0", "33.33", 2, "-3.33"),  # three thirds: 3.33 + 3.34 + 3.33
        ("10.00", "100", "33.33", "66.66", 2, "-3.34"),
        ("10.00", "100", "66.66", "100", 2, "-3.33"),
        ("0.03", "0.30", "0", "0.10", 2, "-0.01"),
        ("0.01", "100", "0", "10", 2, "0.00"),  # rounds to nothing: no row
        ("5.0005", "1", "0", "1", 2, "-5.0005"),  # a fixed reward's fraction goes back whole
    ],
)
def test_reversal_amounts(earned, charged, before, after, minor, given):
    assert reversal_amount(
        Decimal(earned), Decimal(charged), Decimal(before), Decimal(after), minor
    ) == Decimal(given)
