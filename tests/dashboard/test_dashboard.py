"""The admin index opens on the dashboard: figures from factories' data, domain apps first."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone

from common.models import Job
from dashboard.selectors import dashboard
from promotions.models import Promotion
from referrals.models import Payout
from tests.factories import (
    BudgetSpendFactory,
    CurrencyFactory,
    JobFactory,
    PayoutFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    RewardFactory,
    UserFactory,
    redemption_of,
)

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2026, 3, 20, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def shop():
    with time_machine.travel(NOW, tick=False):
        yen = CurrencyFactory(iso="JPY", name="yen", minor_units=0)
        usd = CurrencyFactory(iso="USD")
        live = PromotionFactory(name="Black Friday", provider=ProviderFactory(currency=usd))
        PromotionFactory(provider=live.provider, archived=True)
        PromotionFactory(
            provider=live.provider,
            fromdate=datetime.date(2026, 1, 1),
            todate=datetime.date(2026, 1, 31),
        )
        yield {"promotion": live, "usd": usd, "yen": yen}


def at(day: int, hour: int = 10) -> datetime.datetime:
    return datetime.datetime(2026, 3, day, hour, tzinfo=datetime.UTC)


def test_redemptions_and_discount_are_counted_today_this_month_and_per_day(shop):
    promotion = shop["promotion"]
    redemption_of(promotion, discount=Decimal("36.00"), created_at=at(20))
    redemption_of(promotion, discount=Decimal("1000.50"), created_at=at(20, 8))
    redemption_of(promotion, discount=Decimal("5.00"), created_at=at(2))
    # Last month: in the 30-day chart, not in this month's figures.
    redemption_of(
        promotion, discount=Decimal("7.00"), created_at=at(1) - datetime.timedelta(days=3)
    )
    redemption_of(promotion, discount=Decimal("300"), currency="JPY", created_at=at(19))
    released = redemption_of(promotion, discount=Decimal("99"), created_at=at(20))
    released.status, released.released_at = "released", at(20, 11)
    released.save()

    figures = dashboard(at=NOW)

    assert figures.live_promotions == 1
    given = {g.currency: g for g in figures.given}
    usd, yen = given["USD"], given["JPY"]
    assert (usd.today_count, usd.today_text) == (2, "1,036.50 USD")
    assert (usd.month_count, usd.month_text) == (3, "1,041.50 USD")
    assert (yen.today_count, yen.month_count, yen.month_text) == (0, 1, "300 JPY")
    assert usd.per_day[datetime.date(2026, 2, 26)] == Decimal("7.00")
    assert figures.redemptions_today == 2 and figures.redemptions_month == 4
    assert len(figures.days) == 30 and figures.days[-1] == datetime.date(2026, 3, 20)


def test_codes_close_to_their_limit_are_listed_fullest_first(shop):
    promotion = shop["promotion"]
    PromoCodeFactory(promotion=promotion, code="FULL", uselimit=10, use_count=10)
    PromoCodeFactory(promotion=promotion, code="NEAR", uselimit=10, use_count=8)
    PromoCodeFactory(promotion=promotion, code="FAR", uselimit=10, use_count=7)
    PromoCodeFactory(promotion=promotion, code="FREE", use_count=50)
    archived = Promotion.objects.get(archived=True)
    PromoCodeFactory(promotion=archived, code="GONE", uselimit=1, use_count=1)

    near = dashboard(at=NOW).codes_near_limit

    assert [(c.code, c.uses, c.limit, c.promotion) for c in near] == [
        ("FULL", 10, 10, "Black Friday"),
        ("NEAR", 8, 10, "Black Friday"),
    ]


def test_rewards_payouts_jobs_and_the_last_accrual_are_summed(shop):
    usd = shop["usd"]
    RewardFactory(
        amount=Decimal("2000.25"),
        expense__currency=usd,
        payable_at=NOW + datetime.timedelta(days=10),
    )
    RewardFactory(
        amount=Decimal("3.50"), expense__currency=usd, payable_at=NOW - datetime.timedelta(days=1)
    )
    PayoutFactory(currency=usd, amount=Decimal("40.00"), created_at=at(5))
    PayoutFactory(
        currency=usd, amount=Decimal("60.00"), created_at=at(6), status=Payout.Status.SENT
    )
    PayoutFactory(
        currency=usd, amount=Decimal("70.00"), created_at=at(6), status=Payout.Status.FAILED
    )
    PayoutFactory(
        currency=usd,
        amount=Decimal("80.00"),
        created_at=at(1) - datetime.timedelta(days=2),
        status=Payout.Status.SENT,
    )
    JobFactory(status=Job.Status.RUNNING)
    JobFactory(status=Job.Status.QUEUED)
    with time_machine.travel(NOW - datetime.timedelta(days=1), tick=False):
        failed = JobFactory(status=Job.Status.FAILED, message="boom")
    with time_machine.travel(NOW - datetime.timedelta(days=30), tick=False):
        JobFactory(status=Job.Status.FAILED)

    figures = dashboard(at=NOW)

    assert [str(a) for a in figures.held] == ["2,000.25 USD"]
    assert [str(a) for a in figures.payable] == ["3.50 USD"]
    assert [str(a) for a in figures.paid_this_month] == ["100.00 USD"]
    assert figures.payouts_waiting == 1
    assert [str(a) for a in figures.payouts_waiting_amounts] == ["40.00 USD"]
    assert (figures.jobs_running, figures.jobs_queued, figures.jobs_failed) == (1, 1, 1)
    assert figures.jobs_failed_recent == [failed]
    assert figures.last_accrual is None


def test_the_index_shows_the_dashboard_in_bounded_queries_domain_first(
    shop, staff, django_assert_max_num_queries
):
    promotion = shop["promotion"]
    for _ in range(20):
        redemption_of(promotion, created_at=timezone.now())
        PromoCodeFactory(promotion=promotion, uselimit=10, use_count=9)
        RewardFactory(amount=Decimal("1.00"), expense__currency=shop["usd"])

    with django_assert_max_num_queries(12):
        response = staff.get("/admin/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Promotions &amp; referrals engine" in page
    assert 'id="dash-live">1<' in page
    assert "200.00 USD" in page  # 20 redemptions of 10.00 today
    assert "Discount given per day, last 30 days (USD)" in page
    labels = [app["app_label"] for app in response.context["app_list"]]
    assert labels[:3] == ["promotions", "referrals", "billing"]
    assert labels[-1] == "plumbing"
    plumbing = [m["object_name"] for m in response.context["app_list"][-1]["models"]]
    assert {"User", "Job", "History", "ApiToken", "BillmgrSession"} <= set(plumbing)


def test_each_part_is_shown_to_those_who_may_read_its_lists(shop, client):
    redemption_of(shop["promotion"], created_at=timezone.now())
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(clerk)

    page = client.get("/admin/").content.decode()

    assert 'id="dash-jobs"' in page
    assert 'id="dash-promotions"' not in page and "10.00 USD" not in page
    assert 'id="dash-rewards"' not in page


def test_staff_without_any_of_its_permissions_gets_no_dashboard(shop, client):
    client.force_login(UserFactory(is_staff=True))

    response = client.get("/admin/")

    assert response.status_code == 200
    assert 'id="dashboard"' not in response.content.decode()


def test_budgets_burning_fastest_are_this_periods_fullest_first(shop):
    provider = shop["promotion"].provider
    with time_machine.travel(NOW, tick=False):
        daily = PromotionFactory(
            name="Daily", provider=provider, budget=Decimal("100"), budget_period="day"
        )
        total = PromotionFactory(
            name="Total", provider=provider, budget=Decimal("5000"), budget_period="total"
        )
        PromotionFactory(name="Idle", provider=provider, budget=Decimal("10"))
    BudgetSpendFactory(promotion=daily, period="2026-03-19", spent=Decimal("99"))
    BudgetSpendFactory(promotion=daily, period="2026-03-20", spent=Decimal("40"))
    BudgetSpendFactory(promotion=total, period="total", spent=Decimal("4500"))

    burning = dashboard(at=NOW).budgets

    assert [(b.promotion, b.spent, b.budget, b.share, b.period) for b in burning] == [
        ("Total", "4,500.00 USD", "5,000.00 USD", 90, "in total"),
        ("Daily", "40.00 USD", "100.00 USD", 40, "per day"),
        ("Idle", "0.00 USD", "10.00 USD", 0, "in total"),
    ]
    assert burning[0].url.endswith(f"/promotion/{total.pk}/change/")
