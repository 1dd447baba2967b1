"""Hypothesis drives /billmgr with random functions, parameters, formats, encodings, and huge or
malformed values: never a 5xx, every answer in the protocol's own format, and a rejected request
saves nothing."""

import json
import os
import xml.etree.ElementTree as ET

import pytest
from django.apps import apps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billmgr_api.errors import FuncError
from billmgr_api.formats import FORMATS
from billmgr_api.registry import FUNCS
from tests.factories import ProviderFactory, TariffFactory, UserFactory

EXAMPLES = int(os.environ.get("BILLMGR_FUZZ_EXAMPLES", "120"))
PARAMS = sorted(
    [
        "elid",
        "plid",
        "sok",
        "name",
        "project",
        "currency",
        "fromdate",
        "todate",
        "percentage",
        "code",
        "count",
        "uselimit",
        "account_uselimit",
        "ctype",
        "amount",
        "summa",
        "group",
        "groupname",
        "p_num",
        "p_cnt",
        "type",
        "actiontype",
        "period",
        "periodtype",
        "periodlength",
        "pricelist",
        "price",
        "account",
        "promocode",
        "idempotency_key",
        "start_date",
        "end_date",
        "url",
        "status",
        "reward_type",
        "schedule",
        "comparison",
        "item_count",
        "referral_count",
        "iso",
        "minor_units",
        "email",
        "charge",
        "onlydigit",
        "active_time_type",
        "expiretype",
        "validity",
        "filter",
        "username",
        "password",
    ]
)
# Rows a rejected request may legitimately leave: the brute-force brake's failure counts.
MAY_GROW = {"common.attempt", "billmgr_api.billmgrsession"}

weird_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=5000),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1e309",
            "NaN",
            "99999999999999999999999",
            "1, 2, x",
            "2026-02-30",
            "on",
            "off",
            "<x/>",
            "\x00",
            "%",
            "' OR 1=1 --",
            "1" * 400,
            "  7 ",
            "\u202e\ufeff",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(str),
)
requests = st.fixed_dictionaries(
    {
        "func": st.one_of(st.sampled_from(sorted(FUNCS)), st.text(max_size=30)),
        "out": st.one_of(st.sampled_from(FORMATS), st.text(max_size=8)),
        "params": st.dictionaries(
            st.one_of(st.sampled_from(PARAMS), st.text(min_size=1, max_size=20)),
            weird_text,
            max_size=8,
        ),
        "method": st.sampled_from(["get", "post", "json", "raw"]),
    }
)


def row_counts() -> dict[str, int]:
    return {
        model._meta.label_lower: model.objects.count()
        for app in ("billing", "promotions", "referrals", "common", "billmgr_api")
        for model in apps.get_app_config(app).get_models()
    }


def parses_as(out: str, body: bytes) -> dict | None:
    """The protocol's own reading of the body, or None when it is not that format."""
    if out == "xml":
        root = ET.fromstring(body)
        assert root.tag == "doc"
        error = root.find("error")
        return {"error": error.get("type")} if error is not None else {}
    data = json.loads(body)
    if out == "bjson":
        return {"error": data["error"]["type"]} if "error" in data else {}
    doc = data["doc"]
    return {"error": doc["error"]["$type"]} if "error" in doc else {}


@pytest.fixture
def world(db):
    """A user who may do everything, and a provider with a tariff for edits to refer to."""
    UserFactory(username="fuzzer", is_superuser=True)
    TariffFactory(provider=ProviderFactory())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(call=requests)
def test_random_requests_never_break_the_protocol(client, world, call):
    params = {"func": call["func"], "out": call["out"], **call["params"]}
    params.setdefault("authinfo", "fuzzer:secret")
    before = row_counts()
    if call["method"] == "get":
        response = client.get("/billmgr", params)
    elif call["method"] == "post":
        response = client.post("/billmgr", params)
    elif call["method"] == "json":
        response = client.post("/billmgr", json.dumps(params), content_type="application/json")
    else:  # a JSON body cut short and broken by a byte that is not UTF-8
        response = client.post(
            "/billmgr?out=bjson",
            json.dumps(params).encode()[:-1] + b"\xff",
            content_type="application/json; charset=utf-8",
        )
    assert response.status_code < 500, response.content[:500]
    out = params["out"] if params["out"] in FORMATS and call["method"] != "raw" else "bjson"
    try:
        answer = parses_as(out, response.content)
    except (ValueError, KeyError, ET.ParseError) as exc:
        raise AssertionError(f"not {out}: {params!r} -> {response.content[:300]!r}") from exc
    if answer.get("error"):
        assert answer["error"] in FuncError.TYPES
        after = row_counts()
        changed = {k for k in after if after[k] != before[k]} - MAY_GROW
        assert not changed, f"a rejected request changed {changed}"
