"""Moments a caller may name: the years the refusal states are exactly the years accepted."""

import datetime
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.moments import checked_moment


def stated_years() -> tuple[int, int]:
    with pytest.raises(ValueError) as refused:
        checked_moment(datetime.datetime(1, 6, 1, tzinfo=datetime.UTC))
    first, last = map(int, re.findall(r"\d{4}", str(refused.value)))
    return first, last


@given(year=st.integers(min_value=1, max_value=9999), offset=st.integers(-14, 14))
def test_a_moment_is_accepted_exactly_inside_the_years_the_message_states(year, offset):
    first, last = stated_years()
    zone = datetime.timezone(datetime.timedelta(hours=offset))
    for moment in (
        datetime.datetime(year, 1, 1, tzinfo=zone),
        datetime.datetime(year, 12, 31, 23, 59, 59, tzinfo=zone),
    ):
        if first <= year <= last:
            assert checked_moment(moment) == moment
        else:
            with pytest.raises(ValueError, match=f"{first}.*{last}"):
                checked_moment(moment)
