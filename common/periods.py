"""Calendar arithmetic for periods given as a count of days, months or years."""

import calendar
import datetime

MONTHS_IN = {"month": 1, "year": 12}


def add_months(moment: datetime.datetime, months: int) -> datetime.datetime:
    """Move by whole months, clamping to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def shift(moment: datetime.datetime, *, periodtype: str, length: int) -> datetime.datetime:
    """`moment` moved by `length` periods (negative goes back)."""
    if periodtype == "day":
        return moment + datetime.timedelta(days=length)
    return add_months(moment, length * MONTHS_IN[periodtype])


# The longest periods a rule may name: a hundred years in any unit. Longer ones cannot be
# shifted within the calendar (year 1 to 9999) from any date a rule is evaluated on.
MAX_PERIOD_LENGTH = {"day": 36_525, "month": 1_200, "year": 100}


def period_length_error(periodtype: str | None, length: int | None) -> str | None:
    """Why `length` `periodtype`s is not a period a rule may name, or None when it is."""
    if not periodtype or length is None:
        return None
    most = MAX_PERIOD_LENGTH.get(periodtype)
    if most is None:
        return f"The period type is one of {', '.join(MAX_PERIOD_LENGTH)}."
    if not 1 <= length <= most:
        return f"A period is 1 to {most} {periodtype}s."
    return None
