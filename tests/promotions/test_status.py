"""One definition of "live": Promotion.objects.live(day) / with_status and status_on agree."""

import datetime
import itertools

import pytest

from promotions.models import Promotion
from tests.factories import PromotionFactory

pytestmark = pytest.mark.django_db
DAY = datetime.date(2026, 6, 15)
ONE = datetime.timedelta(days=1)


def test_the_queryset_and_the_model_method_give_every_promotion_the_same_status():
    # given promotions starting and ending around DAY, archived or not
    starts = [DAY - ONE, DAY, DAY + ONE]
    ends = [None, DAY - ONE, DAY, DAY + ONE, DAY + 2 * ONE]
    for start, end, archived in itertools.product(starts, ends, [False, True]):
        if end is None or end >= start:
            PromotionFactory(fromdate=start, todate=end, archived=archived)
    # then on each day around DAY, each promotion is in exactly the queryset of its status
    for day in (DAY - ONE, DAY, DAY + ONE, DAY + 2 * ONE):
        for promotion in Promotion.objects.all():
            status = promotion.status_on(day)
            found = {
                s
                for s in Promotion.Status.values
                if Promotion.objects.with_status(s, day).filter(pk=promotion.pk).exists()
            }
            assert found == {status}, (promotion.fromdate, promotion.todate, day)
        assert set(Promotion.objects.live(day)) == {
            p for p in Promotion.objects.all() if p.status_on(day) == Promotion.Status.ACTIVE
        }


@pytest.mark.parametrize(
    ("fromdate", "todate", "archived", "status"),
    [
        (DAY, DAY, False, "active"),  # both ends included
        (DAY + ONE, None, False, "planned"),
        (DAY - 2 * ONE, DAY - ONE, False, "expired"),
        (DAY, None, True, "archived"),
    ],
)
def test_status_on_a_day(fromdate, todate, archived, status):
    promotion = PromotionFactory(fromdate=fromdate, todate=todate, archived=archived)
    assert promotion.status_on(DAY) == status
