"""schemathesis against the whole /api/v1 schema, as an operator with every right: no 5xx, and
every answer that the schema describes conforms to it. (The DigiPay routes have their own run.)"""

import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import override_settings
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.factories import ClientFactory, PromoCodeFactory, PromotionFactory, TariffFactory


def _api_schema():
    with override_settings(ALLOWED_HOSTS=["localhost"]):
        loaded = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    return loaded.include(path_regex=r"^/api/v1/")


schema = _api_schema()


@pytest.fixture
def operator_token(operator, wsgi_keeps_test_connection):
    """A token of the operator, and some data for the ids schemathesis draws to hit."""
    promotion = PromotionFactory()
    PromoCodeFactory(promotion=promotion)
    TariffFactory(provider=promotion.provider)
    ClientFactory(provider=promotion.provider)
    return Token.objects.create(user=operator).key


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("API_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_answers_as_its_schema_says(case, operator_token):
    case.headers = {**(case.headers or {}), "Authorization": f"Token {operator_token}"}
    case.call_and_validate(
        checks=[not_a_server_error, content_type_conformance, response_schema_conformance]
    )
