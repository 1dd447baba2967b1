"""The referralprogram function family, in bjson and in xml (the same assertions on both)."""

import datetime
from decimal import Decimal

import pytest

from common.models import History
from referrals.models import ReferralProgram, Rule, RuleCondition, RuleConditionGroup
from tests.factories import (
    ClientGroupFactory,
    ProviderFactory,
    ReferralFactory,
    ReferralProgramFactory,
    RuleFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("out", ["bjson", "xml"])]


def new_program(door, out, provider, **extra):
    params = {"project": provider.pk, "name": "Friends", "start_date": "2026-01-01", **extra}
    return door("referralprogram.edit", out=out, sok="ok", **params)


def test_program_create_answers_the_seed_shape_and_saves_every_field(door, out):
    # given a provider and two client groups
    provider = ProviderFactory()
    members, banned = ClientGroupFactory(), ClientGroupFactory()
    # when a program is created with every field of referralprogram.edit
    answer = new_program(
        door,
        out,
        provider,
        promocode="FRIEND@ID@",
        end_date="2026-12-31",
        assign_by_default="on",
        url="https://example.com/signup",
        account_group=members.pk,
        account_group_restrict=banned.pk,
    )
    # then the answer is the seed's ok (plus the new id) and each field is stored
    assert (
        answer["ok"] is True
        and answer.get("func", "referralprogram.edit") == "referralprogram.edit"
    )
    program = ReferralProgram.objects.get(pk=answer["id"])
    assert (program.provider, program.promocode, program.end_date, program.assign_by_default) == (
        provider,
        "FRIEND@ID@",
        datetime.date(2026, 12, 31),
        True,
    )
    assert (program.url, program.account_group, program.account_group_restrict) == (
        "https://example.com/signup",
        members,
        banned,
    )
    shown = door("referralprogram.edit", out=out, elid=program.pk)
    assert (shown["promocode"], shown["assign_by_default"], shown["project"]) == (
        "FRIEND@ID@",
        "on",
        str(provider.pk),
    )
    listing = door("referralprogram", out=out)["elem"]
    assert [(r["id"], r["name"]) for r in listing] == [(str(program.pk), "Friends")]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"promocode": "FRIEND"}, ("value", "promocode")),
        ({"promocode": "@ID@-@ID@"}, ("value", "promocode")),
        ({"end_date": "2025-12-31"}, ("value", "end_date")),
        ({"start_date": "soon"}, ("value", "start_date")),
        ({"name": ""}, ("empty", "name")),
        ({"status": "sleeping"}, ("value", "status")),
    ],
)
def test_program_bad_values_are_refused_and_nothing_is_saved(door, out, extra, error):
    answer = new_program(door, out, ProviderFactory(), **extra)
    assert (answer["error"]["type"], answer["error"]["object"]) == error
    assert not ReferralProgram.objects.exists()


def test_only_one_default_program_per_provider(door, out):
    # given a provider with a default program
    provider = ProviderFactory()
    new_program(door, out, provider, assign_by_default="on")
    # when a second default program is created for it, and one for another provider
    second = new_program(door, out, provider, name="Second", assign_by_default="on")
    other = new_program(door, out, ProviderFactory(), name="Elsewhere", assign_by_default="on")
    # then the second is refused as existing, the other provider's is fine
    assert (second["error"]["type"], second["error"]["object"]) == ("exists", "assign_by_default")
    assert other["ok"] is True
    assert ReferralProgram.objects.filter(assign_by_default=True).count() == 2


def test_program_delete_is_all_or_nothing(door, out):
    # given a program with referrals and one without
    busy, idle = ReferralProgramFactory(), ReferralProgramFactory()
    ReferralFactory(program=busy)
    # when both are deleted at once, the busy one refuses and nothing goes
    refused = door("referralprogram.delete", out=out, elid=f"{busy.pk}, {idle.pk}")
    assert refused["error"]["object"] == "elid" and busy.name in refused["error"]["msg"]
    assert ReferralProgram.objects.count() == 2
    # when only the idle one is deleted, it goes and the deletion is in the history
    assert door("referralprogram.delete", out=out, elid=idle.pk)["ok"] is True
    assert list(ReferralProgram.objects.all()) == [busy]
    assert History.objects.filter(object_id=idle.pk, action="referralprogram.delete").exists()


def test_rule_functions_list_create_edit_delete(door, out):
    program = ReferralProgramFactory()
    created = door(
        "referralprogram.rule.edit",
        out=out,
        sok="ok",
        plid=program.pk,
        name="10% of spend",
        reward_type="percent",
        amount="10",
        schedule="quarter",
        active="on",
    )
    rule = Rule.objects.get(pk=created["id"])
    assert (rule.program, rule.amount, rule.schedule, rule.active) == (
        program,
        Decimal("10"),
        "quarter",
        True,
    )
    listing = door("referralprogram.rule", out=out, elid=program.pk)["elem"]
    assert [(r["name"], r["reward_type"], r["schedule"]) for r in listing] == [
        ("10% of spend", "percent", "quarter")
    ]
    too_much = door(
        "referralprogram.rule.edit", out=out, sok="ok", plid=program.pk, elid=rule.pk, amount="150"
    )
    assert (too_much["error"]["type"], too_much["error"]["object"]) == ("value", "amount")
    fixed = door(
        "referralprogram.rule.edit",
        out=out,
        sok="ok",
        plid=program.pk,
        elid=rule.pk,
        reward_type="fixed",
        amount="150",
    )
    assert fixed["ok"] is True
    rule.refresh_from_db()
    assert (rule.reward_type, rule.amount) == ("fixed", Decimal("150"))
    # the list says what a fixed rule pays, and that other currencies earn nothing under it
    [listed] = door("referralprogram.rule", out=out, elid=program.pk)["elem"]
    assert listed["description"] == (
        "150 USD per qualifying expense in USD; "
        "expenses in other currencies earn nothing under this rule"
    )
    assert History.objects.filter(
        object_id=program.pk, desc__contains="has been changed", action="referralprogram.rule.edit"
    ).exists()
    assert door("referralprogram.rule.delete", out=out, elid=rule.pk)["ok"] is True
    assert not Rule.objects.exists()


@pytest.mark.parametrize(
    ("ctype", "field", "value"),
    [
        ("1", "amount_ctype_1", "100"),
        ("2", "item_count", "3"),
        ("3", "referral_count", "5"),
        ("4", "amount_ctype_4", "1000"),
    ],
)
def test_each_condition_type_needs_its_own_amount_field(door, out, ctype, field, value):
    rule = RuleFactory(program=ReferralProgramFactory(), name="r", amount=Decimal("5"))
    missing = door(
        "referralprogram.rule.condition.edit", out=out, sok="ok", plid=rule.pk, ctype=ctype
    )
    assert missing["error"]["object"] == field
    saved = door(
        "referralprogram.rule.condition.edit",
        out=out,
        sok="ok",
        plid=rule.pk,
        ctype=ctype,
        comparison="gt",
        **{field: value},
    )
    condition = RuleCondition.objects.get(pk=saved["id"])
    assert (condition.ctype, condition.comparison, Decimal(str(getattr(condition, field)))) == (
        ctype,
        "gt",
        Decimal(value),
    )


def test_condition_groups_or_within_and_across(door, out):
    # given a rule with conditions A, B in group "volume" and C alone
    rule = RuleFactory(program=ReferralProgramFactory(), name="r", amount=Decimal("5"))

    def add(**params):
        return door(
            "referralprogram.rule.condition.edit", out=out, sok="ok", plid=rule.pk, **params
        )

    a = add(ctype="1", amount_ctype_1="100", group="new", groupname="volume")
    b = add(ctype="4", amount_ctype_4="1000", group="volume")
    c = add(ctype="3", referral_count="2", orderperiods="1, 12")
    # then the list shows the groups, and the form reads them back
    listing = door("referralprogram.rule.condition", out=out, elid=rule.pk)["elem"]
    assert [(r["id"], r["cgroup"]) for r in listing] == [
        (a["id"], "volume"),
        (b["id"], "volume"),
        (c["id"], ""),
    ]
    shown = door("referralprogram.rule.condition.edit", out=out, plid=rule.pk, elid=c["id"])
    assert (shown["group"], shown["orderperiods"]) == ("none", "1, 12")
    # a duplicate new group name is refused; unknown group names too
    dup = add(ctype="0", group="new", groupname="volume")
    assert dup["error"]["type"] == "exists"
    unknown = add(ctype="0", group="nope")
    assert unknown["error"]["object"] == "group"
    # deleting the grouped conditions drops the empty group
    door("referralprogram.rule.condition.delete", out=out, elid=f"{a['id']}, {b['id']}")
    assert not RuleConditionGroup.objects.exists()


def test_functions_need_referral_permissions(client, out):
    from tests.conftest import Door
    from tests.factories import UserFactory

    UserFactory(username="clerk", password="pw", is_staff=True)
    answer = Door(client, authinfo="clerk:pw")("referralprogram", out=out)
    assert answer["error"]["type"] == "access"


def test_an_account_created_on_the_door_is_an_enrolled_partner(door, out):
    # given a default program of the provider
    program = ReferralProgramFactory(assign_by_default=True, promocode="PAL@ID@")
    # when an account is created through account.edit
    created = door("account.edit", out=out, sok="ok", name="Ann", project=program.provider_id)
    # then the program's partner list shows them with their code and no referrals yet
    partners = door("referralprogram.partner", out=out, elid=program.pk)["elem"]
    assert [(p["id"], p["code"], p["referrals"]) for p in partners] == [
        (str(created["id"]), f"PAL{created['id']}", "0")
    ]


def test_a_taken_program_title_is_an_exists_error_naming_name(door, out):
    # given a program "Friends" of a provider
    provider = ProviderFactory()
    new_program(door, out, provider)
    # when another is created, or one renamed, to the same title in other letters
    again = new_program(door, out, provider, name="FRIENDS")
    other = new_program(door, out, provider, name="Others")
    renamed = door("referralprogram.edit", out=out, sok="ok", elid=other["id"], name="friends")
    # then both are refused as taken, on the name, and nothing changed
    for answer in (again, renamed):
        assert (answer["error"]["type"], answer["error"]["object"]) == ("exists", "name")
    assert sorted(ReferralProgram.objects.values_list("name", flat=True)) == ["Friends", "Others"]
