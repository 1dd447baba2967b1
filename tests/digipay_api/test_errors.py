"""Every refusal in the envelope: 400, 401, 403, 404, 405 and 500, never HTML or a trace."""

import pytest
import time_machine
from django.test import override_settings

from common.actors import Actor
from digipay_api import services
from digipay_api.models import DigiPayProgram
from referrals.models import ReferralProgram
from tests.digipay_api.conftest import ROUTE, SPEC_BODY, DigiPay, assert_envelope, body
from tests.factories import ApiTokenFactory, ReferralProgramFactory

pytestmark = pytest.mark.django_db


# 400 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"referral_program_title": None}, "referral_program_title"),
        ({"referral_program_title": "   "}, "referral_program_title"),
        ({"referral_program_title": "x" * 201}, "referral_program_title"),
        ({"referfrom_rewards_type": 2}, "referfrom_rewards_type"),
        ({"referto_rewards_type": "cash"}, "referto_rewards_type"),
        ({"referral_for": 4}, "referral_for"),
        ({"referral_reward_users": 0}, "referral_reward_users"),
        ({"expiry_date": -1}, "expiry_date"),
        ({"expiry_date": "tomorrow"}, "expiry_date"),
        ({"min_referrals": -1}, "min_referrals"),
        ({"min_referrals": 5, "max_referral": 2}, "max_referral"),
        ({"currency_id": "0" * 32}, "currency_id"),
        ({"referral_condition": "refer>=3"}, "referral_condition"),
        ({"referral_condition": ["refer>=3"]}, "referral_condition"),
        ({"referral_condition": ["refer>=three", "reward:1"]}, "referral_condition"),
        ({"referral_condition": ["reward:120%"]}, "referral_condition"),
        ({"referral_condition": ["bonus:5", "reward:1"]}, "referral_condition"),
        ({"referral_condition": ["refer_type:refer", "reward:1"]}, "referral_condition"),
        ({"referral_condition": ["refer:1", "refer:2", "reward:1"]}, "referral_condition"),
        ({"referral_condition": ["reward:1", "period:week"]}, "referral_condition"),
        ({"referral_condition": [7]}, "referral_condition"),
        ({"status": 3}, "status"),
    ],
)
def test_a_bad_field_answers_400_naming_it_and_saves_nothing(digipay, changes, field):
    # given the spec's body with one field wrong
    # when it is posted
    response = digipay.call("post", data=body(**changes))
    # then the answer is the spec's 400, with the field's messages, and nothing is saved
    data = assert_envelope(response, 400, [1], "BAD_REQUEST")
    assert list(data["errors"]) == [field]
    assert all(isinstance(m, str) and m for m in data["errors"][field])
    assert not ReferralProgram.objects.exists()


def test_every_bad_field_is_named_in_one_answer(digipay):
    response = digipay.call(
        "post",
        data=body(referral_for=9, currency_id="f" * 32, referral_condition=["refer>=x"]),
    )
    data = assert_envelope(response, 400, [1], "BAD_REQUEST")
    assert set(data["errors"]) == {"referral_for", "currency_id", "referral_condition"}


def test_a_taken_title_answers_400_with_code_7_in_any_case(digipay):
    # given a program titled "Customer Program"
    digipay.created_id()
    # when another is posted with the same title in other letters
    response = digipay.call("post", data=body(referral_program_title="customer PROGRAM"))
    # then it is refused as a taken title, and the first stays alone
    data = assert_envelope(response, 400, [1, 7], "BAD_REQUEST")
    assert "exists already" in data["errors"]["referral_program_title"][0]
    assert DigiPayProgram.objects.count() == 1


def test_a_taken_title_is_refused_on_put_too(digipay):
    digipay.created_id()
    second = digipay.created_id(referral_program_title="Second")
    response = digipay.update(second, {"referral_program_title": "Customer Program"})
    assert_envelope(response, 400, [1, 7], "BAD_REQUEST")


def test_a_title_taken_by_a_program_of_another_door_counts(digipay, company):
    ReferralProgramFactory(provider=company.provider, name="Customer Program")
    assert_envelope(digipay.call("post", data=SPEC_BODY), 400, [1, 7], "BAD_REQUEST")


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"', "null"])
def test_a_body_that_is_no_json_object_answers_400(digipay, raw):
    data = assert_envelope(digipay.call("post", data=raw), 400, [1], "BAD_REQUEST")
    assert data["errors"]["non_field_errors"]


def test_the_body_is_read_as_json_whatever_its_content_type(digipay):
    # given the spec's body sent as curl sends --data without a content-type header
    sent = digipay.client.post(
        ROUTE, SPEC_BODY, "application/x-www-form-urlencoded", headers=digipay.headers()
    )
    # then it is saved all the same; a form's body is no JSON and answers 400
    assert sent.status_code == 200
    form = digipay.client.post(ROUTE, {"referral_program_title": "x"}, headers=digipay.headers())
    assert_envelope(form, 400, [1], "BAD_REQUEST")


@pytest.mark.parametrize(
    "query",
    [
        {"skip": -1},
        {"limit": 0},
        {"limit": 101},
        {"status": 4},
        {"is_active": 2},
        {"start_date": "2026-13-01"},
        {"sorting": "name"},
    ],
)
def test_a_bad_list_parameter_answers_400_naming_it(digipay, query):
    data = assert_envelope(digipay.list(**query), 400, [1], "BAD_REQUEST")
    assert list(data["errors"]) == list(query)


# 401 and 403 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "company_id"),
    [
        (None, None),
        (None, "company"),
        ("Token wrong-key", "company"),
        ("Token", "company"),
        ("Token acme-key extra", "company"),
        ("Bearer acme-key", "company"),
        ("acme-key", "company"),
        ("Token acme-key", None),
        ("Token acme-key", ""),
    ],
)
@pytest.mark.parametrize("method", ["post", "get", "read", "put", "delete"])
def test_a_missing_or_wrong_token_or_company_id_answers_401(
    client, digipay, authorization, company_id, method
):
    # given a program of the company
    program_id = digipay.created_id()
    # when it is called with bad credentials
    headers = {"accept": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    if company_id is not None:
        headers["CompanyID"] = digipay.company_id if company_id == "company" else company_id
    path = ROUTE if method in ("post", "get") else f"{ROUTE}/{program_id}"
    verb = "get" if method == "read" else method
    response = getattr(client, verb)(
        path, SPEC_BODY if verb in ("post", "put") else None, "application/json", headers=headers
    )
    # then 401 in the envelope, asking for the token
    data = assert_envelope(response, 401, [2], "UNAUTHORIZED")
    assert data["detail"]
    assert response["WWW-Authenticate"] == "Token"
    assert DigiPayProgram.objects.count() == 1


def test_a_revoked_token_answers_401(digipay, company):
    # given a working token
    assert digipay.list().status_code == 200
    # when it is revoked
    services.tokens_revoke(tokens=list(company.tokens.all()), actor=Actor.system("test"))
    # then it answers 401 like a wrong one, and a new token of the company works
    assert_envelope(digipay.list(), 401, [2], "UNAUTHORIZED")
    ApiTokenFactory(company=company, key="fresh-key")
    assert DigiPay(digipay.client, "fresh-key", company.public_id).list().status_code == 200


def test_a_token_with_another_companys_id_answers_403(digipay, other_digipay):
    # given company A's token sent with company B's id
    crossed = DigiPay(digipay.client, digipay.key, other_digipay.company_id)
    # when it posts
    response = crossed.call("post", data=SPEC_BODY)
    # then 403, and nothing is saved for either company
    assert_envelope(response, 403, [3], "FORBIDDEN")
    assert not ReferralProgram.objects.exists()


def test_the_company_id_may_be_sent_in_capitals(digipay):
    shouting = DigiPay(digipay.client, digipay.key, digipay.company_id.upper())
    assert shouting.list().status_code == 200


# 404 and 405 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "path",
    [
        "/digipay/",
        "/digipay/v3/reward_promotion/referral_program/",
        "/digipay/v3/reward_promotion/referral_programs",
        "/digipay/v2/reward_promotion/referral_program",
        "/digipay/v3/reward_promotion/referral_program/a/b",
    ],
)
def test_an_unknown_route_answers_404_in_the_envelope(digipay, path, debug):
    with override_settings(DEBUG=debug):
        for verb in ("get", "post", "put", "delete"):
            response = getattr(digipay.client, verb)(path, headers=digipay.headers())
            data = assert_envelope(response, 404, [4], "NOT_FOUND")
            assert path in data["detail"]


@pytest.mark.parametrize("verb", ["get", "put", "delete"])
def test_an_unknown_program_answers_404(digipay, verb):
    response = digipay.call(verb, f"{ROUTE}/{'f' * 32}", data={} if verb == "put" else None)
    data = assert_envelope(response, 404, [4], "NOT_FOUND")
    assert data == {"message": "NOT_FOUND", "detail": f"There is no referral program {'f' * 32}."}


def test_a_method_the_route_lacks_answers_405(digipay):
    program_id = digipay.created_id()
    assert_envelope(
        digipay.call("patch", f"{ROUTE}/{program_id}", data={}), 405, [5], "METHOD_NOT_ALLOWED"
    )
    assert_envelope(digipay.call("delete"), 405, [5], "METHOD_NOT_ALLOWED")
    assert_envelope(digipay.call("options"), 405, [5], "METHOD_NOT_ALLOWED")


@time_machine.travel("2026-06-15 10:00:30+00:00", tick=False)
def test_guessing_tokens_is_braked_with_429_and_retry_after(digipay, settings):
    # given an address that sent two wrong keys, the budget of a 60-second window
    settings.THROTTLE_AUTH_ADDRESS_FAILURES, settings.THROTTLE_AUTH_SECONDS = 2, 60
    guesser = DigiPay(digipay.client, "guess-1", digipay.company_id)
    for _ in range(2):
        assert_envelope(guesser.list(), 401, [2], "UNAUTHORIZED")
    # then even the right key from that address waits, in the envelope, until the window ends
    response = digipay.list()
    assert_envelope(response, 429, [8], "TOO_MANY_REQUESTS")
    assert response["Retry-After"] == "30"
    with time_machine.travel("2026-06-15 10:01:01+00:00", tick=False):
        assert digipay.list().status_code == 200


# 500 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_failure_answers_500_in_the_envelope_and_is_logged(
    digipay, monkeypatch, caplog, debug
):
    # given a service that fails unexpectedly
    def broken(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services, "program_create", broken)
    # when the spec's body is posted, with DEBUG on or off
    with override_settings(DEBUG=debug):
        response = digipay.call("post", data=SPEC_BODY)
    # then 500 in the envelope, no trace or HTML for the client, the trace in the log
    data = assert_envelope(response, 500, [6], "INTERNAL_SERVER_ERROR")
    assert data == {
        "message": "INTERNAL_SERVER_ERROR",
        "detail": "Something went wrong on our side.",
    }
    assert b"disk on fire" not in response.content and b"Traceback" not in response.content
    assert any("disk on fire" in str(r.exc_info) for r in caplog.records if r.exc_info)
