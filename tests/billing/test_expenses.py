"""POST /api/v1/expenses: the charges referral rewards accrue on."""

import datetime
from decimal import Decimal

import pytest

from billing.models import Expense
from referrals import selectors
from referrals.accrual import rewards_accrue
from referrals.models import Reward
from tests.factories import ClientFactory, ReferralFactory, RuleFactory, ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return lambda body: client.post("/api/v1/expenses", body, content_type="application/json")


def test_an_expense_is_taken_in_and_shows_as_the_referrals_purchases(api):
    # given a referred client in a program with a 10% rule
    referral = ReferralFactory(program__start_date=datetime.date(2026, 1, 1))
    RuleFactory(program=referral.program, name="r", amount=Decimal("10"))
    # when two charges arrive, the later one first
    for when in ("2026-02-01T10:00:00Z", "2026-01-15T10:00:00Z"):
        response = api(
            {"client": referral.client.pk, "amount": "12.50", "currency": "usd", "created_at": when}
        )
        assert response.status_code == 201, response.content
    # then they are stored, the referral's first and last purchase are theirs, and rewards accrue
    assert Expense.objects.filter(client=referral.client).count() == 2
    [row] = selectors.referral_rows([referral])
    assert (row.first_purchase_at.date(), row.last_purchase_at.date()) == (
        datetime.date(2026, 1, 15),
        datetime.date(2026, 2, 1),
    )
    rewards_accrue()
    assert sorted(r.amount for r in Reward.objects.all()) == [Decimal("1.25"), Decimal("1.25")]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"currency": "XXX"}, "currency"),
        ({"service": "other"}, "service"),
    ],
)
def test_bad_expenses_are_refused_with_the_field(api, change, field):
    client = ClientFactory()
    body = {"client": client.pk, "amount": "5", "currency": "USD", **change}
    if body.get("service") == "other":
        body["service"] = ServiceFactory().pk
    response = api(body)
    assert response.status_code == 400 and field in response.json()
    assert not Expense.objects.exists()


def test_a_currency_with_expenses_keeps_its_minor_unit():
    # given a currency in which a client has been charged 12.50
    from django.core.exceptions import ValidationError

    from billing.services import substrate_update
    from common.actors import Actor
    from tests.factories import CurrencyFactory, ExpenseFactory

    dollars = CurrencyFactory(iso="USD", minor_units=2)
    ExpenseFactory(currency=dollars, amount=Decimal("12.50"))
    # when its minor unit is changed to none (as for yen), then it is refused, saying why
    with pytest.raises(ValidationError) as refused:
        substrate_update(instance=dollars, actor=Actor.system("test"), minor_units=0)
    assert refused.value.message_dict == {
        "minor_units": ["USD has expenses: its minor unit stays 2 (money in it was rounded to it)."]
    }
    # and a change of its name is still taken
    assert substrate_update(instance=dollars, actor=Actor.system("test"), name="Dollar").name == (
        "Dollar"
    )
