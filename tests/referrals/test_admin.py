import csv
import datetime
import io
from decimal import Decimal

import pytest

from common.models import History
from referrals.models import ReferralProgram, Reward, Rule
from tests.factories import (
    ExpenseFactory,
    ProviderFactory,
    ReferralFactory,
    ReferralProgramFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return client


@pytest.mark.parametrize("model", ["referralprogram", "rule", "referral", "reward"])
def test_changelists_and_add_pages_load(admin_client, model):
    ReferralProgramFactory()
    assert admin_client.get(f"/admin/referrals/{model}/").status_code == 200


def test_program_added_in_the_admin_goes_through_services(admin_client):
    provider = ProviderFactory()
    response = admin_client.post(
        "/admin/referrals/referralprogram/add/",
        {
            "provider": provider.pk,
            "name": "Friends",
            "promocode": "FRIEND@ID@",
            "start_date": "2026-01-01",
            "referrer_reward_kind": "cash",
            "referee_reward_kind": "cash",
            "rewarded": "referrer",
            "status": "active",
            "rules-TOTAL_FORMS": "0",
            "rules-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    program = ReferralProgram.objects.get()
    assert History.objects.filter(object_id=program.pk, action="admin:referralprogram.add").exists()
    bad = admin_client.post(
        "/admin/referrals/referralprogram/add/",
        {
            "provider": provider.pk,
            "name": "Bad",
            "promocode": "NOPLACEHOLDER",
            "start_date": "2026-01-01",
            "referrer_reward_kind": "cash",
            "referee_reward_kind": "cash",
            "rewarded": "referrer",
            "status": "active",
            "rules-TOTAL_FORMS": "0",
            "rules-INITIAL_FORMS": "0",
        },
    )
    assert bad.status_code == 200 and b"@ID@" in bad.content
    assert ReferralProgram.objects.count() == 1


def test_rewards_export_as_csv(admin_client):
    referral = ReferralFactory()
    rule = Rule.objects.create(program=referral.program, name="10%", amount=Decimal("10"))
    expense = ExpenseFactory(client=referral.client, amount=Decimal("50"))
    reward = Reward.objects.create(
        partner=referral.partner,
        referral=referral,
        rule=rule,
        expense=expense,
        amount=Decimal("5.00"),
        currency=expense.currency,
        created_at=datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC),
    )
    response = admin_client.post(
        "/admin/referrals/reward/", {"action": "export_csv", "_selected_action": [reward.pk]}
    )
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["id", "partner", "referral_client"]
    assert rows[1][1:3] == [referral.partner.name, referral.client.name]
    assert Decimal(rows[1][6]) == Decimal("5.00")


def test_pay_action_pays_the_partner_once(admin_client):
    referral = ReferralFactory()
    rule = Rule.objects.create(program=referral.program, name="10%", amount=Decimal("10"))
    rewards = [
        Reward.objects.create(
            partner=referral.partner,
            referral=referral,
            rule=rule,
            expense=ExpenseFactory(client=referral.client, amount=Decimal(a)),
            amount=Decimal(a) / 10,
            currency=referral.program.provider.currency,
        )
        for a in ("50", "20")
    ]
    admin_client.post(
        "/admin/referrals/reward/", {"action": "pay_partners", "_selected_action": [rewards[0].pk]}
    )
    admin_client.post(
        "/admin/referrals/reward/", {"action": "pay_partners", "_selected_action": [rewards[0].pk]}
    )
    from referrals.models import Payout

    payout = Payout.objects.get()
    assert payout.amount == Decimal("7.00") and payout.partner == referral.partner
    assert set(Reward.objects.values_list("payout", flat=True)) == {payout.pk}
