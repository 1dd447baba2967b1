"""The DigiPay routes: the spec's curl verbatim, the detail, update, delete, and the field mapping."""

import datetime
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from common.models import History
from digipay_api.models import DigiPayProgram
from referrals.conditions import condition_type_of
from referrals.models import ReferralProgram, Rule
from tests.conftest import run_in_threads
from tests.digipay_api.conftest import ROUTE, SPEC_BODY
from tests.factories import ApiTokenFactory, CompanyFactory, ReferralFactory

pytestmark = pytest.mark.django_db

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def program_of(program_id: str) -> ReferralProgram:
    return DigiPayProgram.objects.select_related("program").get(public_id=program_id).program


def test_the_specifications_curl_saves_a_program_of_the_companys_provider(client, digipay, company):
    # given the spec's body and headers exactly as its curl sends them
    headers = {
        "Authorization": "Token acme-key",
        "CompanyID": company.public_id,
        "accept": "application/json",
    }
    # when it is posted
    response = client.post(ROUTE, SPEC_BODY, content_type="application/json", headers=headers)
    # then the answer is the spec's 200, compact JSON with a 32-hex id
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    answer = response.json()
    assert answer == {
        "success": 1,
        "error": [],
        "data": {
            "message": "Referral Program saved successfully.",
            "referral_program_id": answer["data"]["referral_program_id"],
        },
    }
    assert HEX32.match(answer["data"]["referral_program_id"])
    assert response.content.startswith(b'{"success":1,"error":[],"data":{"message":')
    # and the program is a referral program of the company's provider, every field mapped
    program = program_of(answer["data"]["referral_program_id"])
    today = timezone.localdate()
    assert program.provider == company.provider
    assert (program.name, program.message, program.audience) == (
        "Customer Program",
        "hello",
        "customer",
    )
    assert (program.referrer_reward_kind, program.referee_reward_kind) == ("cash", "cash")
    assert program.rewarded == ReferralProgram.Rewarded.REFERRER
    assert (program.min_referrals, program.max_referrals) == (1, 1)
    assert program.currency == company.provider.currency
    assert program.status == ReferralProgram.Status.ACTIVE
    # expiry_date 1 (1970) is before the start: the program runs on its first day only
    assert program.start_date == program.end_date == today
    assert not program.rules.exists()


def test_the_detail_answers_the_program_in_digipays_words(digipay):
    # given a program saved with a referral condition
    program_id = digipay.created_id(
        referral_program_title="Agents",
        referfrom_rewards_type=3,
        referto_rewards_type=1,
        referral_for=2,
        expiry_date=4102444800,  # 2100-01-01T00:00:00Z
        min_referrals=2,
        max_referral=50,
        referral_reward_users=3,
        referral_condition=["refer>=3", "transaction>=100.50", "reward:10%"],
        message="Bring your friends",
    )
    # when it is read
    response = digipay.read(program_id)
    # then the detail carries every field, status 1 (active)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["success"], answer["error"]) == (1, [])
    shown = answer["data"]["referral_program"]
    created = DigiPayProgram.objects.get(public_id=program_id)
    assert shown == {
        "referral_program_id": program_id,
        "referral_program_title": "Agents",
        "referfrom_rewards_type": 3,
        "referto_rewards_type": 1,
        "referral_for": 2,
        "expiry_date": 4102444800,
        "min_referrals": 2,
        "max_referral": 50,
        "referral_reward_users": 3,
        "referral_condition": [
            "refer_type:both",
            "refer>=3",
            "transaction>=100.5",
            "reward:10%",
            "period:month",
        ],
        "message": "Bring your friends",
        "currency_id": "7753ad6bd8cf48f5b1312fd21eb36588",
        "status": 1,
        "is_active": 1,
        "start_date": shown["start_date"],
        "created_at": int(created.created_at.timestamp()),
    }
    first_day = datetime.datetime.fromtimestamp(shown["start_date"], tz=datetime.UTC)
    assert timezone.localtime(first_day).date() == timezone.localdate()


@pytest.mark.parametrize(
    ("field", "value", "program_field", "stored"),
    [
        ("referfrom_rewards_type", 1, "referrer_reward_kind", "cash"),
        ("referfrom_rewards_type", 3, "referrer_reward_kind", "points"),
        ("referto_rewards_type", 1, "referee_reward_kind", "cash"),
        ("referto_rewards_type", 3, "referee_reward_kind", "points"),
        ("referral_reward_users", 1, "rewarded", "referrer"),
        ("referral_reward_users", 2, "rewarded", "referee"),
        ("referral_reward_users", 3, "rewarded", "both"),
        ("referral_for", 1, "audience", "customer"),
        ("referral_for", 2, "audience", "agent"),
        ("referral_for", 3, "audience", "merchant"),
        ("expiry_date", 0, "end_date", None),
        ("expiry_date", 4102444800, "end_date", datetime.date(2100, 1, 1)),
        ("max_referral", 7, "max_referrals", 7),
        ("status", 2, "status", "inactive"),
    ],
)
def test_each_digipay_value_maps_onto_the_program_and_reads_back(
    digipay, field, value, program_field, stored
):
    # given a program saved with one field set
    program_id = digipay.created_id(**{field: value})
    # then the program field holds its meaning
    assert getattr(program_of(program_id), program_field) == stored
    # and the detail shows the value sent
    shown = digipay.read(program_id).json()["data"]["referral_program"]
    assert shown[field] == (value or None if field == "expiry_date" else value)


@pytest.mark.parametrize(
    ("lines", "rule", "conditions", "shown"),
    [
        (
            ["reward:5"],
            ("fixed", Decimal("5"), "month"),
            [],
            ["reward:5", "period:month"],
        ),
        (
            ["refer:3", "reward:10%"],
            ("percent", Decimal("10"), "month"),
            [("3", "ge", "referral_count", 3, False)],
            ["refer_type:refer", "refer>=3", "reward:10%", "period:month"],
        ),
        (
            ["transaction>250.00;reward:2.5%;period:quarter"],
            ("percent", Decimal("2.5"), "quarter"),
            [("1", "gt", "amount_ctype_1", Decimal("250"), False)],
            ["refer_type:transaction", "transaction>250", "reward:2.5%", "period:quarter"],
        ),
        (
            ["refer_type:either", "refer>=5", "transaction>=1000", "reward:20"],
            ("fixed", Decimal("20"), "month"),
            [
                ("3", "ge", "referral_count", 5, True),
                ("1", "ge", "amount_ctype_1", Decimal("1000"), True),
            ],
            ["refer_type:either", "refer>=5", "transaction>=1000", "reward:20", "period:month"],
        ),
        (
            ["refer_type:3", "refer<=2", "transaction=50", "reward:1%", "period:program"],
            ("percent", Decimal("1"), "program"),
            [
                ("3", "le", "referral_count", 2, False),
                ("1", "eq", "amount_ctype_1", Decimal("50"), False),
            ],
            ["refer_type:both", "refer<=2", "transaction=50", "reward:1%", "period:program"],
        ),
    ],
)
def test_referral_condition_becomes_a_rule_with_conditions_and_reads_back(
    digipay, lines, rule, conditions, shown
):
    # given a program saved with a referral condition
    program_id = digipay.created_id(referral_condition=lines)
    # then its one rule and conditions say the same
    made = Rule.objects.get(program=program_of(program_id))
    assert (made.reward_type, made.amount, made.schedule, made.active) == (*rule, True)
    got = [
        (c.ctype, c.comparison, field, getattr(c, field), c.group_id is not None)
        for c in made.conditions.order_by("pk")
        for field in [condition_type_of(c.ctype).amount_field]
    ]
    assert got == conditions
    # and the detail reflects it in the syntax it was written in
    assert (
        digipay.read(program_id).json()["data"]["referral_program"]["referral_condition"] == shown
    )


def test_put_changes_the_fields_it_sends_and_keeps_the_others(digipay):
    # given a program with a rule
    program_id = digipay.created_id(referral_condition=["refer>=3", "reward:10%"])
    rule = Rule.objects.get(program=program_of(program_id))
    # when two fields and the condition are changed
    response = digipay.update(
        program_id,
        {
            "referral_program_title": "Renamed",
            "referto_rewards_type": 3,
            "referral_condition": ["transaction>=20", "reward:1"],
        },
    )
    # then the answer names the program, and only those changed
    assert response.status_code == 200
    assert response.json() == {
        "success": 1,
        "error": [],
        "data": {
            "message": "Referral Program updated successfully.",
            "referral_program_id": program_id,
        },
    }
    shown = digipay.read(program_id).json()["data"]["referral_program"]
    assert shown["referral_program_title"] == "Renamed"
    assert (shown["referfrom_rewards_type"], shown["referto_rewards_type"]) == (1, 3)
    assert (shown["message"], shown["min_referrals"]) == ("hello", 1)
    assert shown["referral_condition"] == [
        "refer_type:transaction",
        "transaction>=20",
        "reward:1",
        "period:month",
    ]
    # and the same rule was rewritten, with one history line per change, as the DigiPay door
    assert list(Rule.objects.filter(program=program_of(program_id))) == [rule]
    actions = set(History.objects.values_list("action", flat=True))
    company_id = digipay.company_id
    assert f"digipay:referral_program.update company {company_id}" in actions
    assert f"digipay:referral_program.create company {company_id}" in actions


def test_put_with_an_empty_condition_removes_the_rule(digipay):
    program_id = digipay.created_id(referral_condition=["reward:10%"])
    assert digipay.update(program_id, {"referral_condition": []}).status_code == 200
    assert not Rule.objects.filter(program=program_of(program_id)).exists()
    assert digipay.read(program_id).json()["data"]["referral_program"]["referral_condition"] == []


def test_put_keeps_the_title_of_the_program_itself_and_an_empty_body_changes_nothing(digipay):
    program_id = digipay.created_id()
    assert (
        digipay.update(program_id, {"referral_program_title": "Customer Program"}).status_code
        == 200
    )
    assert digipay.update(program_id, {}).status_code == 200
    assert program_of(program_id).name == "Customer Program"


def test_delete_removes_the_program_and_its_id(digipay):
    # given a program with a rule
    program_id = digipay.created_id(referral_condition=["reward:10%"])
    pk = program_of(program_id).pk
    # when it is deleted
    response = digipay.delete(program_id)
    # then the answer names it, and it is gone from every door
    assert response.status_code == 200
    assert response.json()["data"] == {
        "message": "Referral Program deleted successfully.",
        "referral_program_id": program_id,
    }
    assert not ReferralProgram.objects.filter(pk=pk).exists()
    assert not DigiPayProgram.objects.filter(public_id=program_id).exists()
    assert digipay.read(program_id).status_code == 404


def test_delete_refuses_a_program_with_referrals(digipay):
    program_id = digipay.created_id()
    ReferralFactory(program=program_of(program_id))
    response = digipay.delete(program_id)
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == [1]
    assert "inactive" in answer["data"]["errors"]["referral_program_id"][0]
    assert DigiPayProgram.objects.filter(public_id=program_id).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_title_posted_by_many_at_once_is_saved_once():
    # given a company and eight clients posting the same title at the same moment
    company = CompanyFactory(name="Race Pay", currency_id="7753ad6bd8cf48f5b1312fd21eb36588")
    ApiTokenFactory(company=company, key="race-key")
    headers = {"Authorization": "Token race-key", "CompanyID": company.public_id}

    def post(_):
        return Client().post(ROUTE, SPEC_BODY, "application/json", headers=headers).status_code

    # when they all post on their own connections
    statuses = run_in_threads(post, list(range(8)))
    # then the company's lock lets exactly one through; the others find the title taken
    assert sorted(statuses) == [200] + [400] * 7
    assert ReferralProgram.objects.filter(provider=company.provider).count() == 1
