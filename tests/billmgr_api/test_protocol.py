"""The func-style door's protocol: formats, auth, sessions, permissions, errors, paging, filters."""

import datetime
import json

import pytest
import time_machine
from django.contrib.auth.models import Permission

from billmgr_api.registry import FUNCS
from promotions.models import Discount, Promotion
from tests.conftest import Door
from tests.factories import (
    DiscountFactory,
    PromoCodeFactory,
    PromoCodeUsageFactory,
    PromotionFactory,
    ProviderFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
FORMATS = ["bjson", "json", "sjson", "xml"]


# Formats ----------------------------------------------------------------------------------------


def test_bjson_list_is_plain_strings_with_paging(door):
    # given two promotions
    first, second = PromotionFactory.create_batch(2)
    # when the list is asked in bjson
    answer = door("promotion")
    # then rows are plain string values and the paging fields say how many there are
    assert [row["id"] for row in answer["elem"]] == [str(first.pk), str(second.pk)]
    assert answer["elem"][0]["name"] == first.name
    assert answer["elem"][0]["fromdate"] == first.fromdate.isoformat()
    assert answer["elem"][0]["project_name"] == first.provider.name
    assert (answer["p_num"], answer["p_elems"]) == ("1", "2")


@pytest.mark.parametrize("out", ["json", "sjson"])
def test_json_wraps_values_under_dollar_in_doc(door, out):
    promotion = PromotionFactory()
    body = json.loads(door.raw("promotion", out=out).content)
    row = body["doc"]["elem"][0]
    assert row["id"] == {"$": str(promotion.pk)}
    assert row["name"] == {"$": promotion.name}
    assert body["doc"]["p_elems"] == {"$": "1"}


def test_xml_list_is_doc_of_elems(door):
    promotion = PromotionFactory()
    body = door.raw("promotion", out="xml").content.decode()
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert f"<elem><id>{promotion.pk}</id><name>{promotion.name}</name>" in body
    assert "<p_elems>1</p_elems>" in body


@pytest.mark.parametrize("out", FORMATS)
def test_every_format_reads_back_the_same_answer(door, out):
    # given a promotion with a discount
    discount = DiscountFactory(percentage="12.5", period=[1, 12])
    # when its discount list and its discount form are read in each format
    listing = door("promotion.discount", out=out, elid=discount.promotion_id)
    form = door("promotion.discount.edit", out=out, elid=discount.pk, plid=discount.promotion_id)
    # then each format parses, as a client parses it, into the same values
    assert listing["elem"][0]["id"] == str(discount.pk)
    assert listing["p_elems"] == "1"
    assert form["percentage"] == "12.5"
    assert form["period"] == "1, 12"


def test_edit_view_is_top_level_in_bjson_and_children_of_doc_in_json(door):
    promotion = PromotionFactory(name="Black Friday")
    bjson = door.raw("promotion.edit", elid=promotion.pk).json()
    assert bjson["id"] == str(promotion.pk)
    assert bjson["name"] == "Black Friday"
    doc = door.raw("promotion.edit", out="json", elid=promotion.pk).json()["doc"]
    assert doc["name"] == {"$": "Black Friday"}


def test_success_answer_shapes(door):
    provider = ProviderFactory()
    params = {"sok": "ok", "name": "X", "project": provider.pk, "fromdate": "2026-01-01"}
    bjson = door.raw("promotion.edit", **params).json()
    assert bjson == {"func": "promotion.edit", "ok": True, "id": bjson["id"]}
    xml = door.raw("promotion.edit", out="xml", **params).content.decode()
    assert "<ok />" in xml and "<id>" in xml
    doc = door.raw("promotion.edit", out="sjson", **params).json()["doc"]
    assert "ok" in doc and doc["id"]["$"].isdigit()


@pytest.mark.parametrize("method", ["get", "post", "json"])
def test_get_query_post_form_and_json_body_are_all_accepted(door, method):
    provider = ProviderFactory()
    answer = door.raw(
        "promotion.edit",
        method=method,
        sok="ok",
        name="Via " + method,
        project=provider.pk,
        fromdate="2026-05-01",
        todate="2026-05-31",
    ).json()
    assert answer["ok"] is True
    created = Promotion.objects.get(pk=answer["id"])
    assert (created.name, created.todate) == ("Via " + method, datetime.date(2026, 5, 31))


def test_json_body_values_may_be_numbers_booleans_and_lists(client, operator):
    promotion = PromotionFactory()
    body = {
        "func": "promotion.promocode.edit",
        "authinfo": "operator:secret",
        "sok": "ok",
        "plid": promotion.pk,
        "code": "NUM??",
        "count": 3,
        "onlydigit": True,
    }
    answer = client.post("/billmgr", json.dumps(body), content_type="application/json").json()
    assert answer["count"] == "3"
    codes = list(promotion.promocodes.values_list("code", flat=True))
    assert len(codes) == 3 and all(c[3:].isdigit() for c in codes)


def test_unknown_format_is_a_value_error_in_bjson(door):
    answer = door.raw("promotion", out="yaml").json()
    assert answer["error"]["type"] == "value"
    assert answer["error"]["object"] == "out"


def test_malformed_json_body_is_a_value_error_not_a_crash(client, operator):
    response = client.post("/billmgr", b"{not json", content_type="application/json")
    assert response.status_code == 200
    assert response.json()["error"] == {
        "type": "value",
        "object": "body",
        "msg": "The body is not valid JSON",
    }


# Errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("out", FORMATS)
def test_error_types_in_every_format(door, anonymous_door, out):
    promotion = PromotionFactory()
    PromoCodeFactory(code="TAKEN")
    cases = {
        "auth": anonymous_door("promotion", out=out),
        "missing": door("promotion.edit", out=out, elid=999999),
        "value": door(
            "promotion.discount.edit", out=out, sok="ok", plid=promotion.pk, percentage="abc"
        ),
        "empty": door(
            "promotion.edit",
            out=out,
            sok="ok",
            project=promotion.provider_id,
            fromdate="2026-01-01",
        ),
        "exists": door(
            "promotion.promocode.edit", out=out, sok="ok", plid=promotion.pk, code="taken"
        ),
        "limit": door(
            "promotion.promocode.edit", out=out, sok="ok", plid=promotion.pk, code="L?", count=37
        ),
    }
    for kind, answer in cases.items():
        assert answer["error"]["type"] == kind, (kind, answer)
        assert answer["error"]["msg"]
    assert cases["value"]["error"]["object"] == "percentage"
    assert cases["empty"]["error"]["object"] == "name"
    assert cases["exists"]["error"]["object"] == "code"
    assert cases["limit"]["error"]["object"] == "count"


def test_access_error_for_staff_without_the_permission(client):
    # given a staff user who may view promotions but not change them
    user = UserFactory(username="viewer", password="secret")
    user.user_permissions.add(Permission.objects.get(codename="view_promotion"))
    promotion = PromotionFactory(name="Old")
    viewer = Door(client, authinfo="viewer:secret")
    # when they list and then try to save
    listing = viewer("promotion")
    denied = viewer("promotion.edit", elid=promotion.pk, sok="ok", name="New")
    deleted = viewer("promotion.delete", elid=promotion.pk)
    # then the list works, and saving and deleting are refused with nothing changed
    assert listing["p_elems"] == "1"
    assert denied["error"]["type"] == "access"
    assert deleted["error"]["type"] == "access"
    promotion.refresh_from_db()
    assert promotion.name == "Old"


def test_staff_without_view_permission_cannot_read(client):
    UserFactory(username="nobody", password="secret")
    PromotionFactory()
    answer = Door(client, authinfo="nobody:secret")("promotion")
    assert answer["error"]["type"] == "access"


def test_wrong_password_is_an_auth_error(client, operator):
    answer = Door(client, authinfo="operator:wrong")("promotion")
    assert answer["error"]["type"] == "auth"


def test_every_registered_function_refuses_anonymous_callers(anonymous_door):
    for name, spec in FUNCS.items():
        if spec.public:
            continue
        answer = anonymous_door(name, elid=1, plid=1)
        assert answer["error"]["type"] == "auth", name


# Sessions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("out", FORMATS)
def test_auth_answers_a_session_usable_as_auth(anonymous_door, operator, out):
    session = anonymous_door("auth", out=out, username="operator", password="secret")["auth"]
    assert len(session) == 32
    answer = anonymous_door("promotion", auth=session)
    assert "elem" in answer


def test_auth_answer_shapes(anonymous_door, operator):
    raw = anonymous_door.raw("auth", username="operator", password="secret").json()
    sid = raw["auth"]
    doc = anonymous_door.raw("auth", out="json", username="operator", password="secret").json()
    assert set(doc["doc"]["auth"]) == {"$id", "$", "$level"}
    assert doc["doc"]["auth"]["$id"] == doc["doc"]["auth"]["$"] != sid
    assert doc["doc"]["auth"]["$level"] == raw["level"] == "28"
    xml = anonymous_door.raw("auth", out="xml", username="operator", password="secret").content
    assert b'<auth id="' in xml and b'level="28"' in xml


def test_session_ends_after_an_idle_hour_but_not_while_used(anonymous_door, operator):
    with time_machine.travel("2026-11-23 10:00:00Z", tick=False) as clock:
        session = anonymous_door("auth", username="operator", password="secret")["auth"]
        # used at 10:50, so idle time restarts
        clock.move_to("2026-11-23 10:50:00Z")
        assert "elem" in anonymous_door("promotion", auth=session)
        clock.move_to("2026-11-23 11:49:00Z")
        assert "elem" in anonymous_door("promotion", auth=session)
        # then an hour and a minute of silence ends it
        clock.move_to("2026-11-23 12:50:00Z")
        expired = anonymous_door("promotion", auth=session)
    assert expired["error"]["type"] == "auth"
    assert "expired" in expired["error"]["msg"]


def test_unknown_session_is_an_auth_error(anonymous_door):
    assert anonymous_door("promotion", auth="deadbeef")["error"]["type"] == "auth"


# Lists: paging and filters ----------------------------------------------------------------------


def test_paging_with_p_num_and_p_cnt(door):
    promotions = PromotionFactory.create_batch(5)
    page = door("promotion", p_num=2, p_cnt=2)
    assert [r["id"] for r in page["elem"]] == [str(p.pk) for p in promotions[2:4]]
    assert (page["p_num"], page["p_cnt"], page["p_elems"]) == ("2", "2", "5")


@pytest.mark.parametrize("bad", ["0", "-1", "x"])
def test_bad_paging_is_a_value_error(door, bad):
    assert door("promotion", p_num=bad)["error"]["object"] == "p_num"


def test_list_filters_by_its_columns(door):
    winter = PromotionFactory(name="Winter deal")
    PromotionFactory(name="Summer deal")
    answer = door("promotion", name="winter")
    assert [r["id"] for r in answer["elem"]] == [str(winter.pk)]


def test_status_filter_uses_the_date_window(door):
    today = datetime.date.today()
    planned = PromotionFactory(fromdate=today + datetime.timedelta(days=5), todate=None)
    PromotionFactory()
    answer = door("promotion", status="planned")
    assert [r["id"] for r in answer["elem"]] == [str(planned.pk)]
    assert door("promotion", status="bogus")["error"]["object"] == "status"


def test_saved_filter_applies_until_cleared(door):
    # given two promotions and a filter saved by name
    wanted = PromotionFactory(name="Cyber Monday")
    PromotionFactory(name="Other")
    assert door("promotion.filter", sok="ok", name="cyber")["ok"] is True
    # then the list keeps applying it, and the filter form shows it
    assert [r["id"] for r in door("promotion")["elem"]] == [str(wanted.pk)]
    assert door("promotion.filter")["name"] == "cyber"
    # when it is cleared, every promotion shows again
    door("promotion.filter", sok="ok")
    assert door("promotion")["p_elems"] == "2"


def test_saved_filter_rejects_a_bad_value(door):
    answer = door("promotion.filter", sok="ok", fromdate="31.12.2026")
    assert answer["error"] == {
        "type": "value",
        "object": "fromdate",
        "msg": "fromdate must be a date as YYYY-MM-DD",
    }


# Delete -----------------------------------------------------------------------------------------


def test_delete_of_several_ids_is_all_or_nothing(door):
    promotion = PromotionFactory()
    kept = DiscountFactory.create_batch(2, promotion=promotion)
    # when one of the ids does not exist
    answer = door("promotion.discount.delete", elid=f"{kept[0].pk}, {kept[1].pk}, 99999")
    # then nothing is deleted and the missing id is named
    assert answer["error"]["type"] == "missing"
    assert "99999" in answer["error"]["msg"]
    assert Discount.objects.filter(promotion=promotion).count() == 2
    # when every id exists (bare comma accepted too), all go
    assert door("promotion.discount.delete", elid=f"{kept[0].pk},{kept[1].pk}")["ok"] is True
    assert not Discount.objects.filter(promotion=promotion).exists()


def test_delete_refused_by_a_rule_deletes_nothing(door):
    from tests.factories import ClientFactory

    free, used = PromotionFactory.create_batch(2)
    code = PromoCodeFactory(promotion=used)
    PromoCodeUsageFactory(promocode=code, client=ClientFactory())
    answer = door("promotion.delete", elid=f"{free.pk}, {used.pk}")
    assert answer["error"]["type"] == "value"
    assert Promotion.objects.filter(pk__in=[free.pk, used.pk]).count() == 2


def test_internal_errors_are_answered_in_the_protocol(door, monkeypatch):
    from billmgr_api import registry

    def boom(req):
        raise RuntimeError("bug")

    spec = registry.FUNCS["promotion"]
    monkeypatch.setitem(registry.FUNCS, "promotion", spec.__class__("promotion", boom, None, False))
    response = door.raw("promotion", out="xml")
    assert response.status_code == 500
    assert b'<error type="internal"' in response.content
