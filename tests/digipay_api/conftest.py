"""A DigiPay client: the spec's headers on every call, answers parsed as DigiPay clients read them."""

import json
from dataclasses import dataclass, field

import pytest

from digipay_api.models import Company
from tests.factories import ApiTokenFactory, CompanyFactory

ROUTE = "/digipay/v3/reward_promotion/referral_program"

# The body of the specification's curl, byte for byte.
SPEC_BODY = """
{
"referral_program_title": "Customer Program",
"referfrom_rewards_type": 1,
"referto_rewards_type": 1,
"referral_for": 1,
"expiry_date": 1,
"min_referrals": 1,
"max_referral": 1,
"referral_reward_users": 1,
"message": "hello",
"currency_id": "7753ad6bd8cf48f5b1312fd21eb36588"
}
"""


def body(**changes) -> dict:
    """The spec's body as a dict, with changes; a change to None drops the field."""
    data = {**json.loads(SPEC_BODY), **changes}
    return {k: v for k, v in data.items() if v is not None}


@dataclass
class DigiPay:
    client: object
    key: str | None
    company_id: str | None
    extra: dict = field(default_factory=dict)

    def headers(self) -> dict:
        headers = {"accept": "application/json", **self.extra}
        if self.key is not None:
            headers["Authorization"] = f"Token {self.key}"
        if self.company_id is not None:
            headers["CompanyID"] = self.company_id
        return headers

    def call(self, method: str, path: str = ROUTE, data=None, **params):
        if method == "get":
            return self.client.get(path, params, headers=self.headers())
        kwargs = {"headers": self.headers()}
        if data is not None:
            kwargs["data"] = data if isinstance(data, str | bytes) else json.dumps(data)
            kwargs["content_type"] = "application/json"
        return getattr(self.client, method)(path, **kwargs)

    def company(self) -> Company:
        return Company.objects.get(public_id=self.company_id)

    def create(self, data) -> dict:
        return self.call("post", data=data).json()

    def created_id(self, **changes) -> str:
        """Post the spec's body with changes, in this company's currency unless told otherwise."""
        changes.setdefault("currency_id", self.company().currencies.first().public_id)
        answer = self.create(body(**changes))
        assert answer["success"] == 1, answer
        return answer["data"]["referral_program_id"]

    def list(self, **params):
        return self.call("get", **params)

    def read(self, program_id: str):
        return self.call("get", f"{ROUTE}/{program_id}")

    def update(self, program_id: str, data):
        return self.call("put", f"{ROUTE}/{program_id}", data=data)

    def delete(self, program_id: str):
        return self.call("delete", f"{ROUTE}/{program_id}")


@pytest.fixture
def company(db):
    return CompanyFactory(name="Acme Pay", currency_id="7753ad6bd8cf48f5b1312fd21eb36588")


@pytest.fixture
def digipay(client, company) -> DigiPay:
    token = ApiTokenFactory(company=company, key="acme-key")
    return DigiPay(client, "acme-key", token.company.public_id)


@pytest.fixture
def other_digipay(client, db) -> DigiPay:
    """A second company with a token of its own."""
    other = CompanyFactory(name="Other Pay")
    ApiTokenFactory(company=other, key="other-key")
    return DigiPay(client, "other-key", other.public_id)


def assert_envelope(response, status: int, error: list[int], message: str) -> dict:
    """A refusal in DigiPay's envelope, as JSON; returns its data."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    answer = response.json()
    assert answer["success"] == 0
    assert answer["error"] == error
    assert answer["data"]["message"] == message
    return answer["data"]
