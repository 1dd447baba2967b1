import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

MONEY_MAX_DIGITS = 20
MONEY_DECIMAL_PLACES = 4

# The one way a moment is shown to people: local time with its zone (`2026-11-29 14:05 CET`).
MOMENT_FORMAT = "%Y-%m-%d %H:%M %Z"


def money_round(amount: Decimal, *, minor_units: int, rounding: str = ROUND_HALF_UP) -> Decimal:
    """Round to the currency's minor unit; the one place where money is rounded."""
    return amount.quantize(Decimal(1).scaleb(-minor_units), rounding=rounding)


def money_format(amount: Decimal | int | str, currency: str, *, minor_units: int = 2) -> str:
    """The one way an amount is shown to people: `1,234.50 USD`, `-300 JPY`.

    To the currency's minor unit with thousands separators and the code after the amount; a
    fraction below the minor unit (a fixed reward may carry one) is shown, never rounded away.
    """
    amount = Decimal(amount)
    rounded = money_round(amount, minor_units=minor_units)
    if rounded != amount:
        places = max(-amount.normalize().as_tuple().exponent, minor_units)
        rounded = amount.quantize(Decimal(1).scaleb(-places))
    places = max(-rounded.as_tuple().exponent, 0)
    text = f"{rounded:,.{places}f}"
    return f"{text} {currency}".strip()


def moment_format(moment: datetime.datetime | None) -> str:
    """A moment in the current time zone with the zone named; empty for none."""
    if moment is None:
        return ""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return timezone.localtime(moment).strftime(MOMENT_FORMAT)
