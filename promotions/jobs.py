"""Promotion work run in the background: big code generations from the admin and the func door."""

import datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from common.actors import Actor
from common.jobs import job_kind, job_start
from common.models import Job
from promotions import services
from promotions.models import PromoCode, Promotion

GENERATE_CODES = "promotion.promocode.generate"


def background_from() -> int:
    """From how many codes a generation runs in the background (setting PROMOCODES_BACKGROUND_FROM)."""
    return int(getattr(settings, "PROMOCODES_BACKGROUND_FROM", 500))


def generate_codes_start(
    *,
    promotions: list[Promotion],
    template: str,
    count: int,
    onlydigit: bool,
    actor: Actor,
    code_settings: dict[str, Any],
    back: str = "",
    links: list[tuple[str, str]] = (),
) -> Job:
    """Check the generation now (a refusal is the caller's to show), then run it in the
    background once the caller's transaction commits."""
    for promotion in promotions:
        services.promocodes_generate_check(
            promotion=promotion,
            template=template,
            count=count,
            digits_only=onlydigit,
            **code_settings,
        )
    total = count * len(promotions)
    params = {
        "promotions": sorted(p.pk for p in promotions),
        "template": template,
        "count": count,
        "onlydigit": onlydigit,
        "settings": {
            k: v.isoformat() if isinstance(v, datetime.date) else v
            for k, v in code_settings.items()
        },
        "back": back,
        # Where the result is read once the job is done: (text, address) pairs.
        "links": [list(link) for link in links],
        "title": f"Generating {total} promo codes from {template}",
    }
    return job_start(kind=GENERATE_CODES, params=params, total=total, actor=actor)


@job_kind(GENERATE_CODES)
def generate_codes(params: dict[str, Any], actor: Actor, progress) -> str:
    """All the promotions' codes or none: one transaction, like the request it replaces."""
    # Jobs queued by an older version carry the two limits beside the template.
    legacy = {k: params[k] for k in ("uselimit", "account_uselimit") if params.get(k) is not None}
    code_settings = {
        name: PromoCode._meta.get_field(name).to_python(value)
        for name, value in params.get("settings", legacy).items()
    }
    total = 0
    with transaction.atomic():
        for promotion in Promotion.objects.filter(pk__in=params["promotions"]).order_by("pk"):
            total += services.promocodes_generate(
                promotion=promotion,
                actor=actor,
                template=params["template"],
                count=params["count"],
                digits_only=params["onlydigit"],
                progress=lambda n, before=total: progress(before + n),
                **code_settings,
            )
            progress(total)
    return f"{total} promo code(s) generated."
