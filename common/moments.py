"""Moments a caller may name (`at` of a quote): inside a range every date shift of the engine can
take. `datetime` itself reaches years 1 to 9999, but an offset can push a moment past either end
(`0001-01-01T00:00:00+05:00` has no UTC), and a condition's period counted back from year 1
overflows; a moment outside these years is refused at the door as a bad value."""

import datetime

from django.utils import timezone

EARLIEST = datetime.datetime(1900, 1, 1, tzinfo=datetime.UTC)
LATEST = datetime.datetime(3000, 1, 1, tzinfo=datetime.UTC)


def checked_moment(moment: datetime.datetime) -> datetime.datetime:
    """The moment, aware (naive ones are read in the server's zone); ValueError when outside
    1900-3000 or not representable in UTC."""
    if EARLIEST.year + 1 > moment.year or moment.year > LATEST.year - 1:
        raise ValueError(f"at must fall between {EARLIEST:%Y} and {LATEST:%Y}")
    aware = timezone.make_aware(moment) if timezone.is_naive(moment) else moment
    try:
        aware.astimezone(datetime.UTC)
    except OverflowError:
        raise ValueError(f"at must fall between {EARLIEST:%Y} and {LATEST:%Y}") from None
    return aware
