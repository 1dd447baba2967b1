"""The checks a promo code must pass for a client at a moment, in the order they are reported."""

from collections.abc import Callable

from django.utils import timezone

from common.periods import shift
from promotions.engine.facts import ClientFacts
from promotions.models import PromoCode


def _window(code: PromoCode, facts: ClientFacts) -> str | None:
    if code.active_time_type != PromoCode.ActiveTimeType.PERIOD:
        return None
    day = timezone.localdate(facts.at)
    if day < code.fromdate:
        return f"code {code.code} is valid from {code.fromdate}"
    if day > code.todate:
        return f"code {code.code} expired on {code.todate}"
    return None


def _uselimit(code: PromoCode, facts: ClientFacts) -> str | None:
    if code.uselimit is not None and code.use_count >= code.uselimit:
        return f"code {code.code} has been used up ({code.use_count} of {code.uselimit})"
    return None


def _account_uselimit(code: PromoCode, facts: ClientFacts) -> str | None:
    use = facts.code_uses.get(code.pk)
    if code.account_uselimit is not None and use and use.live_uses >= code.account_uselimit:
        return f"code {code.code} may be used {code.account_uselimit} time(s) per client"
    return None


def _discount_period(code: PromoCode, facts: ClientFacts) -> str | None:
    if code.expiretype != PromoCode.ExpireType.PERIOD:
        return None
    use = facts.code_uses.get(code.pk)
    if use and use.first_use:
        ends = shift(use.first_use, periodtype=code.periodtype, length=code.periodlength)
        if ends < facts.at:
            return f"code {code.code} gave its discount for {code.periodlength} {code.periodtype}(s) from first use, until {ends:%Y-%m-%d}"
    return None


CODE_CHECKS: list[Callable[[PromoCode, ClientFacts], str | None]] = [
    _window,
    _uselimit,
    _account_uselimit,
    _discount_period,
]


def code_refusal(code: PromoCode, facts: ClientFacts) -> str | None:
    """Why the client may not use the code now, or None when it may."""
    for rule in CODE_CHECKS:
        reason = rule(code, facts)
        if reason:
            return reason
    return None
