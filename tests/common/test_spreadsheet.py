"""CSV exports cannot carry spreadsheet formulas: a cell a spreadsheet would run is neutralised.
(The reward ledger's export: tests/referrals/test_admin.py::test_rewards_export_as_csv.)"""

import csv
import io
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.spreadsheet import safe_cell
from tests.factories import PromoCodeFactory, PromotionFactory

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
