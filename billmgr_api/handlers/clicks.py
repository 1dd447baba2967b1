"""Partner links on the func door, as BILLmanager 6 has them: `referralprogram.registerclick`
records that a visitor followed a partner's link (`p` = the link) and answers the click id
(`cntid`); registering the visitor (`account.edit` with `sok`) then names that click as `sesid`,
or the partner as `partner`, and the new client is attached under the REST attachment's rules."""

import secrets
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ValidationError

from billing.models import Client
from billmgr_api.errors import FuncError
from billmgr_api.fields import is_whole
from billmgr_api.registry import func
from billmgr_api.request import FuncRequest
from billmgr_api.results import FuncResult
from common.actors import Actor
from common.throttle import Throttled, throttle_take
from referrals import services
from referrals.models import LinkClick, Partnership, Referral, ReferralProgram

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalised_url(url: str) -> tuple:
    """What two spellings of one page share: scheme and host in lower case, no default port, no
    trailing slash, the query's parameters but `from` in order, no fragment."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port == DEFAULT_PORTS.get(scheme):
        port = None
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "from"]
    return scheme, parts.hostname or "", port, parts.path.rstrip("/"), tuple(query)


def _link_target(link: str) -> tuple[ReferralProgram, int]:
    """The program whose URL the link is, and the partner its `from` names; a `value` error on
    `p` for anything else."""
    if "://" not in link and "%3a%2f%2f" in link.lower():
        link = unquote(link)  # sent encoded twice
    parts = urlsplit(link)
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        raise FuncError("value", "p", "p is the link the visitor followed: http(s)://...?from=ID")
    froms = [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == "from"]
    if len(froms) != 1 or not is_whole(froms[0]) or len(froms[0]) > 18:
        raise FuncError("value", "p", "p must carry one ?from=PARTNER_ID")
    partner_id, page = int(froms[0]), normalised_url(link)
    programs = [
        program
        for program in ReferralProgram.objects.exclude(url="").order_by("pk")
        if normalised_url(program.url) == page
    ]
    partner = Client.objects.filter(
        pk=partner_id, provider_id__in=[p.provider_id for p in programs]
    ).first()
    if partner is None:
        raise FuncError("value", "p", "p is no partner link of a referral program")
    programs = [p for p in programs if p.provider_id == partner.provider_id]
    enrolled = set(
        Partnership.objects.filter(partner=partner, program__in=programs).values_list(
            "program_id", flat=True
        )
    )
    return sorted(programs, key=lambda p: (p.pk not in enrolled, p.pk))[0], partner_id


@func("referralprogram.registerclick", public=True)
def register_click(req: FuncRequest) -> FuncResult:
    """`p` = the link followed (URL-encoded); answers the click id as `cntid`. Every click counts
    against the caller's address (THROTTLE_CLICK_REQUESTS per THROTTLE_CLICK_SECONDS)."""
    try:
        throttle_take(scope="click", keys=[f"ip:{req.ip or 'unknown'}"])
    except Throttled as exc:
        raise FuncError(
            "limit", "p", f"Too many link clicks; try again in {exc.retry_after} seconds"
        ) from None
    link = req.get("p").strip()
    if not link:
        raise FuncError("empty", "p", "p is required: the link the visitor followed")
    program, partner_id = _link_target(link)
    try:
        click = services.link_click_record(
            program=program, partner_id=partner_id, visitor=secrets.token_hex(16)
        )
    except ValidationError:
        raise FuncError("value", "p", "p is no partner link of a referral program") from None
    return FuncResult.ok(cntid=click.visitor)


def _program_of_partner(client: Client, partner_id: int) -> ReferralProgram:
    """The program a bare partner id means for a new client: one the partner is enrolled in at
    the client's provider, else that provider's default program."""
    enrolled = Partnership.objects.filter(
        partner_id=partner_id, program__provider_id=client.provider_id
    ).order_by("pk")
    found = enrolled.select_related("program").first()
    if found is not None:
        return found.program
    default = ReferralProgram.objects.filter(
        provider_id=client.provider_id, assign_by_default=True
    ).first()
    if default is None:
        raise FuncError("value", "partner", f"partner {partner_id} is in no referral program")
    return default


def registered_by_link(
    *, client: Client, sesid: str, partner_id: int | None, actor: Actor
) -> Referral | None:
    """Attach a client being registered to the partner of click `sesid` (or to `partner_id`),
    under the REST attachment's rules; a refusal by those rules leaves the client unattached,
    a click or partner that does not exist is a `value` error (and nothing is saved)."""
    try:
        if sesid:
            if not LinkClick.objects.filter(visitor=sesid).exists():
                raise FuncError("value", "sesid", f"There is no link click {sesid!r}")
            return services.referral_attach_by_click(client=client, visitor=sesid, actor=actor)
        if partner_id is not None:
            if not Client.objects.filter(pk=partner_id, provider_id=client.provider_id).exists():
                raise FuncError("value", "partner", f"There is no partner {partner_id}")
            return services.referral_attach(
                client=client,
                partner_id=partner_id,
                program=_program_of_partner(client, partner_id),
                source=Referral.Source.LINK,
                actor=actor,
            )
    except services.AttachRefused:
        return None
    return None
