"""The operator's cockpit in a real browser (issue 19): the dashboard the admin opens on, order
periods ticked or typed, and "Try an order" explaining with names and currencies."""

import datetime
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from common.models import Job
from tests.browser.test_admin_tour import PRODUCT, log_in, pick, substrate  # noqa: F401
from tests.factories import (
    DiscountFactory,
    JobFactory,
    PromoCodeFactory,
    PromotionFactory,
    redemption_of,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips, or fails in CI, saying what to install
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_admin_opens_on_the_dashboard(tour, substrate):  # noqa: F811
    # given a live promotion that gave discounts today, a code near its limit and a job that
    # failed (rewards and payouts are history no SQLite flush may delete: the unit tests have
    # them, tests/dashboard)
    provider = substrate["provider"]
    black_friday = PromotionFactory(name="Black Friday", provider=provider)
    for discount in ("36.00", "1200.50"):
        redemption_of(black_friday, discount=Decimal(discount))
    redemption_of(
        black_friday,
        discount=Decimal("5.00"),
        created_at=timezone.now() - datetime.timedelta(days=3),
    )
    PromoCodeFactory(promotion=black_friday, code="BF-ALMOST", uselimit=100, use_count=95)
    JobFactory(status=Job.Status.FAILED, message="the template has room for 10 codes")
    page = tour.page

    # when the operator signs in
    log_in(tour)

    # then the index opens on the figures, named for the product, domain first, plumbing last
    expect(page.locator("#site-name")).to_contain_text(PRODUCT)
    expect(page.locator("#dash-live")).to_have_text("1")
    usd_row = page.locator("#dash-given tr.given-USD td")
    today = timezone.localdate()
    month = 3 if (today - datetime.timedelta(days=3)).month == today.month else 2
    expect(usd_row).to_have_text(
        ["USD", "2", "1,236.50 USD", str(month), re.compile(r"^1,2\d\d\.50 USD$")]
    )
    expect(page.locator("#dashboard-charts figcaption")).to_have_text(
        "Discount given per day, last 30 days (USD)"
    )
    expect(page.locator("#dash-codes")).to_contain_text("BF-ALMOST")
    expect(page.locator("#dash-codes")).to_contain_text("95 of 100")
    expect(page.locator("#dash-held")).to_have_text("-")
    expect(page.locator("#dash-waiting")).to_have_text("0")
    expect(page.locator("#dash-jobs-counts")).to_contain_text("1 failed")
    expect(page.locator("#dash-accrual")).to_contain_text("never")
    captions = page.locator("#content-main .module caption")
    expect(captions.first).to_have_text("Promotions")
    expect(captions.last).to_contain_text("Plumbing")
    tour.shot("00-dashboard", docs=True)


def test_order_periods_are_ticked_or_typed_and_bad_ones_are_refused(tour, substrate):  # noqa: F811
    promotion = DiscountFactory(
        promotion__name="Yearly", promotion__provider=substrate["provider"]
    ).promotion
    page = tour.page
    log_in(tour)
    tour.goto(f"/admin/promotions/promotion/{promotion.pk}/change/")

    # A typed period that is no month is refused, saying what a period is.
    page.fill("[name=discounts-0-period_other]", "1, twelve")
    page.click("input[name=_continue]")
    expect(page.locator("#discounts-group .errorlist")).to_contain_text(
        "Order periods are whole months from 1 to 1200, separated by commas (e.g. 1, 12); "
        "“twelve” is not one."
    )

    # Typed as `1, 12`, they are saved and shown ticked; the summary names them.
    page.fill("[name=discounts-0-period_other]", "1, 12")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(page.locator("[name=discounts-0-period][value='1']")).to_be_checked()
    expect(page.locator("[name=discounts-0-period][value='12']")).to_be_checked()
    expect(page.locator("[name=discounts-0-period_other]")).to_have_value("")
    expect(page.locator(".field-at_a_glance")).to_contain_text("on orders of 1 or 12 months")
    tour.assert_clean()


def test_try_an_order_explains_with_names_and_currencies(tour, substrate):  # noqa: F811
    provider = substrate["provider"]
    DiscountFactory(
        promotion__name="Black Friday", promotion__provider=provider, percentage=Decimal("30")
    )
    DiscountFactory(
        promotion__name="Loyalty", promotion__provider=provider, percentage=Decimal("10")
    )
    page = tour.page
    log_in(tour)
    tour.goto("/admin/promotions/promotion/try-order/")

    # The client and the tariff are found by typing part of their names.
    pick(page, "id_client", "Ann Example")
    pick(page, "id_lines-0-tariff", "VPS S")
    page.fill("[name=lines-0-period]", "12")
    page.click("input[value=Quote]")

    verdicts = page.locator("#quote-lines .verdicts li")
    expect(verdicts).to_have_text(
        [
            "Black Friday: applied: 30% off (36.00 USD)",
            "Loyalty: not applied: Black Friday is exclusive and goes first "
            "(it gives 36.00 USD, this one 12.00 USD)",
        ]
    )
    expect(page.locator("#quote-lines tbody tr").first.locator("td")).to_have_text(
        ["VPS S", "12", "new", "120.00 USD", "36.00 USD", "84.00 USD", "Black Friday", ""]
    )
    expect(page.locator("#quote-total")).to_have_text(
        "Total 84.00 USD, of which discount 36.00 USD"
    )
    expect(page.locator("#quote-moment")).to_contain_text(" UTC.")
    expect(page.locator("#try-order")).to_contain_text("UTC time")
    tour.shot("15-try-order-names", docs=True)
