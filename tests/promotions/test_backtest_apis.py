"""The backtest through REST: POST /api/v1/promotions/{id}/backtest starts a job, and
GET /api/v1/jobs/{id} follows it to its result."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

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
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


@pytest.fixture(autouse=True)
def at_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def api(operator) -> APIClient:
    client = APIClient()
    client.force_authenticate(operator)
    return client


@pytest.fixture
def promotion():
    """A 10% draft (it starts in July) and one 200.00 March order of its provider."""
    provider = ProviderFactory()
    client = ClientFactory(provider=provider)
    service = ServiceFactory(
        client=client,
        tariff=TariffFactory(provider=provider),
        opened_at=datetime.datetime(2026, 3, 3, tzinfo=datetime.UTC),
    )
    ExpenseFactory(
        client=client,
        service=service,
        amount=Decimal("200.00"),
        currency=provider.currency,
        created_at=datetime.datetime(2026, 3, 3, tzinfo=datetime.UTC),
    )
    draft = PromotionFactory(
        provider=provider, fromdate=datetime.date(2026, 7, 1), todate=datetime.date(2026, 7, 31)
    )
    DiscountFactory(promotion=draft, percentage=Decimal("10"))
    return draft


def start(api, promotion, body=MARCH):
    return api.post(f"/api/v1/promotions/{promotion.pk}/backtest", body, format="json")


def test_a_backtest_answers_202_with_its_job_which_ends_with_the_figures(
    api, promotion, django_capture_on_commit_callbacks
):
    # given a draft and a March order; when its backtest is asked for
    with django_capture_on_commit_callbacks(execute=False):
        response = start(api, promotion)
    # then the answer names a queued job, which the jobs endpoint shows as queued
    assert response.status_code == 202
    job_id = response.json()["job"]
    queued = api.get(f"/api/v1/jobs/{job_id}").json()
    assert (queued["status"], queued["done"], queued["total"], queued["result"]) == (
        "queued",
        0,
        1,
        None,
    )
    # and when a worker has run it, the jobs endpoint answers its result
    job_run(job_id)
    done = api.get(f"/api/v1/jobs/{job_id}")
    assert done.status_code == 200
    body = done.json()
    assert (body["status"], body["done"], body["percent"]) == ("done", 1, 100)
    result = body["result"]
    assert {k: result[k] for k in ("orders", "orders_qualified", "clients_qualified")} == {
        "orders": 1,
        "orders_qualified": 1,
        "clients_qualified": 1,
    }
    assert result["discount_total"] == {promotion.provider.currency.iso: "20.00"}
    assert (result["won"], result["lost"]) == (1, 0)


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"from": "2026-03-31", "to": "2026-03-01"}, "to", "ends before it starts"),
        ({"from": "2024-01-01", "to": "2026-03-01"}, "to", "at most 366"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "from", "Date has wrong format"),
        ({"from": "March", "to": "2026-03-01"}, "from", "Date has wrong format"),
        ({"to": "2026-03-01"}, "from", "required"),
        ({"from": "2026-08-01", "to": "2026-08-02"}, "from", "in the future"),
        ({"from": "0001-01-01", "to": "0001-01-02"}, "from", "starts before 1970"),
    ],
)
def test_a_bad_window_is_a_400_naming_the_field(api, promotion, body, field, text):
    response = start(api, promotion, body)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert text in response.json()[field][0]
    assert not Job.objects.exists()


def test_an_unknown_promotion_is_a_404(api):
    response = api.post("/api/v1/promotions/999999/backtest", MARCH, format="json")
    assert response.status_code == 404


def test_starting_needs_the_right_to_view_promotions(promotion):
    # given a signed-in user without rights, then one with view_promotion
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    assert start(client, promotion).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_promotion"))
    user = type(user).objects.get(pk=user.pk)
    client.force_authenticate(user)
    assert start(client, promotion).status_code == 202


def test_a_job_is_read_by_who_started_it_or_who_may_view_jobs(promotion):
    # given a job started by one user
    starter = UserFactory()
    starter.user_permissions.add(Permission.objects.get(codename="view_promotion"))
    client = APIClient()
    client.force_authenticate(type(starter).objects.get(pk=starter.pk))
    job_id = start(client, promotion).json()["job"]
    # then another user without the right to view jobs finds no such job, and with it does
    other = UserFactory()
    client.force_authenticate(other)
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 404
    other.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_authenticate(type(other).objects.get(pk=other.pk))
    assert client.get(f"/api/v1/jobs/{job_id}").json()["id"] == job_id
    # and an anonymous caller is refused
    assert APIClient().get(f"/api/v1/jobs/{job_id}").status_code in (401, 403)
