"""Refunds: a negative expense that names the charge it refunds, never more than what is left of
it, through every door (REST, func, admin), and exactly so under parallel refunds."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from billing.models import Expense
from billing.services import expense_create
from common.actors import Actor
from common.models import History
from tests.conftest import Door, run_in_threads
from tests.factories import ClientFactory, CurrencyFactory, ExpenseFactory, UserFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
AT = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)


@pytest.fixture
def charge():
    return ExpenseFactory(amount=Decimal("100.00"), created_at=AT)


def refund(charge, amount, **kw):
    return expense_create(refunds=charge, amount=Decimal(amount), actor=ACTOR, **kw)


def test_refunds_take_back_what_is_left_of_a_charge_and_no_more(charge):
    # given a charge of 100, refunded 30 then 70
    first = refund(charge, "-30")
    refund(charge, "-70")
    # then each refund is its charge's client and currency, and the charge is refunded in whole
    charge.refresh_from_db()
    assert (first.client, first.currency, first.refunds) == (
        charge.client,
        charge.currency,
        charge,
    )
    assert charge.refunded == Decimal("100.00")
    # and one cent more is refused, naming what is left, and nothing is saved
    with pytest.raises(ValidationError, match=r"more than what is left of expense \d+ \(0 "):
        refund(charge, "-0.01")
    assert Expense.objects.filter(refunds=charge).count() == 2
    # and each refund is a line of the charge's history
    assert History.objects.filter(object_id=charge.pk, desc__startswith="Refunded").count() == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "30"}, "amount"),  # a refund is negative
        ({"amount": "0"}, "amount"),
        ({"client": "other"}, "refunds"),  # another client's charge
        ({"currency": "other"}, "currency"),
        ({"created_at": AT - datetime.timedelta(days=1)}, "created_at"),
    ],
)
def test_a_refund_must_match_its_charge(charge, change, field):
    values = {"amount": "-10", **change}
    if values.get("client") == "other":
        values["client"] = ClientFactory()
    if values.get("currency") == "other":
        values["currency"] = CurrencyFactory(iso="EUR", name="Euro")
    values["amount"] = Decimal(values["amount"])
    with pytest.raises(ValidationError) as refused:
        expense_create(refunds=charge, actor=ACTOR, **values)
    assert field in refused.value.message_dict
    charge.refresh_from_db()
    assert charge.refunded == 0 and not Expense.objects.filter(refunds=charge).exists()


def test_a_refund_is_not_refunded_and_a_charge_is_positive(charge):
    first = refund(charge, "-10")
    with pytest.raises(ValidationError, match="only a charge is refunded"):
        refund(first, "-1")
    with pytest.raises(ValidationError, match="a refund names the charge"):
        expense_create(client=charge.client, currency=charge.currency, amount=Decimal("-5"))


def test_the_database_refuses_a_refunded_counter_past_the_amount(charge):
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE billing_expense SET refunded = amount + 1 WHERE id = %s", [charge.pk]
        )
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE billing_expense SET refunds_id = %s, amount = 5 WHERE id = %s",
            [charge.pk, ExpenseFactory().pk],
        )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_refunds_of_one_charge_never_add_up_to_more_than_it():
    # given a charge of 100 and eight refunds of 30 at once, each on its own connection
    charge = ExpenseFactory(amount=Decimal("100.00"), created_at=AT)

    def attempt(_):
        try:
            return refund(charge, "-30")
        except ValidationError:
            return None

    made = [r for r in run_in_threads(attempt, list(range(8))) if r is not None]
    # then exactly three are taken, and the counter agrees with the refunds
    charge.refresh_from_db()
    assert len(made) == 3
    assert (
        charge.refunded
        == Decimal("90.00")
        == -sum(e.amount for e in Expense.objects.filter(refunds=charge))
    )


# The doors -------------------------------------------------------------------------------------


@pytest.fixture
def api(client):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return lambda body: client.post("/api/v1/expenses", body, content_type="application/json")


def test_rest_takes_a_refund_by_the_charge_it_refunds(api, charge):
    made = api({"refunds": charge.pk, "amount": "-12.50"})
    assert made.status_code == 201, made.content
    body = made.json()
    assert (body["refunds"], body["amount"], body["client"], body["currency"]) == (
        charge.pk,
        "-12.5000",
        charge.client_id,
        charge.currency.iso,
    )
    too_much = api({"refunds": charge.pk, "amount": "-87.51"})
    assert too_much.status_code == 400 and "amount" in too_much.json()
    unknown = api({"refunds": 999999, "amount": "-1"})
    assert unknown.status_code == 400 and "refunds" in unknown.json()
    charge_without_client = api({"amount": "5", "currency": "USD"})
    assert charge_without_client.status_code == 400 and "client" in charge_without_client.json()
    charge.refresh_from_db()
    assert charge.refunded == Decimal("12.50")


def test_the_func_door_takes_a_charge_and_a_refund_and_keeps_them(client, operator, charge):
    door = Door(client)
    refunded = door("expense.edit", sok="ok", refunds=charge.pk, amount="-40")
    assert refunded["ok"]
    made = Expense.objects.get(pk=refunded["id"])
    assert (made.refunds, made.amount, made.client) == (charge, Decimal("-40"), charge.client)
    too_much = door("expense.edit", sok="ok", refunds=charge.pk, amount="-60.01")
    assert (too_much["error"]["type"], too_much["error"]["object"]) == ("value", "amount")
    listed = door("expense", refunds=charge.pk)["elem"]
    assert [(row["id"], row["amount"], row["refunds"]) for row in listed] == [
        (str(made.pk), "-40", str(charge.pk))
    ]
    # an expense is history: the door neither changes nor deletes one
    assert door("expense.edit", sok="ok", elid=charge.pk, amount="1")["error"]["type"] == "access"
    assert door("expense.delete", elid=made.pk)["error"]["type"] == "access"
    assert Expense.objects.filter(pk=made.pk, amount=Decimal("-40")).exists()


def test_the_admin_adds_a_refund_and_refunds_what_is_left(admin_client, charge):
    added = admin_client.post(
        "/admin/billing/expense/add/",
        {
            "client": charge.client_id,
            "amount": "-25",
            "currency": charge.currency_id,
            "created_at_0": "2026-03-02",
            "created_at_1": "10:00:00",
            "refunds": charge.pk,
        },
    )
    assert added.status_code == 302, added.content[:3000]
    done = admin_client.post(
        "/admin/billing/expense/",
        {"action": "refund_in_full", "_selected_action": [charge.pk]},
        follow=True,
    )
    assert "Refunded 75.00 USD of #" in done.content.decode()
    charge.refresh_from_db()
    assert charge.refunded == charge.amount
    assert sorted(e.amount for e in Expense.objects.filter(refunds=charge)) == [
        Decimal("-75"),
        Decimal("-25"),
    ]
    # and an expense is not changed or deleted in the admin
    page = admin_client.get(f"/admin/billing/expense/{charge.pk}/change/").content.decode()
    assert 'name="amount"' not in page
    assert admin_client.post(f"/admin/billing/expense/{charge.pk}/delete/").status_code == 403
