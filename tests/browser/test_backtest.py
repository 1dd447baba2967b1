"""The backtest in a real browser: started from a draft promotion's page, followed while it waits
for a worker and runs, read (figures, chart) and its CSV downloaded. The screenshot of the result
is the README's, in docs/screenshots/backtest.png."""

import csv
import datetime
import io
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from common.jobs import job_run
from common.models import Job
from tests.browser.test_admin_tour import log_in
from tests.factories import (
    ClientFactory,
    CurrencyFactory,
    DiscountFactory,
    ExpenseFactory,
    PromotionFactory,
    ProviderFactory,
    ServiceFactory,
    TariffFactory,
    UserFactory,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips, or fails in CI, saying what to install
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "backtest.png"


@pytest.fixture
def history():
    """An operator, a draft (10% off, starting next month), a live 5% promotion, and three
    clients' orders of the last weeks: two new orders and a renewal."""
    from tests.browser.test_admin_tour import PASSWORD, USERNAME

    UserFactory(username=USERNAME, password=PASSWORD, is_staff=True, is_superuser=True)
    provider = ProviderFactory(name="Acme Hosting", currency=CurrencyFactory(iso="USD"))
    tariff = TariffFactory(name="VPS S", provider=provider, price="40.00")
    now = timezone.now()
    for name, days_ago in (("Ann Example", 40), ("Bob Example", 20)):
        client = ClientFactory(name=name, provider=provider)
        opened = now - datetime.timedelta(days=days_ago)
        service = ServiceFactory(client=client, tariff=tariff, opened_at=opened)
        ExpenseFactory(
            client=client,
            service=service,
            amount=Decimal("40.00"),
            currency=provider.currency,
            created_at=opened,
        )
    ExpenseFactory(
        client=client,
        service=service,
        amount=Decimal("40.00"),
        currency=provider.currency,
        created_at=now - datetime.timedelta(days=5),
    )
    live = PromotionFactory(
        provider=provider,
        name="Always 5%",
        fromdate=timezone.localdate() - datetime.timedelta(days=365),
        todate=None,
    )
    DiscountFactory(promotion=live, percentage=Decimal("5"))
    start = timezone.localdate() + datetime.timedelta(days=30)
    draft = PromotionFactory(
        provider=provider,
        name="Autumn draft",
        fromdate=start,
        todate=start + datetime.timedelta(days=30),
    )
    DiscountFactory(promotion=draft, percentage=Decimal("10"))
    return draft


def test_operator_backtests_a_draft_and_downloads_its_orders(tour, history, settings, tmp_path):
    # A worker takes the job only when the test says so: the page shows it waiting first.
    settings.JOBS_INLINE = False
    page = tour.page
    log_in(tour)
    tour.goto(f"/admin/promotions/promotion/{history.pk}/change/")
    page.click("#backtest-link")
    expect(page.locator("#content h1")).to_have_text("Backtest Autumn draft")
    # The window defaults to the last 90 days, up to yesterday.
    page.click("#backtest-form input[type=submit]")
    expect(page).to_have_url(re.compile(rf"/promotion/{history.pk}/backtest/\d+/$"))
    expect(page.locator("#job-status")).to_have_text("queued")
    expect(page.locator("#job-bar")).to_have_attribute("max", "3")

    # A worker runs it: the page, polling, shows the result.
    job_run(Job.objects.get().pk)
    expect(page.locator("#orders")).to_have_text("3")
    expect(page.locator("#orders-qualified")).to_have_text("3")
    expect(page.locator("#clients-qualified")).to_have_text("2")
    expect(page.locator("#won")).to_have_text("3")
    expect(page.locator("#backtest-figures")).to_contain_text("over Always 5% (3)")
    expect(page.locator("#discount-total")).to_have_text("12.00 USD")
    expect(page.locator("figure.chart svg")).to_have_count(1)
    shot = tour.shot("backtest")
    DOCS_SHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, DOCS_SHOT)

    # The CSV of the qualifying orders.
    with page.expect_download() as download_info:
        page.click("#backtest-csv")
    download = download_info.value
    assert re.fullmatch(rf"promotion-{history.pk}-backtest-\d+\.csv", download.suggested_filename)
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert [(r["client_name"], r["kind"], r["discount"], r["winner_name"]) for r in rows] == [
        ("Ann Example", "new", "4.0000", "Autumn draft"),
        ("Bob Example", "new", "4.0000", "Autumn draft"),
        ("Bob Example", "renewal", "4.0000", "Autumn draft"),
    ]
    tour.assert_clean()
