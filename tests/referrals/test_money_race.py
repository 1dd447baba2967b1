"""Accrual racing payouts on PostgreSQL, with real parallel connections: while refunds are being
reversed, payments run at once for the same partners. Nothing is paid twice, nothing reversed
stays paid: every payout is exactly its rows, and once settled each partner has been paid exactly
what their purchases earned net of refunds."""

import datetime
import random
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db.models import Count, Sum

from billing.models import Expense
from billing.services import expense_create
from common.actors import Actor
from referrals import accrual, services
from referrals.accrual import rewards_accrue
from referrals.models import Payout, Reward
from tests.conftest import run_in_threads
from tests.factories import ExpenseFactory, ReferralFactory, ReferralProgramFactory, RuleFactory

ACTOR = Actor.system("race")
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def expected_net(reward: Reward) -> Decimal:
    """What a reward is worth once its charge's refunds are given back: the reversals of a
    charge add up to the share of what was refunded (rounded half up), the whole once refunded in
    whole."""
    charge = reward.expense
    if charge.refunded >= charge.amount:
        return Decimal(0)
    share = (reward.amount * charge.refunded / charge.amount).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    return reward.amount - share


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_accrual_racing_payouts_never_pays_twice_nor_pays_what_was_reversed(monkeypatch):
    rng = random.Random(17)
    monkeypatch.setattr(accrual, "CHUNK_EXPENSES", 20)  # many short transactions to interleave
    program = ReferralProgramFactory(start_date=START.date())
    RuleFactory(program=program, amount=Decimal("10"))
    referrals = []
    for _ in range(4):
        first = ReferralFactory(program=program)
        referrals += [
            first,
            *ReferralFactory.create_batch(2, program=program, partner=first.partner),
        ]
    pairs = [(program, p) for p in {r.partner for r in referrals}]
    charges = []

    def buy(count):
        for _ in range(count):
            referral = rng.choice(referrals)
            charges.append(
                ExpenseFactory(
                    client=referral.client,
                    amount=Decimal(rng.choice(["9.99", "20.00", "33.33", "120.00"])),
                    currency=program.provider.currency,
                    created_at=START,
                )
            )

    buy(60)
    rewards_accrue()
    for round_ in range(4):
        # refunds (whole or in part) of charges, some of them paid already, and new charges
        for charge in rng.sample(charges, 12):
            charge.refresh_from_db()
            left = charge.amount - charge.refunded
            part = left if rng.random() < 0.5 else (left / 3).quantize(Decimal("0.01"))
            if part > 0:
                expense_create(refunds=charge, amount=-part, actor=ACTOR)
        buy(20)

        def work(job, round_=round_):
            if job == "accrue":
                return rewards_accrue()
            return services.payouts_create_many(
                partners=pairs, reference=f"R{round_}-{job}", actor=ACTOR
            )

        # when accrual and three payments of the same partners run at once
        run_in_threads(work, ["accrue", "a", "b", "c"])

    # settle: what is left accrues and is paid
    rewards_accrue()
    services.payouts_create_many(partners=pairs, reference="SETTLE", actor=ACTOR)

    # then every payout is exactly the rows it took, none counted twice
    for payout in Payout.objects.annotate(rows=Count("rewards"), total=Sum("rewards__amount")):
        assert (payout.amount, payout.rewards_count) == (payout.total, payout.rows)
    assert (
        Payout.objects.aggregate(s=Sum("amount"))["s"]
        == Reward.objects.filter(payout__isnull=False).aggregate(s=Sum("amount"))["s"]
    )
    # and the ledger is exactly what the purchases earned net of their refunds
    originals = Reward.objects.filter(reverses__isnull=True).select_related("expense")
    by_partner: dict[int, Decimal] = {}
    for reward in originals:
        by_partner[reward.beneficiary_id] = by_partner.get(
            reward.beneficiary_id, Decimal(0)
        ) + expected_net(reward)
    assert Expense.objects.filter(refunds__isnull=False).exists()
    assert Reward.objects.filter(reverses__isnull=False).exists()
    for partner_id, net in by_partner.items():
        paid = Payout.objects.filter(partner_id=partner_id).aggregate(s=Sum("amount"))["s"] or 0
        rows = Reward.objects.filter(beneficiary_id=partner_id)
        assert rows.aggregate(s=Sum("amount"))["s"] == net
        # once settled, a partner was paid what they earned net, or owes a deduction still
        unpaid = rows.filter(payout__isnull=True).aggregate(s=Sum("amount"))["s"] or 0
        assert paid + unpaid == net and unpaid <= 0
