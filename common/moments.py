"""Moments a caller may name (`at` of a quote): inside a range every date shift of the engine can
take. `datetime` itself reaches years 1 to 9999, but an offset can push a moment past either end
(`0001-01-01T00:00:00+05:00` has no UTC), and a condition's period counted back from year 1
overflows; a moment outside these years is refused at the door as a bad value. The years are
whole ones, so a moment at either end plus or minus any offset stays a valid datetime."""

import datetime

from django.utils import timezone

FIRST_YEAR, LAST_YEAR = 1901, 2999
OUT_OF_RANGE = f"at must fall in the years {FIRST_YEAR} to {LAST_YEAR}"


def checked_moment(moment: datetime.datetime) -> datetime.datetime:
    """The moment, aware (naive ones are read in the server's zone); ValueError when its year is
    outside FIRST_YEAR-LAST_YEAR."""
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ValueError(OUT_OF_RANGE)
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment
