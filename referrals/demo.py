"""Believable referral activity for the demo: partners, referrals, a month and more of rewards."""

import datetime
import random
from decimal import Decimal

from django.utils import timezone

from billing.models import Client, Expense
from billing.services import expense_create
from common.actors import Actor
from referrals import services
from referrals.accrual import rewards_accrue
from referrals.models import Referral, ReferralProgram, partner_code, partner_link


def demo_referral_activity(
    *, program: ReferralProgram, partners: list[Client], actor: Actor, per_partner: int = 4
) -> int:
    """Enrol the partners (the first with payout details), hold rewards for 14 days and pay 10 USD
    at least, attach `per_partner` referred clients to each, give the referred clients charges over
    the last 45 days, accrue the rewards, pay the first partner (batch DEMO-PAYOUT-1, marked sent),
    then refund a charge that reward was paid on, so the next payout deducts it."""
    rng = random.Random(11)
    now = timezone.now()
    currency = program.provider.currency
    program = services.program_update(
        program=program, actor=actor, hold_days=14, payout_minimum=Decimal("10")
    )
    for partner in partners:
        services.partner_enrol(program=program, partner=partner, actor=actor)
    services.payout_details_set(
        program=program, partner=partners[0], details="DE89 3704 0044 0532 0130 00", actor=actor
    )
    for partner in partners:
        for n in range(per_partner):
            client = Client.objects.create(
                name=f"{partner.name}'s friend {n + 1}",
                email=f"{partner.name.lower()}.friend{n + 1}@example.com",
                provider=program.provider,
                registration_date=now - datetime.timedelta(days=50),
            )
            source = rng.choice([Referral.Source.LINK, Referral.Source.PROMOCODE])
            Referral.objects.create(
                program=program,
                partner=partner,
                client=client,
                source=source,
                via=partner_link(program, partner.pk)
                if source == Referral.Source.LINK
                else partner_code(program, partner.pk),
                joined_at=now - datetime.timedelta(days=48),
            )
            for _ in range(rng.randint(2, 5)):
                expense_create(
                    client=client,
                    amount=Decimal(rng.choice(["5.00", "20.00", "60.00", "240.00"])),
                    currency=currency,
                    created_at=now - datetime.timedelta(days=rng.randint(0, 45)),
                )
    added = rewards_accrue(program=program)
    paid = services.payouts_create(
        program=program, partner=partners[0], reference="DEMO-PAYOUT-1", actor=actor
    )
    services.payout_batch_mark(batch=paid.batch, status="sent", actor=actor)
    # A refund of half a charge whose reward has just been paid: its reversal is deducted next.
    charge = Expense.objects.filter(rewards__payout__in=paid.payouts).order_by("pk").first()
    expense_create(
        client=charge.client,
        amount=-(charge.amount / 2),
        currency=charge.currency,
        refunds=charge,
        actor=actor,
    )
    return added + rewards_accrue(program=program)
