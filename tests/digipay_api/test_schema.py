"""The DigiPay routes in the OpenAPI schema, and schemathesis against them: no 5xx, and every
answer as the schema says (status, content type, body)."""

import os
import uuid

import pytest
import schemathesis
import yaml
from django.core.wsgi import get_wsgi_application
from django.test import override_settings
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from common.actors import Actor
from digipay_api import services
from tests.factories import ApiTokenFactory, CompanyFactory

LIST = "/digipay/v3/reward_promotion/referral_program"
DETAIL = "/digipay/v3/reward_promotion/referral_program/{referral_program_id}"


@pytest.fixture
def openapi(client, db) -> dict:
    response = client.get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def _ref(openapi: dict, schema: dict) -> dict:
    name = schema["$ref"].rsplit("/", 1)[1]
    return openapi["components"]["schemas"][name]


@pytest.mark.parametrize(
    ("path", "method", "ok", "refusals"),
    [
        (LIST, "post", "DigiPaySaved", {"400", "401", "403", "500"}),
        (LIST, "get", "DigiPayProgramList", {"400", "401", "403", "500"}),
        (DETAIL, "get", "DigiPayProgramDetail", {"401", "403", "404", "500"}),
        (DETAIL, "put", "DigiPaySaved", {"400", "401", "403", "404", "500"}),
        (DETAIL, "delete", "DigiPaySaved", {"400", "401", "403", "404", "500"}),
    ],
)
def test_each_route_is_in_the_schema_with_its_headers_and_envelopes(
    openapi, path, method, ok, refusals
):
    operation = openapi["paths"][path][method]
    # the two headers, as parameters and as security required together
    headers = {p["name"]: p["required"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"Authorization": True, "CompanyID": True}
    assert operation["security"] == [{"DigiPayToken": [], "DigiPayCompanyID": []}]
    schemes = openapi["components"]["securitySchemes"]
    assert (schemes["DigiPayToken"]["in"], schemes["DigiPayToken"]["name"]) == (
        "header",
        "Authorization",
    )
    assert schemes["DigiPayCompanyID"]["name"] == "CompanyID"
    # the envelope for 200 and for every refusal
    responses = operation["responses"]
    assert set(responses) == {"200", *refusals}
    assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(ok)
    envelope = _ref(openapi, responses["200"]["content"]["application/json"]["schema"])
    assert set(envelope["properties"]) == {"success", "error", "data"}
    for status in refusals:
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/DigiPayError")


def test_the_request_body_is_the_specifications(openapi):
    body = openapi["paths"][LIST]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = _ref(openapi, body)
    assert set(fields["properties"]) >= {
        "referral_program_title",
        "referfrom_rewards_type",
        "referto_rewards_type",
        "referral_for",
        "expiry_date",
        "min_referrals",
        "max_referral",
        "referral_reward_users",
        "referral_condition",
        "message",
        "currency_id",
    }
    assert set(fields["required"]) == {
        "referral_program_title",
        "referfrom_rewards_type",
        "referto_rewards_type",
        "referral_for",
        "referral_reward_users",
    }


# schemathesis -----------------------------------------------------------------------------------


def _digipay_schema():
    """The app's own schema, fetched as schemathesis fetches it (host "localhost"), DigiPay only."""
    with override_settings(ALLOWED_HOSTS=["localhost"]):
        loaded = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    return loaded.include(path_regex=r"^/digipay/")


schema = _digipay_schema()


@pytest.fixture
def tenant(db, wsgi_keeps_test_connection):
    """A company with a token."""
    company = CompanyFactory(name="Fuzz Pay")
    ApiTokenFactory(company=company, key="fuzz-key")
    return company


@schema.parametrize()
@settings(
    # .ci/run asks for more in a step of its own
    max_examples=int(os.environ.get("DIGIPAY_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_digipay_routes_answer_as_their_schema_says(case, tenant):
    # given the company's real headers, and half the program ids pointing at a real program
    case.headers = {
        **(case.headers or {}),
        "Authorization": "Token fuzz-key",
        "CompanyID": tenant.public_id,
    }
    if case.path_parameters and "referral_program_id" in case.path_parameters:
        drawn = str(case.path_parameters["referral_program_id"])
        if sum(map(ord, drawn)) % 2 == 0:
            made = services.program_create(
                company=tenant,
                actor=Actor.system("schemathesis"),
                fields={"name": f"fuzz {uuid.uuid4().hex}"},
                condition=None,
            )
            case.path_parameters["referral_program_id"] = made.public_id
    # when called, then no 5xx and the answer conforms to the schema
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )
