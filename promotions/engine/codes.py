"""The checks a promo code must pass for a client at a moment, in the order they are reported.

Codes are not compiled (a promotion may hold millions, and their counters move with every
redemption): the codes an order names are read per quote, as plain rows.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from django.utils import timezone

from common.periods import period_length_error, shift
from promotions.engine.facts import ClientFacts
from promotions.models import PromoCode


@dataclass(frozen=True)
class CodeRow:
    id: int
    code: str
    promotion_id: int
    provider_id: int
    use_count: int
    # PromoCode.SETTINGS, in that order:
    uselimit: int | None
    account_uselimit: int | None
    active_time_type: str
    fromdate: datetime.date | None
    todate: datetime.date | None
    expiretype: str
    periodtype: str
    periodlength: int | None

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id",
        "code",
        "promotion_id",
        "promotion__provider_id",
        "use_count",
        *PromoCode.SETTINGS,
    )


def _window(code: CodeRow, facts: ClientFacts) -> str | None:
    if code.active_time_type != "period":
        return None
    day = timezone.localdate(facts.at)
    if day < code.fromdate:
        return f"code {code.code} is valid from {code.fromdate}"
    if day > code.todate:
        return f"code {code.code} expired on {code.todate}"
    return None


def _uselimit(code: CodeRow, facts: ClientFacts) -> str | None:
    if code.uselimit is not None and code.use_count >= code.uselimit:
        return f"code {code.code} has been used up ({code.use_count} of {code.uselimit})"
    return None


def _account_uselimit(code: CodeRow, facts: ClientFacts) -> str | None:
    use = facts.code_uses.get(code.id)
    if code.account_uselimit is not None and use and use.live_uses >= code.account_uselimit:
        return f"code {code.code} may be used {code.account_uselimit} time(s) per client"
    return None


def _discount_period(code: CodeRow, facts: ClientFacts) -> str | None:
    if code.expiretype != "period":
        return None
    broken = period_length_error(code.periodtype, code.periodlength)
    if broken:
        return f"code {code.code} cannot be used: its discount period is wrong ({broken})"
    use = facts.code_uses.get(code.id)
    if use and use.first_use:
        ends = shift(use.first_use, periodtype=code.periodtype, length=code.periodlength)
        if ends < facts.at:
            return f"code {code.code} gave its discount for {code.periodlength} {code.periodtype}(s) from first use, until {ends:%Y-%m-%d}"
    return None


CODE_CHECKS: list[Callable[[CodeRow, ClientFacts], str | None]] = [
    _window,
    _uselimit,
    _account_uselimit,
    _discount_period,
]


def code_refusal(code: CodeRow, facts: ClientFacts) -> str | None:
    """Why the client may not use the code now, or None when it may."""
    for rule in CODE_CHECKS:
        reason = rule(code, facts)
        if reason:
            return reason
    return None
