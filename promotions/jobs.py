"""Promotion work that the admin runs in the background."""

from typing import Any

from django.conf import settings
from django.db import transaction

from common.actors import Actor
from common.jobs import job_kind
from promotions import services
from promotions.models import Promotion

GENERATE_CODES = "promotion.promocode.generate"


def background_from() -> int:
    """From how many codes the admin generates in the background (setting PROMOCODES_BACKGROUND_FROM)."""
    return int(getattr(settings, "PROMOCODES_BACKGROUND_FROM", 500))


@job_kind(GENERATE_CODES)
def generate_codes(params: dict[str, Any], actor: Actor, progress) -> str:
    """All the promotions' codes or none: one transaction, like the request it replaces."""
    total = 0
    with transaction.atomic():
        for promotion in Promotion.objects.filter(pk__in=params["promotions"]).order_by("pk"):
            total += services.promocodes_generate(
                promotion=promotion,
                actor=actor,
                template=params["template"],
                count=params["count"],
                digits_only=params["onlydigit"],
                uselimit=params["uselimit"],
                account_uselimit=params["account_uselimit"],
                progress=lambda n, before=total: progress(before + n),
            )
            progress(total)
    return f"{total} promo code(s) generated."
