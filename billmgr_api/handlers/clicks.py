"""Partner links on the func door, as BILLmanager 6 has them: `referralprogram.registerclick`
records that a visitor followed a partner's link (`p` = the link) and answers the click id
(`cntid`); registering the visitor (`account.edit` with `sok`) then names that click as `sesid`,
or the partner as `partner`. The rules (which program a link or a partner means, the attachment
and its fraud screens) are referrals' (services.link_click_record_by_link,
services.registration_attach); the door converts its parameters and errors."""

import secrets

from django.core.exceptions import ValidationError

from billing.models import Client
from billmgr_api.errors import FuncError
from billmgr_api.registry import func
from billmgr_api.request import FuncRequest
from billmgr_api.results import FuncResult
from common.actors import Actor
from common.throttle import Throttled, throttle_take
from referrals import services
from referrals.models import Referral

# The referrals services' names for what the door calls `sesid` and `partner`.
REGISTRATION_PARAMS = {"visitor": "sesid", "partner": "partner"}


@func("referralprogram.registerclick", public=True)
def register_click(req: FuncRequest) -> FuncResult:
    """`p` = the link followed (URL-encoded); answers the click id as `cntid`. Every click counts
    against the caller's address (THROTTLE_CLICK_REQUESTS per THROTTLE_CLICK_SECONDS), which the
    click keeps for the fraud screens."""
    try:
        throttle_take(scope="click", keys=[f"ip:{req.ip or 'unknown'}"])
    except Throttled as exc:
        raise FuncError(
            "limit", "p", f"Too many link clicks; try again in {exc.retry_after} seconds"
        ) from None
    link = req.get("p").strip()
    if not link:
        raise FuncError("empty", "p", "p is required: the link the visitor followed")
    try:
        click = services.link_click_record_by_link(
            link=link, visitor=secrets.token_hex(16), address=req.ip
        )
    except ValidationError as exc:
        raise FuncError("value", "p", f"p: {' '.join(exc.messages)}") from None
    return FuncResult.ok(cntid=click.visitor)


def registered_by_link(
    *, client: Client, sesid: str, partner_id: int | None, actor: Actor
) -> Referral | None:
    """Attach a client being registered to the partner of click `sesid` (or to `partner_id`):
    a refusal by the attachment's rules leaves the client unattached, a click or partner that does
    not exist is a `value` error (and nothing is saved)."""
    try:
        return services.registration_attach(
            client=client, actor=actor, visitor=sesid, partner_id=partner_id
        )
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        param = REGISTRATION_PARAMS.get(field, field)
        raise FuncError("value", param, " ".join(messages)) from None
