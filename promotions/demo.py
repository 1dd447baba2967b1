"""Believable promo-code activity for the demo: a few hundred codes, some used on past days."""

import datetime
import random
from decimal import Decimal

from django.utils import timezone

from billing.models import Client, Provider, Tariff
from common.actors import Actor
from promotions import services
from promotions.engine import Line, Order
from promotions.models import Discount, PromoCodeUsage, Promotion


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


def demo_overlapping_promotions(
    *, provider: Provider, actor: Actor, today: datetime.date
) -> list[Promotion]:
    """Three promotions that overlap on a line, each behind its code: STACK5 (combinable, 5%,
    priority 1), LOYAL10 (combinable, 10.00 off, a budget of 50.00 a day and 20.00 a client) and
    OLDPRICE (exclusive: the 12-month price kept at 200.00)."""
    made = []
    for name, code, fields, discount in (
        ("Stack 5%", "STACK5", {"priority": 1, "combine": "combinable"}, {"percentage": "5"}),
        (
            "Loyalty 10 off",
            "LOYAL10",
            {
                "combine": "combinable",
                "budget": Decimal("50"),
                "budget_period": Promotion.BudgetPeriod.DAY,
                "client_budget": Decimal("20"),
            },
            {"valuetype": Discount.ValueType.AMOUNT, "amount": "10"},
        ),
        (
            "Keep the old price",
            "OLDPRICE",
            {},
            {"valuetype": Discount.ValueType.PRICE, "amount": "200", "period": [12]},
        ),
    ):
        promotion = services.promotion_create(
            actor=actor, name=name, provider=provider, fromdate=today, **fields
        )
        services.discount_create(
            promotion=promotion,
            actor=actor,
            **{k: Decimal(v) if k in ("percentage", "amount") else v for k, v in discount.items()},
        )
        services.promocode_create(promotion=promotion, actor=actor, code=code)
        made.append(promotion)
    return made
