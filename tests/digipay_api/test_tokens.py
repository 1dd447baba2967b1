"""Companies and tokens: the digipay_token command, the admin, and the demo data that makes the
specification's curl run verbatim."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import Provider
from digipay_api.demo import DEMO_COMPANY_ID, DEMO_CURRENCY_ID, DEMO_TOKEN
from digipay_api.models import ApiToken, Company
from digipay_api.selectors import key_digest
from tests.digipay_api.conftest import ROUTE, SPEC_BODY, DigiPay, assert_envelope
from tests.factories import CurrencyFactory, ProviderFactory

pytestmark = pytest.mark.django_db

CREATED = re.compile(r"\Acompany_id=(?P<company>[0-9a-f]{32})\ntoken=(?P<token>[0-9a-f]{40})\n\Z")


def token_command(*args) -> str:
    out = StringIO()
    call_command("digipay_token", *args, stdout=out)
    return out.getvalue()


# digipay_token ----------------------------------------------------------------------------------


def test_create_makes_the_company_and_prints_exactly_its_id_and_the_key(client):
    # when a token is created for a new company
    out = token_command("create", "--company", "Fresh Pay", "--currency", "eur")
    # then two lines: company_id=<32 hex> and token=<key>
    printed = CREATED.match(out)
    assert printed, out
    # and the company is new, with a provider of its name and an id for its currency
    company = Company.objects.get(public_id=printed["company"])
    assert company.name == company.provider.name == "Fresh Pay"
    assert company.provider.currency.iso == "EUR"
    assert [c.currency.iso for c in company.currencies.all()] == ["EUR"]
    # and only the key's digest is kept
    token = ApiToken.objects.get(company=company)
    assert token.key_hash == key_digest(printed["token"]) != printed["token"]
    assert not ApiToken.objects.filter(key_hash=printed["token"]).exists()
    # and the key works at once
    assert DigiPay(client, printed["token"], printed["company"]).list().status_code == 200


def test_create_for_an_existing_company_adds_a_token_to_it():
    first = CREATED.match(token_command("create", "--company", "Fresh Pay"))
    second = CREATED.match(token_command("create", "--company", "Fresh Pay"))
    assert first["company"] == second["company"]
    assert first["token"] != second["token"]
    assert Company.objects.get().tokens.count() == 2


def test_create_makes_an_existing_provider_without_a_company_a_company():
    provider = ProviderFactory(name="Old Hosting", currency=CurrencyFactory())
    printed = CREATED.match(token_command("create", "--company", "Old Hosting"))
    assert Company.objects.get(public_id=printed["company"]).provider == provider


@pytest.mark.parametrize("by", ["key", "name", "id"])
def test_revoke_ends_a_key_or_every_token_of_a_company(client, by):
    # given a company with two tokens
    first = CREATED.match(token_command("create", "--company", "Fresh Pay"))
    second = CREATED.match(token_command("create", "--company", "Fresh Pay"))
    # when revoked by key, or by the company's name or id
    arg = {
        "key": ["--key", first["token"]],
        "name": ["--company", "Fresh Pay"],
        "id": ["--company", first["company"]],
    }[by]
    out = token_command("revoke", *arg)
    # then the revoked keys answer 401, the others still work
    assert out.strip() == ("revoked=1" if by == "key" else "revoked=2")
    assert_envelope(
        DigiPay(client, first["token"], first["company"]).list(), 401, [2], "UNAUTHORIZED"
    )
    still = DigiPay(client, second["token"], second["company"]).list()
    assert still.status_code == (200 if by == "key" else 401)
    # and a second revoke of the same key finds no live token
    with pytest.raises(CommandError, match="No live token"):
        token_command("revoke", "--key", first["token"])


def test_revoke_of_an_unknown_company_fails():
    with pytest.raises(CommandError, match="no company"):
        token_command("revoke", "--company", "Nobody")


# Admin ------------------------------------------------------------------------------------------


def test_the_admin_creates_a_company_and_a_token_showing_the_key_once(client, operator):
    client.force_login(operator)
    usd = CurrencyFactory()
    # when an operator adds a company
    response = client.post(
        "/admin/digipay_api/company/add/", {"name": "Admin Pay", "currency": usd.pk}
    )
    assert response.status_code == 302, response.content
    company = Company.objects.get(name="Admin Pay")
    assert company.provider.name == "Admin Pay" and company.currencies.count() == 1
    # and a token for it
    added = client.post("/admin/digipay_api/apitoken/add/", {"company": company.pk}, follow=True)
    # then the page after shows the key, which works, and only its digest is kept
    key = re.search(rb"key is <code>([0-9a-f]{40})</code>", added.content)[1].decode()
    assert ApiToken.objects.get(company=company).key_hash == key_digest(key)
    assert DigiPay(client, key, company.public_id).list().status_code == 200
    # and the token's page never shows it again
    token = ApiToken.objects.get(company=company)
    again = client.get(f"/admin/digipay_api/apitoken/{token.pk}/change/")
    assert again.status_code == 200 and key.encode() not in again.content


def test_the_admin_revoke_action_ends_tokens(client, operator, digipay, company):
    client.force_login(operator)
    token = company.tokens.get()
    response = client.post(
        "/admin/digipay_api/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
        follow=True,
    )
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert_envelope(digipay.list(), 401, [2], "UNAUTHORIZED")


@pytest.mark.parametrize(
    "page",
    [
        "/admin/digipay_api/company/",
        "/admin/digipay_api/company/add/",
        "/admin/digipay_api/apitoken/",
        "/admin/digipay_api/companycurrency/",
    ],
)
def test_the_admin_pages_open(client, operator, company, page):
    client.force_login(operator)
    assert client.get(page).status_code == 200
    assert client.get(f"/admin/digipay_api/company/{company.pk}/change/").status_code == 200


# Demo data --------------------------------------------------------------------------------------


def spec_curl(client):
    """The specification's curl, headers and body verbatim (host and port aside)."""
    return client.post(
        ROUTE,
        SPEC_BODY,
        content_type="application/json",
        headers={
            "Authorization": "Token duik7309njdlkhdauhknksadhjkas986876sd873j",
            "CompanyID": "7753ad6bd8cf48f5b1312fd21eb36588",
            "accept": "application/json",
        },
    )


def test_load_demo_makes_the_specifications_curl_work_verbatim(client, settings):
    # given the demo data, loaded as `make run` does
    settings.DEBUG = True
    out = StringIO()
    call_command("load_demo", stdout=out)
    # then it tells the demo company and token
    assert f"CompanyID: {DEMO_COMPANY_ID}, Authorization: Token {DEMO_TOKEN}" in out.getvalue()
    company = Company.objects.get(public_id=DEMO_COMPANY_ID)
    assert company.currencies.get().public_id == DEMO_CURRENCY_ID
    # after the rest of the demo, whose provider keeps the first id
    assert Provider.objects.get(name="Demo Hosting").pk < company.provider.pk
    # and the spec's curl answers the spec's 200
    response = spec_curl(client)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer["success"], answer["error"]) == (1, [])
    assert answer["data"]["message"] == "Referral Program saved successfully."
    # and a second run keeps everything as it is
    call_command("load_demo", stdout=StringIO())
    assert Company.objects.filter(public_id=DEMO_COMPANY_ID).count() == 1
    assert company.tokens.count() == 1


def test_load_demo_adds_the_digipay_example_to_demo_data_loaded_before(client, settings):
    # given a database whose demo data was loaded before DigiPay existed
    settings.DEBUG = True
    ProviderFactory(name="Demo Hosting", currency=CurrencyFactory())
    # when load_demo runs again
    out = StringIO()
    call_command("load_demo", stdout=out)
    # then it adds the DigiPay example only, and says so
    lines = out.getvalue().splitlines()
    assert lines == [
        f"DigiPay demo: CompanyID: {DEMO_COMPANY_ID}, Authorization: Token {DEMO_TOKEN}",
        "Demo data is loaded already.",
    ]
    assert spec_curl(client).status_code == 200


def test_load_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("load_demo", stdout=StringIO())
    assert not Company.objects.exists()
