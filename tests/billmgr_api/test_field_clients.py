"""BILLmanager clients as they are in the field: session cookies, the auth level, compact JSON,
xjson, error detail and param, option lists (slist), link clicks and registration, and the
referralprogram list's BILLmanager 6 columns. Each answer is read as a client of its format does."""

import json
import re
import xml.etree.ElementTree as ET

import pytest
import time_machine

from billing.models import Client
from billmgr_api.registry import FUNCS
from promotions.models import Promotion
from referrals.models import LinkClick, Referral
from tests.conftest import Door, parse, parse_slist
from tests.factories import (
    ClientFactory,
    ClientGroupFactory,
    PromotionFactory,
    ProviderFactory,
    ReferralProgramFactory,
    TariffFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
DOC_FORMATS = ["sjson", "xjson", "xml"]


# 1. Cookie sessions -----------------------------------------------------------------------------


def sign_in(client) -> str:
    response = Door(client, authinfo=None).raw("auth", username="operator", password="secret")
    return response.cookies["billmgrses5"].value


def test_func_auth_sets_the_session_cookie(client, operator):
    response = Door(client, authinfo=None).raw("auth", username="operator", password="secret")
    cookie = response.cookies["billmgrses5"]
    assert cookie.value == response.json()["auth"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]


def test_the_cookie_is_secure_under_production_settings(client, operator, settings):
    settings.SESSION_COOKIE_SECURE = True
    response = Door(client, authinfo=None).raw("auth", username="operator", password="secret")
    assert response.cookies["billmgrses5"]["secure"]


def test_the_cookie_alone_signs_a_client_in(client, operator):
    # given a session whose id the client keeps only in the cookie (as the test client does)
    sign_in(client)
    promotion = PromotionFactory()
    # when it calls without auth= or authinfo=, then it is the operator
    answer = Door(client, authinfo=None)("promotion")
    assert [row["id"] for row in answer["elem"]] == [str(promotion.pk)]


@pytest.mark.parametrize(
    "header",
    [
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_ORIGIN": "null"},
        {"HTTP_REFERER": "https://evil.example/page"},
    ],
)
def test_a_write_by_the_cookie_from_another_site_is_refused(client, operator, header):
    sign_in(client)
    provider = ProviderFactory()
    params = {
        "func": "promotion.edit",
        "sok": "ok",
        "name": "Forged",
        "project": provider.pk,
        "fromdate": "2026-01-01",
    }
    answer = client.post("/billmgr", params, **header).json()
    assert answer["error"]["type"] == "access"
    assert not provider.promotions.exists()


def test_a_write_by_the_cookie_from_our_own_pages_is_accepted(client, operator):
    sign_in(client)
    provider = ProviderFactory()
    params = {"func": "promotion.edit", "sok": "ok", "name": "Own", "project": provider.pk}
    params["fromdate"] = "2026-01-01"
    answer = client.post("/billmgr", params, HTTP_ORIGIN="http://testserver").json()
    assert answer["ok"] is True


# What a page of a sibling subdomain can make a browser send with the cookie (SameSite=Strict
# counts it as the same site): `<img referrerpolicy="no-referrer" src=...>` is a GET with neither
# Origin nor Referer; a form posted under that policy carries no Referer.
WRITES = {
    "delete": {"func": "promotion.delete", "sok": "ok"},
    "archive": {"func": "promotion.archive"},
    "edit": {"func": "promotion.edit", "sok": "ok", "name": "Forged"},
}


def untouched(promotion) -> bool:
    promotion.refresh_from_db()
    return promotion.name != "Forged" and not promotion.archived


@pytest.mark.parametrize("write", list(WRITES))
@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("get", {}),
        ("get", {"HTTP_ORIGIN": "http://testserver"}),
        ("get", {"HTTP_REFERER": "http://testserver/page"}),
        ("post", {}),
    ],
)
def test_a_write_by_the_cookie_alone_needs_a_post_from_our_own_pages(
    client, operator, write, method, headers
):
    sign_in(client)
    promotion = PromotionFactory(name="Spring")
    params = {**WRITES[write], "elid": promotion.pk}
    answer = getattr(client, method)("/billmgr", params, **headers).json()
    assert answer["error"]["type"] == "access", answer
    assert untouched(promotion)


@pytest.mark.parametrize(
    "headers", [{"HTTP_ORIGIN": "http://testserver"}, {"HTTP_REFERER": "http://testserver/p"}]
)
@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_by_the_cookie_posted_from_our_own_pages_is_accepted(
    client, operator, write, headers
):
    sign_in(client)
    promotion = PromotionFactory(name="Spring")
    answer = client.post("/billmgr", {**WRITES[write], "elid": promotion.pk}, **headers).json()
    assert answer.get("ok"), answer
    assert not Promotion.objects.filter(pk=promotion.pk, name="Spring", archived=False).exists()


@pytest.mark.parametrize(
    "params",
    [
        {"func": "promotion"},
        {"func": "promotion.edit"},  # the form, without sok
        {"func": "promotion.history"},
        {"func": "promotion.archived"},
    ],
)
def test_a_read_by_the_cookie_alone_needs_no_origin(client, operator, params):
    # the keepalive and current-user clients in the field send the cookie and nothing else
    sign_in(client)
    promotion = PromotionFactory(name="Spring")
    answer = client.get("/billmgr", {**params, "elid": promotion.pk}).json()
    assert "error" not in answer, answer


def test_auth_parameter_calls_are_not_concerned_by_the_origin(client, operator):
    session = sign_in(client)
    client.cookies.clear()
    answer = client.get(
        "/billmgr", {"func": "promotion", "auth": session}, HTTP_ORIGIN="https://other.example"
    ).json()
    assert "elem" in answer


def test_logout_ends_the_session_and_clears_the_cookie(client, operator):
    sign_in(client)
    response = Door(client, authinfo=None).raw("session.logout")
    assert response.cookies["billmgrses5"].value == ""
    assert Door(client, authinfo=None)("promotion")["error"]["type"] == "auth"


# 2. The auth level --------------------------------------------------------------------------------


@pytest.mark.parametrize("out", ["bjson", "json", "sjson", "xjson", "xml"])
def test_the_auth_answer_carries_the_level(client, operator, out):
    UserFactory(username="client-user", password="pw", is_staff=False)
    door = Door(client, authinfo=None)
    staff = parse(out, door.raw("auth", out=out, username="operator", password="secret").content)
    user = parse(out, door.raw("auth", out=out, username="client-user", password="pw").content)
    assert (staff["level"], user["level"]) == ("28", "16")
    assert len(staff["auth"]) == 32


def test_the_xml_auth_answer_is_billmanagers(client, operator):
    body = Door(client, authinfo=None).raw(
        "auth", out="xml", username="operator", password="secret"
    )
    auth = ET.fromstring(body.content).find("auth")
    assert auth.get("id") == auth.text and auth.get("level") == "28"


# 3. Compact JSON ------------------------------------------------------------------------------------


def test_json_is_written_without_spaces(door):
    provider = ProviderFactory()
    params = {"sok": "ok", "name": "X", "project": provider.pk, "fromdate": "2026-01-01"}
    body = door.raw("promotion.edit", **params).content.decode()
    new_id = json.loads(body)["id"]
    assert body == f'{{"func":"promotion.edit","ok":true,"id":"{new_id}"}}'
    for out in ("json", "sjson", "xjson"):
        text = door.raw("promotion", out=out).content.decode()
        assert re.search(r'"\s+:|:\s+"|,\s+"', text) is None


# 4. xjson ---------------------------------------------------------------------------------------------


def test_xjson_answers_the_same_doc_as_sjson(door):
    PromotionFactory.create_batch(2)
    for func, params in [("promotion", {}), ("promotion.edit", {"elid": 1})]:
        sjson = json.loads(door.raw(func, out="sjson", **params).content)
        xjson = json.loads(door.raw(func, out="xjson", **params).content)
        assert xjson == sjson and "doc" in xjson


@pytest.mark.parametrize("out", ["ljson", "JSON", "devjson"])
def test_an_unknown_json_format_answers_its_error_as_a_doc(door, out):
    body = json.loads(door.raw("promotion", out=out).content)
    assert body["doc"]["error"]["$object"] == "out"
    assert body["doc"]["error"]["detail"]["$"]


def test_an_unknown_other_format_answers_bjson(door):
    assert door.raw("promotion", out="yaml").json()["error"]["object"] == "out"


# 5. Errors: detail and param ---------------------------------------------------------------------


@pytest.mark.parametrize("out", DOC_FORMATS)
def test_a_field_error_carries_detail_and_param(door, out):
    promotion = PromotionFactory()
    error = door("promotion.discount.edit", out=out, sok="ok", plid=promotion.pk, percentage="abc")[
        "error"
    ]
    assert error["detail"] == error["msg"] and error["detail"]
    assert error["param"] == "percentage"


@pytest.mark.parametrize("out", DOC_FORMATS)
def test_an_error_that_is_not_about_a_field_has_detail_but_no_param(anonymous_door, out):
    error = anonymous_door("promotion", out=out)["error"]
    assert error["type"] == "auth" and error["detail"] and "param" not in error


def test_a_doc_reading_client_sees_every_error(door, anonymous_door):
    # a public client takes an answer as an error only when doc.error.detail.$ is set
    for answer in (
        anonymous_door.raw("promotion", out="sjson"),
        door.raw("promotion.edit", out="sjson", elid=999999),
        door.raw("nosuch.func", out="sjson"),
    ):
        assert json.loads(answer.content)["doc"]["error"]["detail"]["$"]


# 6. Option lists ----------------------------------------------------------------------------------


@pytest.mark.parametrize("out", ["bjson", "sjson", "xml"])
def test_a_form_lists_its_choices_and_objects(door, out):
    # given a promotion of a provider with two tariffs, and another provider's tariff
    promotion = PromotionFactory()
    own = TariffFactory.create_batch(2, provider=promotion.provider)
    TariffFactory()
    door(
        "promotion.condition.edit",
        sok="ok",
        plid=promotion.pk,
        ctype="service_count",
        amount=1,
        group="new",
        groupname="loyal",
    )
    # when the condition form is opened for that promotion
    lists = door.options("promotion.condition.edit", out=out, plid=promotion.pk)
    # then it lists each choice with its label, the provider's own tariffs and the groups
    assert ("has_tariff", "client has services of a tariff") in lists["ctype"]
    assert [k for k, _ in lists["comparison"]] == ["lt", "le", "eq", "ge", "gt"]
    assert [k for k, _ in lists["periodtype"]] == ["day", "month", "year"]
    assert [k for k, _ in lists["pricelist"]] == [str(t.pk) for t in own]
    assert [k for k, _ in lists["group"]] == ["none", "new", "loyal"]
    assert "currency" in lists and "account_group" in lists and "affiliate" in lists


def test_the_sjson_slist_shape(door):
    promotion = PromotionFactory()
    doc = json.loads(door.raw("promotion.discount.edit", out="sjson", plid=promotion.pk).content)
    slist = {s["$name"]: s["val"] for s in doc["doc"]["slist"]}
    assert {"$key": "order", "$": "new orders"} in slist["actiontype"]
    xml = door.raw("promotion.discount.edit", out="xml", plid=promotion.pk).content.decode()
    assert '<slist name="actiontype"><val key="order">new orders</val>' in xml


def _build(door) -> dict[str, dict]:
    """One object of every .edit function, made through the door; {func: {"elid":, "plid":}}."""
    group = ClientGroupFactory()
    provider = ProviderFactory()
    TariffFactory(provider=provider)
    ReferralProgramFactory(provider=provider)
    made = {}

    def create(func, **params):
        answer = door(f"{func}.edit", sok="ok", **params)
        assert answer.get("ok"), (func, answer)
        made[func] = {
            "elid": answer["id"],
            **({"plid": params["plid"]} if "plid" in params else {}),
        }
        return answer["id"]

    create("currency", name="Euro", iso="EUR")
    create("project", name="Hosting", currency="EUR")
    create("accountgroup", name="Gold")
    account = create("account", name="Ann", project=provider.pk, account_group=group.pk)
    create("expense", account=account, amount="10", currency="EUR")
    made["expense"] = {}  # a creation form: an expense is history, never edited
    create("pricelist", name="VPS", project=provider.pk, price="10")
    promotion = create("promotion", name="P", project=provider.pk, fromdate="2026-01-01")
    create("promotion.discount", plid=promotion, percentage="10")
    create(
        "promotion.condition",
        plid=promotion,
        ctype="service_count",
        amount=1,
        group="new",
        groupname="g1",
    )
    # a second member keeps each group alive while the first one tries other groups
    door(
        "promotion.condition.edit",
        sok="ok",
        plid=promotion,
        ctype="paid_services",
        amount=1,
        group="g1",
    )
    create("promotion.promocode", plid=promotion, code="SLIST1")
    program = create("referralprogram", project=provider.pk, name="R", start_date="2026-01-01")
    rule = create("referralprogram.rule", plid=program, name="10%", amount="10")
    create(
        "referralprogram.rule.condition",
        plid=rule,
        ctype="1",
        amount_ctype_1="5",
        group="new",
        groupname="g2",
    )
    second = {"plid": rule, "ctype": "3", "referral_count": 2, "group": "g2"}
    assert door("referralprogram.rule.condition.edit", sok="ok", **second)["ok"]
    return made


def test_a_discount_set_back_to_unlimited_validity_drops_its_length(door):
    # given a discount valid for 3 months
    promotion = PromotionFactory()
    made = door(
        "promotion.discount.edit",
        sok="ok",
        plid=promotion.pk,
        percentage="10",
        validity="months",
        validitylength="3",
    )
    # when its validity is set back to unlimited, then that is saved, and the length with it
    answer = door("promotion.discount.edit", sok="ok", elid=made["id"], validity="unlimited")
    assert answer.get("ok"), answer
    shown = door("promotion.discount.edit", elid=made["id"])
    assert (shown["validity"], shown["validitylength"]) == ("unlimited", "")


def listed(field: str):
    """The first value the form itself lists for `field`."""
    return lambda lists: lists[field][0][0]


# Values that need companion fields to be saved at all, per form: {(func, field, value): {name:
# a value, or `listed(name)`}}. Every other listed value must be saved on its own.
PERIOD = {"periodtype": "month", "periodlength": "1"}
COMPANIONS = {
    ("promotion.discount", "validity", "months"): {"validitylength": "3"},
    ("promotion.discount", "valuetype", "amount"): {"amount": "5"},
    ("promotion.discount", "valuetype", "price"): {"amount": "5"},
    ("promotion.condition", "group", "new"): {"groupname": "fresh"},
    ("promotion.condition", "ctype", "account_group"): {"account_group": listed("account_group")},
    ("promotion.condition", "ctype", "affiliate"): {"affiliate": listed("affiliate")},
    ("promotion.condition", "ctype", "has_tariff"): {"pricelist": listed("pricelist")},
    ("promotion.condition", "ctype", "registration"): PERIOD,
    ("promotion.condition", "ctype", "expense_sum"): {
        "summa": "100",
        "currency": listed("currency"),
        **PERIOD,
    },
    ("promotion.promocode", "active_time_type", "period"): {
        "fromdate": "2026-01-01",
        "todate": "2026-12-31",
    },
    ("promotion.promocode", "expiretype", "period"): PERIOD,
    ("referralprogram.rule.condition", "group", "new"): {"groupname": "fresh"},
    ("referralprogram.rule.condition", "ctype", "2"): {"item_count": "1"},
    ("referralprogram.rule.condition", "ctype", "3"): {"referral_count": "2"},
    ("referralprogram.rule.condition", "ctype", "4"): {"amount_ctype_4": "5"},
}
# An expense form creates: a charge needs its amount, currency and account, a refund a negative
# amount.
CHARGE = {"amount": "10", "currency": listed("currency"), "account": listed("account")}


def companions(func: str, field: str, value: str, lists: dict) -> dict[str, str]:
    if func == "expense":
        given = {"amount": "-1"} if field == "refunds" else CHARGE
        given = {name: v for name, v in given.items() if name != field}
        return {name: v(lists) if callable(v) else v for name, v in given.items()}
    given = COMPANIONS.get((func, field, value), {})
    return {name: v(lists) if callable(v) else v for name, v in given.items()}


@pytest.mark.parametrize("out", ["bjson", "sjson", "xml"])
def test_every_listed_option_is_accepted_by_its_own_function(door, out):
    made = _build(door)
    edits = sorted(name[: -len(".edit")] for name in FUNCS if name.endswith(".edit"))
    # every .edit function of the door is covered
    assert sorted(made) == edits
    checked = 0
    for func, ids in made.items():
        lists = door.options(f"{func}.edit", out=out, **ids)
        shown = door(f"{func}.edit", **ids)
        for field, values in lists.items():
            assert values, (func, field)
            for value, _label in values:
                params = {field: value, **companions(func, field, value, lists)}
                answer = door(f"{func}.edit", out=out, sok="ok", **ids, **params)
                # the value is saved (with the companions its form needs, named above)
                assert answer.get("ok"), (func, params, answer)
                checked += 1
                if shown.get(field):  # back as it was, so the other values still hold
                    door(f"{func}.edit", sok="ok", **ids, **{field: shown[field]})
    assert checked > 60


# 7. Link clicks and registration ------------------------------------------------------------------


@pytest.fixture
def program(db):
    provider = ProviderFactory()
    return ReferralProgramFactory(
        provider=provider, url="https://Shop.example/join/", start_date="2026-01-01"
    )


@pytest.fixture
def partner(program):
    return ClientFactory(provider=program.provider)


@pytest.mark.parametrize(
    "link",
    [
        "https://shop.example/join?from={p}",
        "https://SHOP.example:443/join/?from={p}",
        "HTTPS://shop.example/join/?from={p}",
        "https://shop.example/join/?from={p}#top",
        "https%3A%2F%2Fshop.example%2Fjoin%3Ffrom%3D{p}",
    ],
)
def test_a_click_on_the_programs_link_is_counted(anonymous_door, partner, link):
    answer = json.loads(
        anonymous_door.raw(
            "referralprogram.registerclick", out="xjson", p=link.format(p=partner.pk)
        ).content
    )
    cntid = answer["doc"]["cntid"]["$"]
    click = LinkClick.objects.get(visitor=cntid)
    assert click.partner == partner and len(cntid) == 32


@pytest.mark.parametrize(
    "link",
    [
        "https://shop.example/other?from={p}",
        "https://shop.example:8443/join?from={p}",
        "http://shop.example/join?from={p}",
        "https://shop.example/join",
        "https://shop.example/join?from=abc",
        "https://shop.example/join?from={p}&from={p}",
        "https://shop.example/join?from=999999",
        "not a link",
        "javascript:alert(1)//?from={p}",
    ],
)
@pytest.mark.parametrize("out", ["bjson", "sjson", "xml"])
def test_any_other_link_is_a_value_error_naming_p(anonymous_door, partner, link, out):
    answer = anonymous_door("referralprogram.registerclick", out=out, p=link.format(p=partner.pk))
    assert (answer["error"]["type"], answer["error"]["object"]) == ("value", "p")
    assert not LinkClick.objects.exists()


def test_clicks_are_braked_per_address(anonymous_door, partner, settings):
    settings.THROTTLE_CLICK_REQUESTS = 3
    link = f"https://shop.example/join?from={partner.pk}"
    with time_machine.travel("2026-06-15 10:00:30+00:00", tick=False):
        for _ in range(3):
            assert anonymous_door("referralprogram.registerclick", p=link)["ok"]
        braked = anonymous_door("referralprogram.registerclick", p=link)
    assert braked["error"]["type"] == "limit"
    assert LinkClick.objects.count() == 3


def test_clicks_from_one_ipv6_64_are_braked_together(client, anonymous_door, partner, settings):
    settings.THROTTLE_CLICK_REQUESTS = 3
    link = f"https://shop.example/join?from={partner.pk}"
    with time_machine.travel("2026-06-15 10:00:30+00:00", tick=False):
        # given clicks from a new address of one /64 each time
        answers = []
        for n in range(1, 6):
            client.defaults["REMOTE_ADDR"] = f"2001:db8:7:7::{n}"
            answers.append(anonymous_door("referralprogram.registerclick", p=link))
        # and one from the next /64
        client.defaults["REMOTE_ADDR"] = "2001:db8:7:8::1"
        elsewhere = anonymous_door("referralprogram.registerclick", p=link)
    # then the /64 had its budget of 3, as one address
    assert [a.get("error", {}).get("type", "ok") for a in answers] == ["ok"] * 3 + ["limit"] * 2
    assert elsewhere.get("ok")
    assert LinkClick.objects.count() == 4


@pytest.mark.parametrize("out", ["bjson", "sjson", "xml"])
def test_registering_with_the_click_id_attaches_to_the_partner(
    door, anonymous_door, program, partner, out
):
    link = f"https://shop.example/join?from={partner.pk}"
    cntid = anonymous_door("referralprogram.registerclick", out=out, p=link)["cntid"]
    created = door(
        "account.edit", out=out, sok="ok", name="New", project=program.provider_id, sesid=cntid
    )
    referral = Referral.objects.get(client_id=created["id"])
    assert (referral.partner, referral.program, referral.source) == (partner, program, "link")


def test_registering_with_the_partner_id_attaches_to_the_partner(door, program, partner):
    program.assign_by_default = True
    program.save()
    created = door(
        "account.edit", sok="ok", name="New", project=program.provider_id, partner=partner.pk
    )
    referral = Referral.objects.get(client_id=created["id"])
    assert (referral.partner, referral.program) == (partner, program)


@pytest.mark.parametrize(("param", "value"), [("sesid", "no-such-click"), ("partner", "999999")])
def test_an_unknown_click_or_partner_registers_nobody(door, program, param, value):
    answer = door(
        "account.edit", sok="ok", name="New", project=program.provider_id, **{param: value}
    )
    assert (answer["error"]["type"], answer["error"]["object"]) == ("value", param)
    assert not Client.objects.filter(name="New").exists()


def test_the_attachment_rules_still_apply(door, anonymous_door, program, partner):
    # given a click, then the program ends before the visitor registers
    link = f"https://shop.example/join?from={partner.pk}"
    cntid = anonymous_door("referralprogram.registerclick", p=link)["cntid"]
    program.status = "inactive"
    program.save()
    # then the client registers, unattached, as REST would refuse the attachment
    created = door("account.edit", sok="ok", name="Late", project=program.provider_id, sesid=cntid)
    assert created["ok"] and not Referral.objects.filter(client_id=created["id"]).exists()


# 8. The referralprogram list ----------------------------------------------------------------------


@pytest.mark.parametrize("out", ["bjson", "sjson", "xml"])
def test_the_program_list_has_billmanager_6_columns(door, program, out):
    row = door("referralprogram", out=out)["elem"][0]
    assert row["id"] == str(program.pk)
    assert row["locale_name"] == row["name"] == program.name
    assert row["locale_url"] == row["url"] == "https://Shop.example/join/"
    assert row["project_name"] == program.provider.name
    assert row["assign_by_default"] == "off"


def test_parse_slist_reads_nothing_from_a_list(door):
    assert parse_slist("bjson", door.raw("promotion").content) == {}
