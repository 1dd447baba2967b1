"""Accrual: which expenses earn rewards, how much, and that a re-run pays nothing twice."""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from common.actors import Actor
from referrals.accrual import rewards_accrue
from referrals.models import Reward
from tests.factories import (
    ClientFactory,
    ClientGroupFactory,
    CurrencyFactory,
    ExpenseFactory,
    ReferralFactory,
    ReferralProgramFactory,
    RuleConditionFactory,
    RuleConditionGroupFactory,
    RuleFactory,
    ServiceFactory,
)

pytestmark = pytest.mark.django_db


def at(day: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(day + "T12:00:00+00:00")


@pytest.fixture
def referral():
    program = ReferralProgramFactory(
        start_date=datetime.date(2026, 1, 1), end_date=datetime.date(2026, 3, 31)
    )
    return ReferralFactory(program=program)


def rule_for(referral, **fields):
    values = {"name": "r", "reward_type": "percent", "amount": Decimal("10"), **fields}
    return RuleFactory(program=referral.program, **values)


def spend(referral, amount, day):
    return ExpenseFactory(client=referral.client, amount=Decimal(amount), created_at=at(day))


def test_percent_rewards_on_expenses_inside_the_dates_end_included(referral):
    # given a 10% rule and expenses before, inside, on the last day and after the program
    rule = rule_for(referral)
    spend(referral, "100", "2025-12-31")
    inside = spend(referral, "33.33", "2026-02-10")
    last_day = spend(referral, "50", "2026-03-31")
    spend(referral, "70", "2026-04-01")
    # when accrued
    added = rewards_accrue()
    # then the two expenses inside earn 10%, rounded half up, for the partner
    rewards = {r.expense_id: r for r in Reward.objects.all()}
    assert added == 2 and set(rewards) == {inside.pk, last_day.pk}
    assert rewards[inside.pk].amount == Decimal("3.33")
    assert rewards[last_day.pk].amount == Decimal("5.00")
    assert {r.beneficiary for r in rewards.values()} == {referral.partner}
    assert {r.rule for r in rewards.values()} == {rule}


def test_a_rerun_adds_nothing_and_new_expenses_are_picked_up(referral):
    rule_for(referral, reward_type="fixed", amount=Decimal("2"))
    spend(referral, "10", "2026-01-05")
    assert rewards_accrue() == 1
    assert rewards_accrue() == 0
    spend(referral, "10", "2026-01-06")
    assert rewards_accrue() == 1
    assert Reward.objects.count() == 2
    assert {r.amount for r in Reward.objects.all()} == {Decimal("2")}


def test_until_and_inactive_rules_limit_the_run(referral):
    rule_for(referral)
    rule_for(referral, active=False)
    spend(referral, "10", "2026-01-05")
    spend(referral, "10", "2026-02-05")
    assert rewards_accrue(until=datetime.date(2026, 1, 31)) == 1
    assert rewards_accrue() == 1


def test_partners_in_the_restricted_group_earn_nothing(referral):
    banned = ClientGroupFactory()
    referral.partner.groups.add(banned)
    referral.program.account_group_restrict = banned
    referral.program.save()
    rule_for(referral)
    spend(referral, "10", "2026-01-05")
    assert rewards_accrue() == 0


@pytest.mark.parametrize(
    ("january", "february", "rewarded_months"),
    [("60", "40", {1}), ("30", "80", {2}), ("60", "60", {1, 2}), ("10", "10", set())],
)
def test_referral_sales_are_measured_per_schedule_period(
    referral, january, february, rewarded_months
):
    # given a monthly rule: the referral's sales in the month >= 50
    rule = rule_for(referral, schedule="month")
    RuleConditionFactory(rule=rule, ctype="1", comparison="ge", amount_ctype_1=Decimal("50"))
    spend(referral, january, "2026-01-10")
    spend(referral, february, "2026-02-10")
    # when accrued, only the months that reached 50 earn
    rewards_accrue()
    assert {r.expense.created_at.month for r in Reward.objects.all()} == rewarded_months


@pytest.mark.parametrize(
    ("services", "referrals", "rewarded"),
    [(2, 1, True), (0, 2, True), (0, 1, False)],
)
def test_condition_groups_or_within_and_across(referral, services, referrals, rewarded):
    # given (referral bought >= 2 services OR partner has >= 2 referrals) AND (no condition)
    rule = rule_for(referral, schedule="program")
    group = RuleConditionGroupFactory(rule=rule, name="either")
    RuleConditionFactory(rule=rule, ctype="2", item_count=2, group=group)
    RuleConditionFactory(rule=rule, ctype="3", referral_count=2, group=group)
    RuleConditionFactory(rule=rule, ctype="0")
    ServiceFactory.create_batch(services, client=referral.client)
    for _ in range(referrals - 1):
        ReferralFactory(program=referral.program, partner=referral.partner)
    spend(referral, "10", "2026-01-05")
    assert (rewards_accrue() == 1) is rewarded


def test_all_referrals_sales_count_the_partners_other_referrals(referral):
    rule = rule_for(referral, schedule="quarter")
    RuleConditionFactory(rule=rule, ctype="4", comparison="gt", amount_ctype_4=Decimal("100"))
    sibling = ReferralFactory(program=referral.program, partner=referral.partner)
    spend(referral, "60", "2026-01-10")
    ExpenseFactory(client=sibling.client, amount=Decimal("50"), created_at=at("2026-02-10"))
    assert rewards_accrue() == 2


@pytest.mark.parametrize(
    ("rewarded", "credited"),
    [
        ("referrer", {("referrer", "partner", "cash")}),
        ("referee", {("referee", "client", "points")}),
        ("both", {("referrer", "partner", "cash"), ("referee", "client", "points")}),
    ],
)
def test_the_program_says_who_is_credited_and_in_what_kind(referral, rewarded, credited):
    # given a program paying the referrer in cash and the referred client in points
    program = referral.program
    program.rewarded, program.referee_reward_kind = rewarded, "points"
    program.save()
    rule_for(referral)
    spend(referral, "20", "2026-01-05")
    # when accrued twice
    first, again = rewards_accrue(), rewards_accrue()
    # then each beneficiary gets one row of 10%, credited to the right client, once
    people = {"partner": referral.partner, "client": referral.client}
    rows = {(r.role, r.beneficiary, r.kind, r.amount) for r in Reward.objects.all()}
    assert rows == {(b, people[who], kind, Decimal("2.00")) for b, who, kind in credited}
    assert (first, again) == (len(credited), 0)


def test_a_restricted_referred_client_earns_nothing_but_their_partner_does(referral):
    banned = ClientGroupFactory()
    referral.client.groups.add(banned)
    program = referral.program
    program.account_group_restrict, program.rewarded = banned, "both"
    program.save()
    rule_for(referral)
    spend(referral, "10", "2026-01-05")
    assert rewards_accrue() == 1
    assert Reward.objects.get().role == "referrer"


@pytest.mark.parametrize(("referrals", "rewarded"), [(1, 0), (2, 2)])
def test_partners_below_min_referrals_earn_nothing(referral, referrals, rewarded):
    referral.program.min_referrals = 2
    referral.program.save()
    rule_for(referral)
    others = [
        ReferralFactory(program=referral.program, partner=referral.partner)
        for _ in range(referrals - 1)
    ]
    for r in [referral, *others]:
        spend(r, "10", "2026-01-05")
    assert rewards_accrue() == rewarded


def test_refunds_earn_nothing_and_count_against_sales(referral):
    # given a monthly rule on sales >= 50 and a refund that takes January below it
    rule = rule_for(referral, schedule="month")
    RuleConditionFactory(rule=rule, ctype="1", comparison="ge", amount_ctype_1=Decimal("50"))
    spend(referral, "60", "2026-01-05")
    spend(referral, "-20", "2026-01-06")
    spend(referral, "80", "2026-02-05")
    spend(referral, "-5", "2026-02-06")
    # then only February's charge earns
    rewards_accrue()
    assert [r.expense.amount for r in Reward.objects.all()] == [Decimal("80")]


def test_chunks_of_partners_keep_each_partners_sums_whole(referral, monkeypatch):
    # given chunks of one referral and a partner whose two referrals only reach 100 together
    monkeypatch.setattr("referrals.accrual.CHUNK_REFERRALS", 1)
    rule = rule_for(referral, schedule="program")
    RuleConditionFactory(rule=rule, ctype="4", comparison="ge", amount_ctype_4=Decimal("100"))
    sibling = ReferralFactory(program=referral.program, partner=referral.partner)
    loner = ReferralFactory(program=referral.program)
    spend(referral, "60", "2026-01-10")
    spend(sibling, "40", "2026-01-11")
    spend(loner, "90", "2026-01-12")
    # when accrued, the partner's pair earns and the partner below 100 does not
    assert rewards_accrue() == 2
    assert {r.referral for r in Reward.objects.all()} == {referral, sibling}


def test_a_per_referral_condition_does_not_shrink_the_partners_sales(referral):
    # given (referral bought >= 1 service) AND (all the partner's referrals spent >= 150)
    rule = rule_for(referral, schedule="program")
    RuleConditionFactory(rule=rule, ctype="2", item_count=1)
    RuleConditionFactory(rule=rule, ctype="4", comparison="ge", amount_ctype_4=Decimal("150"))
    # and two referrals of 100 each, only the first with a service
    sibling = ReferralFactory(program=referral.program, partner=referral.partner)
    ServiceFactory(client=referral.client)
    spend(referral, "100", "2026-01-10")
    ExpenseFactory(client=sibling.client, amount=Decimal("100"), created_at=at("2026-01-11"))
    # when accrued, the partner's sales count both (200), and only the first earns
    assert rewards_accrue() == 1
    assert Reward.objects.get().referral == referral


def test_the_command_reports_and_refuses_bad_arguments(referral):
    rule_for(referral)
    spend(referral, "10", "2026-01-05")
    out = StringIO()
    call_command(
        "accrue_referral_rewards", "--program", str(referral.program.pk), stdout=out, verbosity=0
    )
    assert out.getvalue().strip() == "1 rewards accrued."
    with pytest.raises(CommandError):
        call_command("accrue_referral_rewards", "--program", "999999", verbosity=0)
    with pytest.raises(CommandError):
        call_command("accrue_referral_rewards", "--until", "soon", verbosity=0)


def test_payouts_pay_each_reward_once_per_currency(referral):
    from referrals.services import payouts_create
    from tests.factories import CurrencyFactory

    # given rewards in two currencies
    rule_for(referral)
    spend(referral, "10", "2026-01-05")
    spend(referral, "30", "2026-01-06")
    ExpenseFactory(
        client=referral.client,
        amount=Decimal("50"),
        currency=CurrencyFactory(iso="EUR", name="Euro"),
        created_at=at("2026-01-07"),
    )
    rewards_accrue()
    # when the partner is paid, then one payout per currency carries the sums
    payouts = payouts_create(
        program=referral.program, partner=referral.partner, reference="T-1", actor=Actor.system("t")
    ).payouts
    assert sorted((p.currency.iso, p.amount) for p in payouts) == [
        ("EUR", Decimal("5.00")),
        ("USD", Decimal("4.00")),
    ]
    assert not Reward.objects.filter(payout__isnull=True).exists()
    # and paying again pays nothing
    assert (
        payouts_create(
            program=referral.program,
            partner=referral.partner,
            reference="T-2",
            actor=Actor.system("t"),
        ).payouts
        == []
    )


# What earns: after the attachment, in the program's currency for fixed rewards ------------------


def test_a_reward_accrues_only_on_expenses_at_or_after_the_attachment(referral):
    # given a client who bought 30 days before a partner's link attached them, and after
    from referrals import services

    program = referral.program
    newcomer = ClientFactory(provider=program.provider)
    old = ExpenseFactory(client=newcomer, amount=Decimal("100"), created_at=at("2026-01-05"))
    attached = services.referral_attach(
        client=newcomer,
        partner_id=referral.partner_id,
        program=program,
        source="link",
        actor=Actor.system("t"),
        at=at("2026-02-04"),
    )
    later = ExpenseFactory(client=newcomer, amount=Decimal("40"), created_at=at("2026-02-04"))
    rule_for(referral)
    # when rewards accrue
    rewards_accrue()
    # then only the purchase at or after the attachment earns
    earned = Reward.objects.filter(referral=attached)
    assert [(r.expense_id, r.amount) for r in earned] == [(later.pk, Decimal("4.00"))]
    assert not Reward.objects.filter(expense=old).exists()


def test_a_fixed_reward_is_paid_only_on_expenses_in_the_programs_currency(referral):
    # given a USD program paying a fixed 5 per expense, and expenses in USD and in yen
    yen = CurrencyFactory(iso="JPY", name="Yen", minor_units=0)
    rule = rule_for(referral, reward_type="fixed", amount=Decimal("5"))
    in_dollars = spend(referral, "20", "2026-01-05")
    ExpenseFactory(
        client=referral.client, amount=Decimal("3000"), currency=yen, created_at=at("2026-01-06")
    )
    # when rewards accrue
    rewards_accrue()
    # then only the dollar expense earns 5, in dollars; the rule says why the yen one did not
    assert [(r.expense_id, r.amount, r.currency.iso) for r in Reward.objects.all()] == [
        (in_dollars.pk, Decimal("5.0000"), "USD")
    ]
    assert rule.description == (
        "5 USD per qualifying expense in USD; "
        "expenses in other currencies earn nothing under this rule"
    )


def test_a_fixed_reward_finer_than_the_programs_currency_is_refused_with_the_reason():
    # given a yen program (no minor unit)
    yen = CurrencyFactory(iso="JPY", name="Yen", minor_units=0)
    program = ReferralProgramFactory(currency=yen)
    # when a fixed reward of 1.5 yen is saved, then it is refused on its amount, saying why
    with pytest.raises(ValidationError) as refused:
        RuleFactory.build(program=program, reward_type="fixed", amount=Decimal("1.5")).full_clean()
    assert refused.value.message_dict["amount"] == [
        "A fixed reward is in JPY, which has no fractions: give a whole amount."
    ]


def test_a_fixed_reward_is_rounded_to_the_currency_when_the_program_changed_currency(referral):
    # given a fixed 1.25 USD rule, and the program switched to yen afterwards
    yen = CurrencyFactory(iso="JPY", name="Yen", minor_units=0)
    rule_for(referral, reward_type="fixed", amount=Decimal("1.25"))
    program = referral.program
    program.currency = yen
    program.save()
    ExpenseFactory(
        client=referral.client, amount=Decimal("3000"), currency=yen, created_at=at("2026-01-06")
    )
    # when rewards accrue, then the yen reward is a whole yen, rounded half up like every reward
    rewards_accrue()
    assert [(r.amount, r.currency.iso) for r in Reward.objects.all()] == [(Decimal("1"), "JPY")]


def test_a_percent_reward_is_in_the_expenses_currency(referral):
    yen = CurrencyFactory(iso="JPY", name="Yen", minor_units=0)
    rule = rule_for(referral, amount=Decimal("2.5"))
    ExpenseFactory(
        client=referral.client, amount=Decimal("3010"), currency=yen, created_at=at("2026-01-06")
    )
    rewards_accrue()
    assert [(r.amount, r.currency.iso) for r in Reward.objects.all()] == [(Decimal("75"), "JPY")]
    assert rule.description == "2.5% of each qualifying expense, in the expense's currency"


def test_sales_are_measured_in_the_programs_currency_only(referral):
    # given a monthly rule on sales >= 50 (dollars) and a referral who spends 40 USD and 9000 JPY
    yen = CurrencyFactory(iso="JPY", name="Yen", minor_units=0)
    rule = rule_for(referral, schedule="month")
    RuleConditionFactory(rule=rule, ctype="1", comparison="ge", amount_ctype_1=Decimal("50"))
    spend(referral, "40", "2026-01-05")
    ExpenseFactory(
        client=referral.client, amount=Decimal("9000"), currency=yen, created_at=at("2026-01-06")
    )
    # then the yen do not lift the dollar sales over 50: nothing earns
    assert rewards_accrue() == 0


# orderperiods: the periods of the referral's service orders -------------------------------------


def test_orderperiods_narrow_a_rule_to_orders_of_those_periods(referral):
    # given a rule for yearly orders only, and a monthly and a yearly service with a charge each
    rule = rule_for(referral)
    RuleConditionFactory(rule=rule, ctype="0", orderperiods=[12])
    monthly = ServiceFactory(client=referral.client, period=1)
    yearly = ServiceFactory(client=referral.client, period=12)
    ExpenseFactory(client=referral.client, service=monthly, created_at=at("2026-01-05"))
    charged = ExpenseFactory(client=referral.client, service=yearly, created_at=at("2026-01-05"))
    ExpenseFactory(client=referral.client, service=None, created_at=at("2026-01-05"))
    # when rewards accrue, then only the yearly order's charge earns
    rewards_accrue()
    assert [r.expense_id for r in Reward.objects.all()] == [charged.pk]


@pytest.mark.parametrize(("yearly_services", "rewarded"), [(1, 0), (2, 1)])
def test_orderperiods_count_only_services_of_those_periods(referral, yearly_services, rewarded):
    # given "services bought >= 2, of yearly orders" and three monthly services besides
    rule = rule_for(referral, schedule="program")
    RuleConditionFactory(rule=rule, ctype="2", item_count=2, orderperiods=[12])
    ServiceFactory.create_batch(3, client=referral.client, period=1)
    yearly = ServiceFactory.create_batch(yearly_services, client=referral.client, period=12)
    ExpenseFactory(client=referral.client, service=yearly[0], created_at=at("2026-01-05"))
    # then the monthly ones do not count
    assert rewards_accrue() == rewarded


# The watermark: a run reads only what is new -----------------------------------------------------


def test_a_rerun_with_nothing_new_reads_no_expense_and_writes_nothing(referral):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rule_for(referral)
    spend(referral, "10", "2026-01-05")
    assert rewards_accrue() == 1
    with CaptureQueriesContext(connection) as captured:
        assert rewards_accrue() == 0
    statements = [q["sql"] for q in captured.captured_queries]
    assert not [q for q in statements if "INSERT INTO referrals_reward" in q]
    # the one look at the expenses is the highest id, for the marks (locked for it on PostgreSQL)
    assert [q for q in statements if "billing_expense" in q and "LOCK TABLE" not in q] == [
        'SELECT MAX("billing_expense"."id") AS "m" FROM "billing_expense"'
    ]


def test_a_late_expense_dated_before_the_last_run_still_earns(referral):
    rule_for(referral)
    spend(referral, "10", "2026-03-01")
    assert rewards_accrue() == 1
    # an expense that arrives now, dated before what was accrued
    late = spend(referral, "20", "2026-01-15")
    assert rewards_accrue() == 1
    assert Reward.objects.get(expense=late).amount == Decimal("2.00")


def test_a_referral_attached_after_a_run_earns_on_its_expenses_from_the_attachment(referral):
    # given a client's charge dated 10 February, accrued while they were nobody's referral
    from referrals import services

    rule_for(referral)
    newcomer = ClientFactory(provider=referral.program.provider)
    charged = ExpenseFactory(client=newcomer, amount=Decimal("30"), created_at=at("2026-02-10"))
    assert rewards_accrue() == 0
    # when a partner's link attaches them as of 1 February
    services.referral_attach(
        client=newcomer,
        partner_id=referral.partner_id,
        program=referral.program,
        source="link",
        actor=Actor.system("t"),
        at=at("2026-02-01"),
    )
    # then the next run rewards the charge
    assert rewards_accrue() == 1 and Reward.objects.get().expense == charged


def test_an_old_expense_earns_once_a_new_one_lifts_its_months_sales(referral):
    # given "sales in the month >= 50" and 30 spent on 5 January: not yet
    rule = rule_for(referral, schedule="month")
    RuleConditionFactory(rule=rule, ctype="1", comparison="ge", amount_ctype_1=Decimal("50"))
    first = spend(referral, "30", "2026-01-05")
    assert rewards_accrue() == 0
    # when 30 more arrive in January, then both January charges earn
    second = spend(referral, "30", "2026-01-20")
    assert rewards_accrue() == 2
    assert {r.expense_id for r in Reward.objects.all()} == {first.pk, second.pk}


def test_a_new_service_lets_the_referrals_old_expenses_earn(referral):
    rule = rule_for(referral, schedule="program")
    RuleConditionFactory(rule=rule, ctype="2", item_count=1)
    spend(referral, "30", "2026-01-05")
    assert rewards_accrue() == 0
    ServiceFactory(client=referral.client)
    assert rewards_accrue() == 1


def test_changing_a_rules_conditions_makes_the_next_run_read_everything_again(referral):
    # given a rule whose condition holds nobody back but the one being removed
    from referrals import services

    rule = rule_for(referral)
    condition = RuleConditionFactory(
        rule=rule, ctype="1", comparison="ge", amount_ctype_1=Decimal("1000")
    )
    spend(referral, "30", "2026-01-05")
    assert rewards_accrue() == 0
    # when the condition is removed through the services
    services.rule_condition_delete_many(conditions=[condition], actor=Actor.system("t"))
    # then the expense read before now earns
    assert rewards_accrue() == 1


def test_chunks_start_at_the_next_expense_there_is(referral, monkeypatch):
    # given chunks of 2 expense ids, and ids 1-6 spent on expenses that are gone
    monkeypatch.setattr("referrals.accrual.CHUNK_EXPENSES", 2)
    rule_for(referral)
    for gone in ExpenseFactory.create_batch(6):
        gone.delete()
    for day in ("2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08"):
        spend(referral, "10", day)
    # when accrued, then each chunk holds two of the four expenses (no empty chunk in between)
    reported = []
    assert rewards_accrue(progress=reported.append) == 4
    assert reported == [2, 4, 4]
