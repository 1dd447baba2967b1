from decimal import ROUND_HALF_UP, Decimal

MONEY_MAX_DIGITS = 20
MONEY_DECIMAL_PLACES = 4


def money_round(amount: Decimal, *, minor_units: int, rounding: str = ROUND_HALF_UP) -> Decimal:
    """Round to the currency's minor unit; the one place where money is rounded."""
    return amount.quantize(Decimal(1).scaleb(-minor_units), rounding=rounding)
