"""The one date and date-time format the admin shows (common.money.MOMENT_FORMAT in Python):
ISO dates, 24-hour times and the time zone named."""

DATE_FORMAT = SHORT_DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
TIME_FORMAT = "H:i"
