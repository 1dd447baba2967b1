"""Believable promo-code activity for the demo: a few hundred codes, some used on past days."""

import datetime
import random

from django.utils import timezone

from billing.models import Client, Tariff
from common.actors import Actor
from promotions import services
from promotions.engine import Line, Order
from promotions.models import PromoCodeUsage, Promotion


def demo_code_uses(*, promotion: Promotion, tariff: Tariff, actor: Actor, uses: int = 60) -> int:
    """Generate 300 codes and redeem `uses` of them by new clients, spread over the last 30 days.

    Redemptions always happen at the server's now; the demo then dates them back so the
    promotion's uses-per-day chart has a month to show.
    """
    services.promocodes_generate(
        promotion=promotion,
        actor=actor,
        template="DEMO-??????",
        count=300,
        digits_only=False,
        uselimit=3,
    )
    codes = list(promotion.promocodes.filter(code__startswith="DEMO-").order_by("pk")[:uses])
    rng = random.Random(7)
    now = timezone.now()
    for i, code in enumerate(codes):
        client = Client.objects.create(
            name=f"Shopper {i + 1}",
            email=f"shopper{i + 1}@example.com",
            provider=promotion.provider,
            registration_date=now - datetime.timedelta(days=40),
        )
        order = Order(
            client_id=client.pk,
            provider_id=promotion.provider_id,
            at=now,
            lines=(Line(tariff.pk, 12, tariff.price * 12, promotion.provider.currency.iso),),
            codes=(code.code,),
        )
        redemption, _ = services.redemption_redeem(
            order=order, idempotency_key=f"demo-{code.code}", actor=actor
        )
        when = now - datetime.timedelta(days=rng.randint(0, 29), hours=rng.randint(0, 12))
        PromoCodeUsage.objects.filter(redemption=redemption).update(created_at=when)
    return len(codes)
