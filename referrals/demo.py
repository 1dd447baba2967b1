"""Believable referral activity for the demo: partners, referrals, a month and more of rewards."""

import datetime
import random
from decimal import Decimal

from django.utils import timezone

from billing.models import Client
from billing.services import expense_create
from common.actors import Actor
from referrals import services
from referrals.accrual import rewards_accrue
from referrals.models import Referral, ReferralProgram, partner_code, partner_link


def demo_referral_activity(
    *, program: ReferralProgram, partners: list[Client], actor: Actor, per_partner: int = 4
) -> int:
    """Enrol the partners, attach `per_partner` referred clients to each, give the referred clients
    charges over the last 45 days, accrue the rewards and pay the first partner."""
    rng = random.Random(11)
    now = timezone.now()
    currency = program.provider.currency
    for partner in partners:
        services.partner_enrol(program=program, partner=partner, actor=actor)
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
    services.payouts_create(
        program=program, partner=partners[0], reference="DEMO-PAYOUT-1", actor=actor
    )
    return added
