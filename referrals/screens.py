"""Fraud screens on attaching a referred client, one class each behind a registry (as condition
and reward types are): who refers themselves, by id or by their own e-mail under another spelling,
a partner in the program's restricted group, and one address attaching many clients by one
partner's link in a day. A refusal by a screen names its reason and is recorded for the operator
(AttachmentRefusal, see services.referral_attach).
"""

import datetime
from dataclasses import dataclass

from billing.models import Client
from referrals.models import AttachmentRefusal, Referral, ReferralProgram

Screen = AttachmentRefusal.Screen

# How the big mail providers read a mailbox's local part: (the domain they all mean, whether dots
# are ignored, the separator after which a tag is ignored). Other domains: case only.
MAILBOXES: dict[str, tuple[str, bool, str]] = {
    "gmail.com": ("gmail.com", True, "+"),
    "googlemail.com": ("gmail.com", True, "+"),
    "outlook.com": ("outlook.com", False, "+"),
    "hotmail.com": ("outlook.com", False, "+"),
    "live.com": ("outlook.com", False, "+"),
    "msn.com": ("outlook.com", False, "+"),
    "icloud.com": ("icloud.com", False, "+"),
    "me.com": ("icloud.com", False, "+"),
    "mac.com": ("icloud.com", False, "+"),
    "yahoo.com": ("yahoo.com", False, "-"),
    "proton.me": ("proton.me", False, "+"),
    "protonmail.com": ("proton.me", False, "+"),
    "pm.me": ("proton.me", False, "+"),
    "fastmail.com": ("fastmail.com", False, "+"),
    "yandex.ru": ("yandex.ru", False, "+"),
    "yandex.com": ("yandex.ru", False, "+"),
    "ya.ru": ("yandex.ru", False, "+"),
}

# The window of the address screen.
ADDRESS_WINDOW = datetime.timedelta(days=1)


def normalised_email(email: str) -> str:
    """The mailbox an address reaches: lower case, and for the big providers without the dots or
    the tag they ignore (`J.Doe+promo@GoogleMail.com` -> `jdoe@gmail.com`); "" for none."""
    email = (email or "").strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or not local:
        return email
    rule = MAILBOXES.get(domain)
    if rule is None:
        return email
    domain, dots_ignored, tag = rule
    local = local.split(tag, 1)[0]
    if dots_ignored:
        local = local.replace(".", "")
    return f"{local}@{domain}"


@dataclass(frozen=True)
class Attempt:
    """An attachment about to be made: the rows are locked (partner and client, in id order)."""

    program: ReferralProgram
    partner: Client
    client: Client
    source: str
    address: str | None
    at: datetime.datetime


class FraudScreen:
    screen: str = ""

    def refusal(self, attempt: Attempt) -> str | None:
        """Why the attempt is refused, or None when this screen lets it through."""
        raise NotImplementedError


class SelfReferral(FraudScreen):
    screen = Screen.SELF

    def refusal(self, attempt):
        if attempt.partner.pk == attempt.client.pk:
            return "a client cannot refer themselves"
        return None


class SameEmail(FraudScreen):
    screen = Screen.SAME_EMAIL

    def refusal(self, attempt):
        mine = normalised_email(attempt.partner.email)
        if mine and mine == normalised_email(attempt.client.email):
            return "the referred client's e-mail is the partner's own"
        return None


class RestrictedPartner(FraudScreen):
    screen = Screen.RESTRICTED_PARTNER

    def refusal(self, attempt):
        restricted = attempt.program.account_group_restrict_id
        if restricted and attempt.partner.groups.filter(pk=restricted).exists():
            return "the partner is in the program's restricted group"
        return None


class AddressLimit(FraudScreen):
    """Counted after the partner's row is locked: every attachment to a partner queues on it, so
    the count is exact under any concurrency."""

    screen = Screen.ADDRESS_LIMIT

    def refusal(self, attempt):
        limit = attempt.program.link_attachments_per_address
        if limit is None or not attempt.address or attempt.source != Referral.Source.LINK:
            return None
        recent = Referral.objects.filter(
            program=attempt.program,
            partner=attempt.partner,
            source=Referral.Source.LINK,
            address=attempt.address,
            joined_at__gt=attempt.at - ADDRESS_WINDOW,
            joined_at__lte=attempt.at,
        ).count()
        if recent >= limit:
            return (
                f"the partner's link has attached {recent} clients from {attempt.address} in a "
                f"day, the most the program allows"
            )
        return None


SCREENS: list[FraudScreen] = [SelfReferral(), SameEmail(), RestrictedPartner(), AddressLimit()]
assert {s.screen for s in SCREENS} == set(Screen.values), "every screen has its class"


def screened(attempt: Attempt) -> tuple[str, str] | None:
    """The first screen that refuses the attempt and why, or None."""
    for screen in SCREENS:
        reason = screen.refusal(attempt)
        if reason:
            return screen.screen, reason
    return None
