"""CSV exports cannot carry spreadsheet formulas: a cell a spreadsheet would run is neutralised."""

import csv
import datetime
import io
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.spreadsheet import safe_cell
from referrals.models import Reward, Rule
from tests.factories import ExpenseFactory, PromoCodeFactory, PromotionFactory, ReferralFactory

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


@given(st.text())
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote_and_nothing_else_changes(text):
    # reference: a cell starting with a trigger is a formula unless it is a plain number
    runs = text.startswith(TRIGGERS) and not PLAIN_NUMBER.fullmatch(text)
    assert safe_cell(text) == ("'" + text if runs else text)


@pytest.mark.parametrize("value", [Decimal("-5.00"), -3, 0, None, "-12.50", "+7"])
def test_numbers_stay_numbers(value):
    assert safe_cell(value) == value


@pytest.mark.django_db
def test_the_promo_code_export_neutralises_formulas(staff):
    promotion = PromotionFactory()
    PromoCodeFactory(promotion=promotion, code="=CMD|' /C CALC'!A0")
    PromoCodeFactory(promotion=promotion, code="@SUM(1+1)")
    exported = staff.get(f"/admin/promotions/promotion/{promotion.pk}/codes.csv")
    codes = [row["code"] for row in csv.DictReader(io.StringIO(exported.content.decode()))]
    assert codes == ["'=CMD|' /C CALC'!A0", "'@SUM(1+1)"]


@pytest.mark.django_db
def test_the_reward_export_neutralises_formulas(admin_client):
    referral = ReferralFactory(client__name='=HYPERLINK("http://evil.example","x")')
    rule = Rule.objects.create(program=referral.program, name="+rule", amount=Decimal("10"))
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
    row = list(csv.reader(io.StringIO(response.content.decode())))[1]
    assert row[2] == '\'=HYPERLINK("http://evil.example","x")'
    assert row[4] == "'+rule"
    assert Decimal(row[6]) == Decimal("5.00")
