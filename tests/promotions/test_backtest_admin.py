"""The backtest in the admin: the window's form on the promotion, its page following the job to
the figures and the chart, and the CSV of the qualifying orders."""

import csv
import datetime
import io
from decimal import Decimal

import pytest
import time_machine

from common.jobs import job_run
from common.models import Job
from tests.factories import (
    ClientFactory,
    DiscountFactory,
    ExpenseFactory,
    PromotionFactory,
    ProviderFactory,
    ServiceFactory,
    TariffFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 6, 15, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def at_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def draft():
    """A 10% draft and a client's 80.00 order of VPS S in March, renewed in April."""
    provider = ProviderFactory()
    client = ClientFactory(provider=provider, name="Ann Example")
    service = ServiceFactory(
        client=client,
        tariff=TariffFactory(provider=provider, name="VPS S"),
        opened_at=datetime.datetime(2026, 3, 3, tzinfo=datetime.UTC),
    )
    for month in (3, 4):
        ExpenseFactory(
            client=client,
            service=service,
            amount=Decimal("80.00"),
            currency=provider.currency,
            created_at=datetime.datetime(2026, month, 3, tzinfo=datetime.UTC),
        )
    promotion = PromotionFactory(
        provider=provider,
        name="Summer draft",
        fromdate=datetime.date(2026, 7, 1),
        todate=datetime.date(2026, 7, 31),
    )
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    return promotion


def url(promotion, tail=""):
    return f"/admin/promotions/promotion/{promotion.pk}/backtest/{tail}"


def test_the_promotion_page_links_to_its_backtest(staff, draft):
    page = staff.get(f"/admin/promotions/promotion/{draft.pk}/change/").content.decode()
    assert f'href="{url(draft)}"' in page


def test_a_backtest_started_from_the_admin_follows_its_job_to_figures_chart_and_csv(
    staff, draft, django_capture_on_commit_callbacks
):
    # given the backtest form, when March and April are asked for
    assert staff.get(url(draft)).status_code == 200
    with django_capture_on_commit_callbacks(execute=False):
        response = staff.post(url(draft), {"start": "2026-03-01", "end": "2026-04-30"})
    job = Job.objects.get()
    # then its page follows the queued job
    assert response.status_code == 302 and response.url == url(draft, f"{job.pk}/")
    waiting = staff.get(response.url).content.decode()
    assert '<progress id="job-bar" max="2" value="0"' in waiting
    # and once a worker ran it, the page shows its figures and a chart per currency
    job_run(job.pk)
    page = staff.get(response.url).content.decode()
    assert '<td id="orders-qualified">2</td>' in page
    assert "16.00 USD" in page
    assert "<svg" in page and "Discount it would have given per month, USD" in page
    # and the CSV lists the two qualifying orders
    download = staff.get(url(draft, f"{job.pk}/orders.csv"))
    assert download["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert [(r["client_name"], r["tariff_name"], r["kind"], r["discount"]) for r in rows] == [
        ("Ann Example", "VPS S", "new", "8.0000"),
        ("Ann Example", "VPS S", "renewal", "8.0000"),
    ]
    assert rows[0]["winner_name"] == "Summer draft"


def test_a_bad_window_is_shown_on_the_form(staff, draft):
    response = staff.post(url(draft), {"start": "2026-04-30", "end": "2026-03-01"})
    assert response.status_code == 200
    assert "The window ends before it starts." in response.content.decode()
    assert not Job.objects.exists()


def test_the_backtest_needs_the_right_to_view_the_promotion(client, draft):
    client.force_login(UserFactory(is_staff=True))
    assert client.get(url(draft)).status_code == 403


def test_another_promotions_backtest_is_not_found_here(
    staff, draft, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        staff.post(url(draft), {"start": "2026-03-01", "end": "2026-04-30"})
    other = PromotionFactory(provider=draft.provider)
    job = Job.objects.get()
    assert staff.get(url(other, f"{job.pk}/")).status_code == 404
    assert staff.get(url(other, f"{job.pk}/orders.csv")).status_code == 404
