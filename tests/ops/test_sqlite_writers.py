"""The embedded default queues its writers: parallel redemptions and attachments on SQLite wait
for the write lock instead of answering 500 "database is locked" (they did, with Django's
default deferred transactions: a reader cannot wait to become a writer)."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from promotions.models import PromoCode, PromoCodeUsage, Redemption
from referrals.models import Referral
from tests.conftest import run_in_threads
from tests.factories import (
    ClientFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    ReferralProgramFactory,
    TariffFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

PARALLEL = 12


def api_as(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def test_parallel_redemptions_all_get_an_answer_and_the_limit_holds():
    # given a code usable 5 times and 12 clients, each with their own connection
    provider = ProviderFactory()
    promotion = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    tariff = TariffFactory(provider=provider)
    code = PromoCodeFactory(promotion=promotion, code="RUSH", uselimit=5)
    clients = ClientFactory.create_batch(PARALLEL, provider=provider)
    operator = UserFactory(is_superuser=True, is_staff=True)

    def redeem(client):
        body = {
            "client": client.pk,
            "provider": provider.pk,
            "codes": ["RUSH"],
            "lines": [{"tariff": tariff.pk, "period": 1, "price": "10.00", "currency": "usd"}],
        }
        return api_as(operator).post(
            "/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{client.pk}"
        )

    # when all redeem at once
    answers = run_in_threads(redeem, clients)
    # then every one is answered (5 redeemed, the rest told it is used up), never a 500
    assert sorted(a.status_code for a in answers) == [201] * 5 + [409] * (PARALLEL - 5), [
        a.content[:200] for a in answers if a.status_code >= 500
    ]
    assert PromoCode.objects.get(pk=code.pk).use_count == 5
    assert PromoCodeUsage.objects.count() == Redemption.objects.count() == 5


def test_parallel_attachments_all_get_an_answer():
    # given a partner code and 12 newcomers
    program = ReferralProgramFactory(promocode="FRIEND@ID@", start_date=datetime.date(2020, 1, 1))
    partner = ClientFactory(provider=program.provider)
    newcomers = ClientFactory.create_batch(PARALLEL, provider=program.provider)
    operator = UserFactory(is_superuser=True, is_staff=True)

    def attach(newcomer):
        body = {"client": newcomer.pk, "code": f"FRIEND{partner.pk}"}
        return api_as(operator).post("/api/v1/referrals/attach", body, format="json")

    # when they all enter it at once
    answers = run_in_threads(attach, newcomers)
    # then all are attached to the partner
    assert [a.status_code for a in answers] == [201] * PARALLEL
    assert Referral.objects.filter(partner=partner).count() == PARALLEL


def test_the_embedded_database_takes_the_write_lock_when_a_transaction_begins():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's own settings")
    options = connection.settings_dict["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE" and options["timeout"] >= 5
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
