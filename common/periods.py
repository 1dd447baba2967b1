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
