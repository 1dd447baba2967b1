"""promotions.services: writes with history, condition groups and promo code generation."""

import datetime
import re
from collections import Counter

import factory
import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError

from common.actors import Actor
from common.models import History
from common.selectors import history_of
from promotions import codegen, services
from promotions.models import Condition, ConditionGroup, PromoCode, PromoCodeUsage, Promotion
from tests.conftest import run_in_threads
from tests.factories import (
    ClientFactory,
    ConditionFactory,
    ConditionGroupFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


class PromoCodeUsageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PromoCodeUsage

    promocode = factory.SubFactory(PromoCodeFactory)
    client = factory.SubFactory(ClientFactory)


@pytest.fixture
def actor(operator) -> Actor:
    return Actor(user=operator, ip="10.1.2.3", action="test.action")


def descs(obj) -> list[str]:
    return list(history_of(obj=obj).values_list("desc", flat=True))


def error_codes(exc: pytest.ExceptionInfo, field: str) -> list[str]:
    return [e.code for e in exc.value.error_dict[field]]


# Promotions -------------------------------------------------------------------------------------


@time_machine.travel("2026-03-10 12:00:00+00:00", tick=False)
def test_promotion_create_saves_it_and_records_who_created_it(actor, operator):
    provider = ProviderFactory()
    # when a promotion is created
    promotion = services.promotion_create(
        actor=actor,
        name="Spring",
        provider=provider,
        fromdate=datetime.date(2026, 3, 1),
        todate=datetime.date(2026, 3, 31),
    )
    # then it is in the database and its history tells who did it, from where and how
    stored = Promotion.objects.get(pk=promotion.pk)
    assert (stored.name, stored.provider, stored.status) == ("Spring", provider, "active")
    line = history_of(obj=stored).get()
    assert (line.desc, line.user, line.username, line.ip, line.action) == (
        'Promotion "Spring" has been created',
        operator,
        "operator",
        "10.1.2.3",
        "test.action",
    )
    assert line.changedate == datetime.datetime(2026, 3, 10, 12, tzinfo=datetime.UTC)


def test_promotion_create_refuses_an_end_before_the_start(actor):
    with pytest.raises(ValidationError) as exc:
        services.promotion_create(
            actor=actor,
            name="Backwards",
            provider=ProviderFactory(),
            fromdate=datetime.date(2026, 3, 31),
            todate=datetime.date(2026, 3, 1),
        )
    assert "todate" in exc.value.error_dict
    assert not Promotion.objects.exists()
    assert not History.objects.exists()


def test_promotion_update_records_one_line_per_changed_field(actor):
    # given a promotion
    promotion = PromotionFactory(name="Old name", todate=datetime.date(2030, 1, 1))
    # when its name and end date change and its provider is sent unchanged
    services.promotion_update(
        promotion=promotion,
        actor=actor,
        name="New name",
        todate=datetime.date(2030, 2, 1),
        provider=promotion.provider,
    )
    # then both changes are saved and each has its own history line with the actor
    promotion.refresh_from_db()
    assert (promotion.name, promotion.todate) == ("New name", datetime.date(2030, 2, 1))
    lines = history_of(obj=promotion)
    assert sorted(lines.values_list("desc", flat=True)) == [
        'End date has been changed from "2030-01-01" into "2030-02-01"',
        'Name has been changed from "Old name" into "New name"',
    ]
    assert {(h.username, h.ip, h.action) for h in lines} == {
        ("operator", "10.1.2.3", "test.action")
    }


def test_promotion_update_with_nothing_changed_writes_no_history(actor):
    promotion = PromotionFactory(name="Same")
    services.promotion_update(promotion=promotion, actor=actor, name="Same")
    assert descs(promotion) == []


def test_promotion_update_refuses_an_end_before_the_start_and_keeps_the_old_value(actor):
    promotion = PromotionFactory(fromdate=datetime.date(2026, 3, 1), todate=None)
    with pytest.raises(ValidationError):
        services.promotion_update(
            promotion=promotion, actor=actor, todate=datetime.date(2026, 2, 1)
        )
    promotion.refresh_from_db()
    assert promotion.todate is None
    assert descs(promotion) == []


def test_archive_and_restore_are_idempotent_and_recorded_once_each(actor):
    promotion = PromotionFactory()
    # when a promotion is archived twice
    services.promotion_archive(promotion=promotion, actor=actor)
    services.promotion_archive(promotion=promotion, actor=actor)
    # then it is archived with one history line
    assert Promotion.objects.get(pk=promotion.pk).archived is True
    assert descs(promotion) == ["Promotion has been archived"]
    # when it is restored twice
    services.promotion_restore(promotion=promotion, actor=actor)
    services.promotion_restore(promotion=promotion, actor=actor)
    # then it is live again with one more line
    assert Promotion.objects.get(pk=promotion.pk).archived is False
    assert sorted(descs(promotion)) == [
        "Promotion has been archived",
        "Promotion has been restored from archive",
    ]


def test_restoring_a_live_promotion_changes_nothing(actor):
    promotion = PromotionFactory()
    services.promotion_restore(promotion=promotion, actor=actor)
    assert Promotion.objects.get(pk=promotion.pk).archived is False
    assert descs(promotion) == []


def test_delete_many_deletes_every_promotion_and_records_each(actor):
    # given two promotions, one with codes, and a third one that stays
    doomed = PromotionFactory.create_batch(2)
    PromoCodeFactory.create_batch(2, promotion=doomed[0])
    kept = PromotionFactory()
    ids = [p.pk for p in doomed]
    names = [p.name for p in doomed]
    # when the two are deleted
    deleted = services.promotion_delete_many(promotions=doomed, actor=actor)
    # then they and their codes are gone, the other stays, and each deletion is in history
    assert deleted == 2
    assert list(Promotion.objects.all()) == [kept]
    assert not PromoCode.objects.exists()
    lines = History.objects.filter(
        content_type=ContentType.objects.get_for_model(Promotion), object_id__in=ids
    )
    assert sorted(lines.values_list("object_id", "desc")) == [
        (pk, f'Promotion "{name}" has been deleted') for pk, name in zip(ids, names, strict=True)
    ]


def test_delete_many_refuses_all_when_one_promotion_has_used_codes(actor):
    # given a promotion whose code has been used and one that is unused
    used = PromotionFactory(name="Used one")
    code = PromoCodeFactory(promotion=used)
    PromoCodeUsageFactory(promocode=code)
    unused = PromotionFactory()
    # when both are deleted together
    with pytest.raises(ValidationError) as exc:
        services.promotion_delete_many(promotions=[unused, used], actor=actor)
    # then neither is deleted and the error names the used one
    assert "Used one" in exc.value.message_dict["elid"][0]
    assert Promotion.objects.count() == 2
    assert not History.objects.exists()


# Condition groups -------------------------------------------------------------------------------


@pytest.mark.parametrize("group", [None, "", "none"])
def test_condition_without_a_group(actor, group):
    promotion = PromotionFactory()
    condition = services.condition_create(
        promotion=promotion,
        actor=actor,
        group=group,
        ctype=Condition.Type.SERVICE_COUNT,
        amount=2,
    )
    assert Condition.objects.get(pk=condition.pk).group is None
    assert not ConditionGroup.objects.exists()
    assert descs(promotion) == [f'Condition "{condition.describe()}" has been created']


def test_condition_in_a_new_group_creates_the_group(actor):
    promotion = PromotionFactory()
    condition = services.condition_create(
        promotion=promotion,
        actor=actor,
        group="new",
        groupname="  loyal or new  ",
        ctype=Condition.Type.SERVICE_COUNT,
        amount=1,
    )
    group = ConditionGroup.objects.get()
    assert (group.promotion, group.name) == (promotion, "loyal or new")
    assert Condition.objects.get(pk=condition.pk).group == group


def test_condition_joins_an_existing_group_of_its_promotion_by_name(actor):
    # given two promotions each with a group called "either"
    promotion = PromotionFactory()
    mine = ConditionGroupFactory(promotion=promotion, name="either")
    ConditionGroupFactory(name="either")
    ConditionFactory(promotion=promotion, group=mine)
    # when a condition names that group
    condition = services.condition_create(
        promotion=promotion,
        actor=actor,
        group="either",
        ctype=Condition.Type.PAID_SERVICES,
        amount=1,
    )
    # then it joins its own promotion's group, and no group is created
    assert Condition.objects.get(pk=condition.pk).group == mine
    assert set(mine.conditions.all()) == set(promotion.conditions.all())
    assert ConditionGroup.objects.count() == 2


@pytest.mark.parametrize(
    ("group", "groupname", "field", "code"),
    [
        ("new", "", "groupname", None),
        ("new", "   ", "groupname", None),
        ("new", "taken", "groupname", "unique"),
        ("missing", None, "group", None),
        ("elsewhere", None, "group", None),  # the name of another promotion's group
    ],
)
def test_condition_group_errors_save_nothing(actor, group, groupname, field, code):
    # given a promotion with a group "taken" and another promotion with a group "elsewhere"
    promotion = PromotionFactory()
    ConditionGroupFactory(promotion=promotion, name="taken")
    ConditionGroupFactory(name="elsewhere")
    # when a condition asks for a group that cannot be
    with pytest.raises(ValidationError) as exc:
        services.condition_create(
            promotion=promotion,
            actor=actor,
            group=group,
            groupname=groupname,
            ctype=Condition.Type.SERVICE_COUNT,
            amount=1,
        )
    # then the error points at the field and nothing is saved
    assert field in exc.value.error_dict
    if code:
        assert error_codes(exc, field) == [code]
    assert not Condition.objects.exists()
    assert ConditionGroup.objects.count() == 2


def test_an_invalid_condition_in_a_new_group_leaves_no_group_behind(actor):
    promotion = PromotionFactory()
    with pytest.raises(ValidationError) as exc:
        services.condition_create(
            promotion=promotion,
            actor=actor,
            group="new",
            groupname="orphan",
            ctype=Condition.Type.SERVICE_COUNT,  # needs an amount
        )
    assert "amount" in exc.value.error_dict
    assert not ConditionGroup.objects.exists()


def test_group_is_dropped_when_its_last_condition_moves_out(actor):
    # given a group with two conditions
    promotion = PromotionFactory()
    group = ConditionGroupFactory(promotion=promotion)
    first, second = ConditionFactory.create_batch(2, promotion=promotion, group=group)
    # when one leaves, the group stays
    services.condition_update(condition=first, actor=actor, group="none")
    assert ConditionGroup.objects.filter(pk=group.pk).exists()
    # when the last one leaves, the group is gone
    services.condition_update(condition=second, actor=actor, group="none")
    assert not ConditionGroup.objects.filter(pk=group.pk).exists()
    assert Condition.objects.filter(group__isnull=True).count() == 2


def test_moving_a_condition_into_a_new_group_drops_its_emptied_old_group(actor):
    promotion = PromotionFactory()
    old = ConditionGroupFactory(promotion=promotion, name="old")
    condition = ConditionFactory(promotion=promotion, group=old)
    services.condition_update(condition=condition, actor=actor, group="new", groupname="fresh")
    assert list(ConditionGroup.objects.values_list("name", flat=True)) == ["fresh"]
    assert Condition.objects.get(pk=condition.pk).group.name == "fresh"


def test_updating_a_condition_without_naming_a_group_keeps_it(actor):
    promotion = PromotionFactory()
    group = ConditionGroupFactory(promotion=promotion)
    condition = ConditionFactory(promotion=promotion, group=group, amount=1)
    services.condition_update(condition=condition, actor=actor, amount=3)
    stored = Condition.objects.get(pk=condition.pk)
    assert (stored.amount, stored.group) == (3, group)


def test_group_is_dropped_when_its_last_condition_is_deleted(actor):
    # given a group with two conditions and an ungrouped condition
    promotion = PromotionFactory()
    group = ConditionGroupFactory(promotion=promotion)
    grouped = ConditionFactory.create_batch(2, promotion=promotion, group=group)
    loose = ConditionFactory(promotion=promotion)
    # when one grouped condition is deleted the group stays
    services.condition_delete_many(conditions=grouped[:1], actor=actor)
    assert ConditionGroup.objects.filter(pk=group.pk).exists()
    # when the other is deleted with the ungrouped one, the group goes too
    assert services.condition_delete_many(conditions=[grouped[1], loose], actor=actor) == 2
    assert not ConditionGroup.objects.exists()
    assert not Condition.objects.exists()


# Promo codes: fixed -----------------------------------------------------------------------------


def test_fixed_code_is_stored_upper_case_with_its_settings(actor):
    promotion = PromotionFactory()
    created = services.promocode_create(
        promotion=promotion, actor=actor, code="  welcome20 ", uselimit=5, account_uselimit=1
    )
    stored = PromoCode.objects.get(pk=created.pk)
    assert (stored.promotion, stored.code, stored.uselimit, stored.account_uselimit) == (
        promotion,
        "WELCOME20",
        5,
        1,
    )
    assert descs(promotion) == ['Promo code "WELCOME20" has been created']


@pytest.mark.parametrize("existing", ["WELCOME", "welcome"])
def test_a_duplicate_fixed_code_is_refused_as_not_unique(actor, existing):
    # given a code of another promotion
    PromoCodeFactory(code="WELCOME")
    promotion = PromotionFactory()
    # when the same code (in any case) is created again
    with pytest.raises(ValidationError) as exc:
        services.promocode_create(promotion=promotion, actor=actor, code=existing)
    # then it is refused as a uniqueness error and nothing is saved
    assert error_codes(exc, "code") == ["unique"]
    assert PromoCode.objects.count() == 1
    assert descs(promotion) == []


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "Enter a promo code."),
        ("   ", "Enter a promo code."),
        ("GEN-??", 'A "?" makes a template'),
        ("X" * 101, "at most 100 characters"),
    ],
)
def test_promocode_create_refuses_bad_input(actor, code, message):
    promotion = PromotionFactory()
    with pytest.raises(ValidationError) as exc:
        services.promocode_create(promotion=promotion, actor=actor, code=code)
    assert message in " ".join(exc.value.message_dict["code"])
    assert not PromoCode.objects.exists()


@pytest.mark.parametrize(
    ("template", "count", "field"),
    [
        ("FIXED", 2, "code"),
        ("GEN-??", 0, "count"),
        ("GEN-??", -5, "count"),
        ("X" * 99 + "??", 1, "code"),  # longer than a code may be
    ],
)
def test_promocodes_generate_refuses_bad_input(actor, template, count, field):
    promotion = PromotionFactory()
    with pytest.raises(ValidationError) as exc:
        services.promocodes_generate(
            promotion=promotion, actor=actor, template=template, count=count
        )
    assert field in exc.value.error_dict
    assert not PromoCode.objects.exists()


# Promo codes: generated -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "onlydigit", "count"),
    [
        ("spring-??????", False, 300),
        ("PIN-????", True, 250),
        ("?A?B?", False, 40),
    ],
)
def test_template_generates_exactly_count_unique_codes_matching_it(
    actor, template, onlydigit, count
):
    # given a promotion with a code of its own
    promotion = PromotionFactory()
    PromoCodeFactory(promotion=promotion, code="OLD")
    # when codes are generated from a template
    made = services.promocodes_generate(
        promotion=promotion,
        actor=actor,
        template=template,
        count=count,
        digits_only=onlydigit,
        uselimit=3,
    )
    # then exactly `count` new distinct codes of the (upper-cased) template exist, with the settings
    new = PromoCode.objects.filter(promotion=promotion).exclude(code="OLD")
    codes = list(new.values_list("code", flat=True))
    assert made == count
    assert len(codes) == len(set(codes)) == count
    pattern = codegen.template_regex(template.upper(), digits_only=onlydigit)
    assert all(re.search(pattern, c) for c in codes)
    assert set(new.values_list("uselimit", "onlydigit")) == {(3, onlydigit)}
    assert descs(promotion)[0] == (
        f'{count} promo codes have been generated from template "{template.upper()}"'
    )


@pytest.mark.parametrize("onlydigit", [False, True])
def test_generated_codes_are_spread_evenly_over_the_alphabet_in_every_position(actor, onlydigit):
    # given a template with plenty of room
    alphabet = codegen.alphabet_for(digits_only=onlydigit)
    count = 5000
    # when one batch of codes is generated
    services.promocodes_generate(
        promotion=PromotionFactory(),
        actor=actor,
        template="E-?????????",
        count=count,
        digits_only=onlydigit,
    )
    # then in each placeholder position every character is about equally frequent (chi-square
    # under 100 on at most 35 degrees of freedom, beyond the 1e-7 tail), e.g. codes starting
    # with the last letters of the alphabet are not left out
    codes = list(PromoCode.objects.values_list("code", flat=True))
    expected = count / len(alphabet)
    for position in range(2, 11):
        seen = Counter(c[position] for c in codes)
        chi2 = sum((seen[ch] - expected) ** 2 / expected for ch in alphabet)
        assert chi2 < 100, f"position {position}: {sorted(seen.items())}"


def test_generation_reports_progress_up_to_the_count(actor):
    seen = []
    services.promocodes_generate(
        promotion=PromotionFactory(),
        actor=actor,
        template="P-?????",
        count=120,
        progress=seen.append,
    )
    assert seen
    assert seen == sorted(seen)
    assert seen[-1] == 120


def test_enumeration_fills_a_small_template_completely(actor):
    # given a digits-only template with 100 possible codes
    promotion = PromotionFactory()
    # when all 100 are asked for
    made = services.promocodes_generate(
        promotion=promotion, actor=actor, template="T-??", count=100, digits_only=True
    )
    # then every one of them exists
    assert made == 100
    assert set(PromoCode.objects.values_list("code", flat=True)) == {
        f"T-{n:02d}" for n in range(100)
    }
    # when one more is asked for, it is refused with a "limit" error and nothing changes
    with pytest.raises(ValidationError) as exc:
        services.promocodes_generate(
            promotion=promotion, actor=actor, template="T-??", count=1, digits_only=True
        )
    assert error_codes(exc, "count") == ["limit"]
    assert PromoCode.objects.count() == 100
    assert len(descs(promotion)) == 1


def test_enumeration_takes_exactly_the_codes_still_free(actor):
    # given a template with 100 codes of which 97 are taken (by codes of any promotion)
    promotion = PromotionFactory()
    taken = {f"T-{n:02d}" for n in range(100)} - {"T-07", "T-42", "T-99"}
    for code in taken:
        PromoCodeFactory(code=code)
    # when the three left are asked for
    made = services.promocodes_generate(
        promotion=promotion, actor=actor, template="T-??", count=3, digits_only=True
    )
    # then exactly those three are created for the promotion
    assert made == 3
    assert set(promotion.promocodes.values_list("code", flat=True)) == {"T-07", "T-42", "T-99"}


@pytest.mark.parametrize(
    ("template", "onlydigit", "count"),
    [
        ("T-??", True, 101),
        ("T-?", False, 37),
        ("T-???", True, 1001),
    ],
)
def test_template_too_small_is_refused_and_saves_nothing(actor, template, onlydigit, count):
    promotion = PromotionFactory()
    with pytest.raises(ValidationError) as exc:
        services.promocodes_generate(
            promotion=promotion, actor=actor, template=template, count=count, digits_only=onlydigit
        )
    assert error_codes(exc, "count") == ["limit"]
    assert not PromoCode.objects.exists()
    assert descs(promotion) == []


def test_only_codes_of_the_template_count_as_taken(actor):
    # given codes that look like the template's but are not, and one that is
    promotion = PromotionFactory()
    for code in ["AB-1X", "XAB-12", "AB-123", "AB_12", "AB-05"]:
        PromoCodeFactory(code=code)
    # when 99 digit codes of "AB-??" are asked for, they fit: only AB-05 was taken
    assert (
        services.promocodes_generate(
            promotion=promotion, actor=actor, template="AB-??", count=99, digits_only=True
        )
        == 99
    )
    # and then not one more
    with pytest.raises(ValidationError) as exc:
        services.promocodes_generate(
            promotion=promotion, actor=actor, template="AB-??", count=1, digits_only=True
        )
    assert exc.value.error_dict["count"][0].message.startswith("The template AB-?? can make only 0")


def test_bad_shared_settings_fail_before_any_code_is_made(actor):
    promotion = PromotionFactory()
    with pytest.raises(ValidationError) as exc:
        services.promocodes_generate(
            promotion=promotion,
            actor=actor,
            template="BAD-????",
            count=10,
            active_time_type=PromoCode.ActiveTimeType.PERIOD,  # without dates
        )
    assert {"fromdate", "todate"} <= set(exc.value.error_dict)
    assert not PromoCode.objects.exists()


def test_generation_by_a_system_actor_is_recorded_as_system(db):
    promotion = PromotionFactory()
    services.promocodes_generate(
        promotion=promotion, actor=Actor.system("cron"), template="S-????", count=5
    )
    line = history_of(obj=promotion).get()
    assert (line.user, line.username, line.ip, line.action) == (None, "system", None, "cron")


def test_history_keeps_the_username_when_the_user_is_gone(db):
    user = UserFactory(username="leaver")
    promotion = PromotionFactory()
    services.promotion_archive(promotion=promotion, actor=Actor(user=user, ip=None, action="test"))
    user.delete()
    line = history_of(obj=promotion).get()
    assert (line.user, line.username) == (None, "leaver")


# Concurrency (PostgreSQL) -----------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("template", "workers", "each"),
    [
        ("PAR-?????", 2, 2000),
        ("PAR-?????", 4, 2000),
        # A space of 46,656 codes: the generators' draws overlap by hundreds of codes.
        ("PAR-???", 4, 2000),
    ],
)
def test_concurrent_generators_make_unique_codes_and_the_full_count(template, workers, each):
    # given one promotion
    promotion = PromotionFactory()

    def generate(n: int) -> int:
        return services.promocodes_generate(
            promotion=promotion,
            actor=Actor.system(f"worker-{n}"),
            template=template,
            count=each,
        )

    # when several generators fill the same template at the same time
    made = run_in_threads(generate, list(range(workers)))
    # then each reports its count, the codes are all distinct, as many as asked, and of the template
    codes = list(PromoCode.objects.filter(promotion=promotion).values_list("code", flat=True))
    assert made == [each] * workers
    assert len(set(codes)) == len(codes)
    assert len(codes) == each * workers
    pattern = codegen.template_regex(template, digits_only=False)
    assert all(re.search(pattern, c) for c in codes)
