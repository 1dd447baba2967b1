"""What guards the reward ledger now that its references are not row-by-row foreign keys.

The invariants the dropped foreign keys and indexes guarded still hold:
- every reward names rows that exist and agree with each other (accrual builds each row from the
  very rows it names; a Hypothesis test checks it against a reference written here),
- nothing a reward names can be deleted, through the ORM or by raw SQL,
- rewards and payouts are history: never deleted, their money never changed, a paid reward stays
  paid; a payout's reward exists.
"""

import datetime
import threading
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import ProtectedError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Expense
from common.actors import Actor
from referrals import accrual
from referrals.accrual import rewards_accrue
from referrals.models import Payout, Reward, Rule
from referrals.services import payouts_create
from tests.factories import (
    ClientFactory,
    CurrencyFactory,
    ExpenseFactory,
    ReferralFactory,
    ReferralProgramFactory,
    RuleFactory,
)

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
TRIGGERS = {
    "referrals_reward_kept",
    "referrals_payout_kept",
    "referrals_payoutbatch_kept",
    "referrals_reward_unchanged",
    "referrals_payout_unchanged",
    "referrals_payoutbatch_unchanged",
    "referrals_reward_payout_exists",
    "referrals_reward_reversal_agrees",
    "referrals_expense_rewarded",
    "referrals_rule_rewarded",
    "referrals_referral_rewarded",
}


def installed_triggers() -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return {name for (name,) in cursor.fetchall()}


def test_the_guards_are_installed():
    # SQLite rebuilds a table (dropping its triggers) for many schema changes: a migration that
    # does so must put them back, or this fails.
    assert installed_triggers() >= TRIGGERS


@pytest.fixture
def paid():
    """A referral with one paid reward and one unpaid."""
    referral = ReferralFactory(program__start_date=START.date())
    RuleFactory(program=referral.program, amount=Decimal("10"))
    ExpenseFactory(client=referral.client, amount=Decimal("50"), created_at=START)
    rewards_accrue()
    payouts_create(program=referral.program, partner=referral.partner, reference="P", actor=ACTOR)
    ExpenseFactory(client=referral.client, amount=Decimal("30"), created_at=START)
    rewards_accrue()
    return referral


def refused(sql: str, params: list) -> bool:
    """Whether the database refuses the statement (the test's transaction carries on)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    except IntegrityError:
        return True
    return False


def test_rewards_and_payouts_are_never_deleted_or_changed(paid):
    reward = Reward.objects.filter(payout__isnull=False).get()
    unpaid = Reward.objects.filter(payout__isnull=True).get()
    payout = Payout.objects.get()
    # when anything tries to delete them, through the ORM or SQL, it is refused
    for doomed in (reward, unpaid, payout):
        with pytest.raises((IntegrityError, ProtectedError)), transaction.atomic():
            type(doomed).objects.filter(pk=doomed.pk).delete()
    assert refused("DELETE FROM referrals_reward WHERE id = %s", [unpaid.pk])
    assert refused("DELETE FROM referrals_payout WHERE id = %s", [payout.pk])
    # and their money and references never change
    assert refused("UPDATE referrals_reward SET amount = 0 WHERE id = %s", [unpaid.pk])
    assert refused(
        "UPDATE referrals_reward SET beneficiary_id = %s WHERE id = %s", [paid.client_id, unpaid.pk]
    )
    assert refused("UPDATE referrals_payout SET amount = 0 WHERE id = %s", [payout.pk])
    assert refused("UPDATE referrals_payout SET paid_by = 'X' WHERE id = %s", [payout.pk])
    assert refused(
        "UPDATE referrals_payoutbatch SET reference = 'X' WHERE id = %s", [payout.batch_id]
    )
    assert refused("DELETE FROM referrals_payoutbatch WHERE id = %s", [payout.batch_id])
    # a paid reward stays with its payout; an unpaid one can only be paid by a payout that exists
    assert refused("UPDATE referrals_reward SET payout_id = NULL WHERE id = %s", [reward.pk])
    assert refused("UPDATE referrals_reward SET payout_id = 999999 WHERE id = %s", [unpaid.pk])
    assert not refused(
        "UPDATE referrals_reward SET payout_id = %s WHERE id = %s", [payout.pk, unpaid.pk]
    )
    assert Reward.objects.count() == 2 and Payout.objects.get().amount == Decimal("5.00")


@pytest.mark.parametrize("target", ["expense", "rule", "referral", "partner", "client", "currency"])
def test_nothing_a_reward_names_can_be_deleted(paid, target):
    reward = Reward.objects.filter(payout__isnull=True).get()
    row = {
        "expense": reward.expense,
        "rule": reward.rule,
        "referral": reward.referral,
        "partner": paid.partner,
        "client": paid.client,
        "currency": reward.currency,
    }[target]
    # through the ORM (PROTECT, still enforced without a database constraint) ...
    with pytest.raises((ProtectedError, IntegrityError)), transaction.atomic():
        type(row).objects.filter(pk=row.pk).delete()
    # ... and by SQL, past the ORM (triggers, or the referral's and expense's own foreign keys)
    table = type(row)._meta.db_table
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [row.pk])
        # deferred foreign keys answer at commit: ask them now
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        else:
            connection.check_constraints()
    assert type(row).objects.filter(pk=row.pk).exists()


def test_what_no_reward_names_can_still_be_deleted():
    # given an expense and a rule that earned nothing
    expense = ExpenseFactory()
    rule = RuleFactory()
    # then they go as before
    expense.delete()
    rule.delete()
    assert not Expense.objects.filter(pk=expense.pk).exists()
    assert not Rule.objects.filter(pk=rule.pk).exists()


# Every reward agrees with the rows it names -----------------------------------------------------

money = st.decimals(min_value=Decimal("-20"), max_value=Decimal("500"), places=2)
expense_st = st.tuples(
    st.integers(min_value=0, max_value=3),  # which referral
    st.integers(min_value=-20, max_value=80),  # day from the program's start
    money,
    st.sampled_from(["USD", "JPY"]),
    st.booleans(),  # arrives after the first accrual run
)


def half_up(amount: Decimal, minor_units: int) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_units), rounding=ROUND_HALF_UP)


def reference_ledger(program, rules, referrals, expenses) -> set[tuple]:
    """The rows accrual must write, computed the obvious way: one per rule, expense and role."""
    roles = {
        "referrer": ["referrer"],
        "referee": ["referee"],
        "both": ["referrer", "referee"],
    }[program.rewarded]
    end = datetime.datetime.combine(program.end_date, datetime.time.max, tzinfo=datetime.UTC)
    rows = set()
    for expense in expenses:
        referral = referrals[expense.client_id]
        if not (
            expense.amount > 0
            and START <= expense.created_at <= end
            and expense.created_at >= referral.joined_at
        ):
            continue
        for rule in rules:
            if rule.reward_type == "fixed":
                if expense.currency.iso != "USD":
                    continue  # a fixed reward is in the program's currency only
                amount = rule.amount
            else:
                amount = half_up(expense.amount * rule.amount / 100, expense.currency.minor_units)
            for role in roles:
                credited = referral.partner_id if role == "referrer" else referral.client_id
                rows.add(
                    (rule.pk, expense.pk, role, credited, referral.pk, expense.currency_id, amount)
                )
    return rows


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rewarded=st.sampled_from(["referrer", "referee", "both"]),
    joined_days=st.lists(st.integers(min_value=-5, max_value=40), min_size=4, max_size=4),
    rule_kinds=st.lists(
        st.tuples(st.sampled_from(["percent", "fixed"]), st.sampled_from(["2.5", "10", "33"])),
        min_size=1,
        max_size=2,
    ),
    spent=st.lists(expense_st, max_size=12),
)
def test_accrual_writes_exactly_the_reference_ledger_in_any_order_of_arrival(
    rewarded, joined_days, rule_kinds, spent
):
    with transaction.atomic():
        usd = CurrencyFactory(iso="USD")
        jpy = CurrencyFactory(iso="JPY", name="Yen", minor_units=0)
        program = ReferralProgramFactory(
            start_date=START.date(),
            end_date=(START + datetime.timedelta(days=60)).date(),
            rewarded=rewarded,
            provider__currency=usd,
        )
        rules = [
            RuleFactory(program=program, reward_type=kind, amount=Decimal(amount))
            for kind, amount in rule_kinds
        ]
        partners = ClientFactory.create_batch(2, provider=program.provider)
        referrals = [
            ReferralFactory(
                program=program,
                partner=partners[i % 2],
                joined_at=START + datetime.timedelta(days=day),
            )
            for i, day in enumerate(joined_days)
        ]
        currencies = {"USD": usd, "JPY": jpy}

        def spend(rows):
            return [
                ExpenseFactory(
                    client=referrals[who].client,
                    amount=amount,
                    currency=currencies[iso],
                    created_at=START + datetime.timedelta(days=day),
                )
                for who, day, amount, iso, _ in rows
            ]

        # some expenses before a first run, the others (any dates: late ones too) after it
        made = spend([e for e in spent if not e[4]])
        rewards_accrue()
        made += spend([e for e in spent if e[4]])
        rewards_accrue()
        assert rewards_accrue() == 0
        got = {
            (
                r.rule_id,
                r.expense_id,
                r.role,
                r.beneficiary_id,
                r.referral_id,
                r.currency_id,
                r.amount,
            )
            for r in Reward.objects.filter(rule__program=program)
        }
        by_client = {r.client_id: r for r in referrals}
        for expense in made:
            expense.refresh_from_db()
        assert got == reference_ledger(program, rules, by_client, made)
        transaction.set_rollback(True)


# Deleting waits for accrual in flight (PostgreSQL) ----------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_deleting_an_expense_waits_for_an_accrual_statement_in_flight():
    # given an expense nothing names yet, and an accrual transaction that is writing
    expense = ExpenseFactory()
    writing, done = threading.Event(), threading.Event()

    def accrual_in_flight():
        from django.db import connections

        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [accrual.ACCRUAL_LOCK])
                writing.set()
                done.wait(10)
        finally:
            connections.close_all()

    worker = threading.Thread(target=accrual_in_flight)
    worker.start()
    try:
        assert writing.wait(10)
        # when the expense is deleted meanwhile, then the deletion waits (here: gives up)
        with (
            pytest.raises(OperationalError, match="lock timeout"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("SET LOCAL lock_timeout = '300ms'")
            cursor.execute("DELETE FROM billing_expense WHERE id = %s", [expense.pk])
    finally:
        done.set()
        worker.join()
    # and once accrual is done, it goes through
    expense.delete()
    assert not Expense.objects.filter(pk=expense.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_accrual_runs_write_each_reward_once():
    # given 40 referrals with 5 charges each and a rule, and chunks of 50 expenses
    program = ReferralProgramFactory(start_date=START.date())
    RuleFactory(program=program)
    for referral in ReferralFactory.create_batch(40, program=program):
        for _ in range(5):
            ExpenseFactory(client=referral.client, created_at=START)
    from tests.conftest import run_in_threads

    original = accrual.CHUNK_EXPENSES
    accrual.CHUNK_EXPENSES = 50
    try:
        # when four runs start at once, on their own connections
        added = run_in_threads(lambda _: rewards_accrue(), [1, 2, 3, 4])
    finally:
        accrual.CHUNK_EXPENSES = original
    # then every reward is written once, by one run or another, and nobody failed
    assert sum(added) == 200 == Reward.objects.count()
    assert Reward.objects.values("expense").distinct().count() == 200
