"""Every promotion function, in bjson and in xml (the same assertions on both)."""

import datetime
from decimal import Decimal

import pytest

from common.models import History, Job
from promotions.models import (
    Condition,
    ConditionGroup,
    Discount,
    PromoCode,
    PromoCodeUsage,
    Promotion,
)
from promotions.services import codes as code_services
from tests.factories import (
    ClientFactory,
    ClientGroupFactory,
    ConditionFactory,
    CurrencyFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    ReferralProgramFactory,
    ServiceFactory,
    TariffFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("out", ["bjson", "xml"])]


def test_promotion_create_view_save(door, out):
    provider = ProviderFactory()
    created = door(
        "promotion.edit",
        out=out,
        sok="ok",
        name="Launch",
        project=provider.pk,
        fromdate="2026-12-01",
        todate="2026-12-31",
    )
    promotion = Promotion.objects.get(pk=created["id"])
    assert (promotion.provider, promotion.todate) == (provider, datetime.date(2026, 12, 31))
    shown = door("promotion.edit", out=out, elid=promotion.pk)
    assert shown == {
        "id": str(promotion.pk),
        "name": "Launch",
        "project": str(provider.pk),
        "fromdate": "2026-12-01",
        "todate": "2026-12-31",
        "priority": "0",
        "combine": "exclusive",
        "budget": "",
        "budget_period": "total",
        "client_budget": "",
    }
    saved = door("promotion.edit", out=out, sok="ok", elid=promotion.pk, name="Launch 2")
    assert saved["id"] == str(promotion.pk)
    promotion.refresh_from_db()
    assert promotion.name == "Launch 2"
    assert promotion.todate == datetime.date(2026, 12, 31)  # fields not sent stay as they were


def test_promotion_new_form_shows_empty_fields(door, out):
    assert door("promotion.edit", out=out) == {
        "name": "",
        "project": "",
        "fromdate": "",
        "todate": "",
        "priority": "0",
        "combine": "exclusive",
        "budget": "",
        "budget_period": "total",
        "client_budget": "",
    }


def test_promotion_end_before_start_is_refused(door, out):
    provider = ProviderFactory()
    answer = door(
        "promotion.edit",
        out=out,
        sok="ok",
        name="Bad",
        project=provider.pk,
        fromdate="2026-12-31",
        todate="2026-12-01",
    )
    assert answer["error"]["type"] == "value"
    assert answer["error"]["object"] == "todate"
    assert not Promotion.objects.exists()


def test_promotion_unknown_project_is_a_value_error(door, out):
    answer = door(
        "promotion.edit", out=out, sok="ok", name="X", project=4242, fromdate="2026-01-01"
    )
    assert (answer["error"]["type"], answer["error"]["object"]) == ("value", "project")


def test_promotion_archive_restore_and_archived_list(door, out):
    active, other = PromotionFactory.create_batch(2)
    assert door("promotion.archive", out=out, elid=f"{active.pk}, {other.pk}")["ok"]
    assert door("promotion", out=out)["p_elems"] == "0"
    archived = door("promotion.archived", out=out)
    assert {r["id"] for r in archived["elem"]} == {str(active.pk), str(other.pk)}
    assert {r["status"] for r in archived["elem"]} == {"archived"}
    assert door("promotion.restore", out=out, elid=active.pk)["ok"]
    assert [r["id"] for r in door("promotion", out=out)["elem"]] == [str(active.pk)]


def test_promotion_delete(door, out):
    doomed = PromotionFactory()
    DiscountFactory(promotion=doomed)
    assert door("promotion.delete", out=out, elid=doomed.pk)["ok"]
    assert not Promotion.objects.filter(pk=doomed.pk).exists()


def test_promotion_history_records_user_ip_and_function(door, out):
    promotion = PromotionFactory(name="Before")
    door("promotion.edit", out=out, sok="ok", elid=promotion.pk, name="After")
    door("promotion.discount.edit", out=out, sok="ok", plid=promotion.pk, percentage="5")
    rows = door("promotion.history", out=out, elid=promotion.pk)["elem"]
    descs = [r["desc"] for r in rows]
    assert 'Name has been changed from "Before" into "After"' in descs
    assert any(d.startswith('Discount "5% on all tariffs') for d in descs)
    rename = next(r for r in rows if r["desc"].startswith("Name"))
    assert (rename["user"], rename["ip"], rename["action"]) == (
        "operator",
        "127.0.0.1",
        "promotion.edit",
    )
    assert datetime.datetime.strptime(rename["changedate"], "%Y-%m-%d %H:%M:%S")


def test_promotion_filter_form_and_save(door, out):
    assert door("promotion.filter", out=out, sok="ok", status="active")["ok"]
    assert door("promotion.filter", out=out)["status"] == "active"


def test_discount_functions(door, out):
    promotion = PromotionFactory()
    tariffs = TariffFactory.create_batch(2, provider=promotion.provider)
    created = door(
        "promotion.discount.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        type="pricelist",
        pricelist=f"{tariffs[0].pk}, {tariffs[1].pk}",
        percentage="15.5",
        actiontype="order",
        period="12, 1",
        validity="months",
        validitylength="3",
    )
    discount = Discount.objects.get(pk=created["id"])
    assert (discount.percentage, discount.period, discount.validitylength) == (
        Decimal("15.5"),
        [1, 12],
        3,
    )
    assert set(discount.pricelist.all()) == set(tariffs)
    listing = door("promotion.discount", out=out, elid=promotion.pk)
    assert listing["elem"][0]["actiontype"] == "order"
    shown = door("promotion.discount.edit", out=out, plid=promotion.pk, elid=discount.pk)
    assert shown["pricelist"] == f"{tariffs[0].pk}, {tariffs[1].pk}"
    assert shown["period"] == "1, 12"
    door(
        "promotion.discount.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        elid=discount.pk,
        percentage="20",
    )
    discount.refresh_from_db()
    assert discount.percentage == Decimal("20")
    assert door("promotion.discount.delete", out=out, elid=discount.pk)["ok"]
    assert not Discount.objects.exists()


def test_discount_defaults_when_fields_left_out(door, out):
    promotion = PromotionFactory()
    created = door("promotion.discount.edit", out=out, sok="ok", plid=promotion.pk, percentage="7")
    discount = Discount.objects.get(pk=created["id"])
    assert (discount.type, discount.actiontype, discount.validity, discount.period) == (
        "all",
        "all",
        "unlimited",
        [],
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("percentage", "100.01"),
        ("percentage", "-1"),
        ("actiontype", "sometimes"),
        ("type", "everything"),
        ("validity", "forever"),
        ("period", "one, two"),
    ],
)
def test_discount_rejects_unknown_values(door, out, field, value):
    promotion = PromotionFactory()
    params = {"percentage": "10", field: value}
    answer = door("promotion.discount.edit", out=out, sok="ok", plid=promotion.pk, **params)
    assert (answer["error"]["type"], answer["error"]["object"]) == ("value", field)
    assert not Discount.objects.exists()


def test_discount_tariff_of_another_provider_is_refused(door, out):
    promotion = PromotionFactory()
    foreign = TariffFactory()
    answer = door(
        "promotion.discount.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        percentage="5",
        type="pricelist",
        pricelist=foreign.pk,
    )
    assert answer["error"]["object"] == "pricelist"


def test_discount_months_validity_needs_a_length(door, out):
    promotion = PromotionFactory()
    answer = door(
        "promotion.discount.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        percentage="5",
        validity="months",
    )
    assert answer["error"]["object"] == "validitylength"


def test_discount_of_another_promotion_is_missing(door, out):
    discount = DiscountFactory()
    other = PromotionFactory()
    answer = door("promotion.discount.edit", out=out, plid=other.pk, elid=discount.pk)
    assert answer["error"]["type"] == "missing"


def test_condition_functions_with_groups(door, out):
    promotion = PromotionFactory()
    tariff = TariffFactory(provider=promotion.provider)
    a = door(
        "promotion.condition.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        ctype="has_tariff",
        pricelist=tariff.pk,
        amount="2",
        comparison="ge",
        group="new",
        groupname="hosting",
    )
    b = door(
        "promotion.condition.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        ctype="paid_services",
        amount="3",
        comparison="gt",
        group="hosting",
    )
    c = door(
        "promotion.condition.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        ctype="service_count",
        amount="1",
    )
    listing = door("promotion.condition", out=out, elid=promotion.pk)["elem"]
    assert [(r["id"], r["cgroup"]) for r in listing] == [
        (a["id"], "hosting"),
        (b["id"], "hosting"),
        (c["id"], ""),
    ]
    assert listing[0]["condition"] == f"services of tariff {tariff.name} >= 2"
    shown = door("promotion.condition.edit", out=out, plid=promotion.pk, elid=b["id"])
    assert (shown["group"], shown["ctype"], shown["comparison"]) == (
        "hosting",
        "paid_services",
        "gt",
    )
    # moving both out of the group leaves the group empty, and it goes
    door(
        "promotion.condition.edit", out=out, sok="ok", plid=promotion.pk, elid=a["id"], group="none"
    )
    door("promotion.condition.delete", out=out, elid=b["id"])
    assert not ConditionGroup.objects.filter(promotion=promotion).exists()
    assert Condition.objects.filter(promotion=promotion).count() == 2


@pytest.mark.parametrize(
    ("ctype", "params"),
    [
        ("service_count", {"amount": "2", "comparison": "lt"}),
        ("paid_services", {"amount": "1"}),
        (
            "expense_sum",
            {"summa": "100.5", "currency": "USD", "periodtype": "month", "periodlength": "3"},
        ),
        ("registration", {"periodtype": "day", "periodlength": "30"}),
    ],
)
def test_condition_types_store_their_fields(door, out, ctype, params):
    promotion = PromotionFactory()
    CurrencyFactory()
    answer = door(
        "promotion.condition.edit", out=out, sok="ok", plid=promotion.pk, ctype=ctype, **params
    )
    shown = door("promotion.condition.edit", out=out, plid=promotion.pk, elid=answer["id"])
    for key, value in params.items():
        expected = str(CurrencyFactory().pk) if key == "currency" else value
        assert shown[key] == expected, key


def test_condition_group_and_affiliate_references(door, out):
    promotion = PromotionFactory()
    group = ClientGroupFactory()
    program = ReferralProgramFactory(provider=promotion.provider)
    g = door(
        "promotion.condition.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        ctype="account_group",
        account_group=group.pk,
    )
    a = door(
        "promotion.condition.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        ctype="affiliate",
        affiliate=program.pk,
    )
    assert Condition.objects.get(pk=g["id"]).account_group == group
    assert Condition.objects.get(pk=a["id"]).affiliate == program


@pytest.mark.parametrize(
    ("params", "object_"),
    [
        ({"ctype": "lottery"}, "ctype"),
        ({"ctype": "service_count", "amount": "1", "comparison": "ne"}, "comparison"),
        ({"ctype": "registration", "periodtype": "week", "periodlength": "1"}, "periodtype"),
        ({"ctype": "service_count"}, "amount"),
        ({"ctype": "service_count", "amount": "1", "group": "no such group"}, "group"),
        ({"ctype": "service_count", "amount": "1", "group": "new"}, "groupname"),
    ],
)
def test_condition_rejects_bad_input(door, out, params, object_):
    promotion = PromotionFactory()
    answer = door("promotion.condition.edit", out=out, sok="ok", plid=promotion.pk, **params)
    assert answer["error"]["object"] == object_
    assert not Condition.objects.exists()
    assert not ConditionGroup.objects.exists()


def test_condition_missing_ctype_is_empty(door, out):
    promotion = PromotionFactory()
    answer = door("promotion.condition.edit", out=out, sok="ok", plid=promotion.pk, amount="1")
    assert (answer["error"]["type"], answer["error"]["object"]) == ("empty", "ctype")


def test_promocode_fixed_code_and_edit(door, out):
    promotion = PromotionFactory()
    created = door(
        "promotion.promocode.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        code="welcome10",
        uselimit="100",
        account_uselimit="1",
        active_time_type="period",
        fromdate="2026-12-01",
        todate="2026-12-31",
        expiretype="period",
        periodtype="month",
        periodlength="2",
    )
    code = PromoCode.objects.get(pk=created["id"])
    assert code.code == "WELCOME10"
    shown = door("promotion.promocode.edit", out=out, plid=promotion.pk, elid=code.pk)
    assert (shown["uselimit"], shown["account_uselimit"], shown["todate"]) == (
        "100",
        "1",
        "2026-12-31",
    )
    assert "count" not in shown
    door(
        "promotion.promocode.edit", out=out, sok="ok", plid=promotion.pk, elid=code.pk, uselimit="5"
    )
    listing = door("promotion.promocode", out=out, elid=promotion.pk)["elem"]
    assert listing == [
        {
            "id": str(code.pk),
            "code": "WELCOME10",
            "uselimit": "5",
            "use_count": "0",
            "account_uselimit": "1",
            "active_time_type": "period",
            "fromdate": "2026-12-01",
            "todate": "2026-12-31",
        }
    ]
    assert door("promotion.promocode.delete", out=out, elid=code.pk)["ok"]
    assert not PromoCode.objects.exists()


def test_promocode_generation_from_template(door, out):
    promotion = PromotionFactory()
    answer = door(
        "promotion.promocode.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        code="XMAS-????",
        count="50",
        uselimit="3",
    )
    assert answer["count"] == "50"
    codes = list(promotion.promocodes.values_list("code", "uselimit"))
    assert len({c for c, _ in codes}) == 50
    assert all(c.startswith("XMAS-") and len(c) == 9 and limit == 3 for c, limit in codes)


def test_a_count_the_template_cannot_hold_is_refused_before_anything_is_written(door, out):
    # given the attack of 12.15: a million digit codes from a template of a million
    promotion = PromotionFactory()
    answer = door(
        "promotion.promocode.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        code="DG??????",
        onlydigit="on",
        count="1000000",
    )
    # then a limit error answers at once, naming how many may be asked for, and nothing is made
    assert (answer["error"]["type"], answer["error"]["object"]) == ("limit", "count")
    assert "ask for at most 500000" in answer["error"]["msg"]
    assert not PromoCode.objects.exists() and not Job.objects.exists()


def test_a_random_draw_fills_at_most_half_of_a_template(door, out, monkeypatch, settings):
    # given templates of 1,000 codes drawn at random (enumeration only below 50 codes here)
    monkeypatch.setattr(code_services, "ENUMERATION_LIMIT", 50)
    settings.PROMOCODES_BACKGROUND_FROM = 10_000
    promotion = PromotionFactory()

    def generate(count):
        return door(
            "promotion.promocode.edit",
            out=out,
            sok="ok",
            plid=promotion.pk,
            code="DG???",
            onlydigit="on",
            count=str(count),
        )

    # when all of them are asked for, it is refused and nothing is made; half of them are made
    assert generate(1000)["error"]["type"] == "limit"
    assert not PromoCode.objects.exists()
    assert generate(500)["count"] == "500"
    assert generate(1)["error"]["type"] == "limit"
    assert PromoCode.objects.count() == 500


def test_a_big_generation_goes_to_the_background_job(
    door, out, settings, django_capture_on_commit_callbacks
):
    # given generations from 100 codes on run in the background
    settings.PROMOCODES_BACKGROUND_FROM, settings.JOBS_INLINE = 100, True
    promotion = PromotionFactory()
    # when 300 codes are asked for through the door
    with django_capture_on_commit_callbacks(execute=False) as started:
        answer = door(
            "promotion.promocode.edit",
            out=out,
            sok="ok",
            plid=promotion.pk,
            code="BIG-??????",
            count="300",
            uselimit="2",
        )
    # then the answer names the job, and nothing is made until it runs
    job = Job.objects.get()
    assert (answer["job"], answer["count"], answer["background"]) == (str(job.pk), "300", "on")
    assert not PromoCode.objects.exists()
    for callback in started:
        callback()
    # and the job made them all, with the settings asked for
    job.refresh_from_db()
    assert job.status == "done"
    assert set(promotion.promocodes.values_list("uselimit", flat=True)) == {2}
    assert promotion.promocodes.count() == 300


@pytest.mark.parametrize(
    ("params", "object_"),
    [
        ({"code": "A", "active_time_type": "period"}, "fromdate"),
        ({"code": "A", "active_time_type": "sometimes"}, "active_time_type"),
        ({"code": "A", "expiretype": "period", "periodtype": "month"}, "periodlength"),
        (
            {
                "code": "A",
                "active_time_type": "period",
                "fromdate": "2026-02-01",
                "todate": "2026-01-01",
            },
            "todate",
        ),
        ({"code": "A", "uselimit": "many"}, "uselimit"),
        ({"code": "A", "onlydigit": "yes"}, "onlydigit"),
        ({"code": "A", "count": "2"}, "count"),
    ],
)
def test_promocode_rejects_bad_input(door, out, params, object_):
    promotion = PromotionFactory()
    answer = door("promotion.promocode.edit", out=out, sok="ok", plid=promotion.pk, **params)
    assert answer["error"]["object"] == object_
    assert not PromoCode.objects.exists()


def test_usage_lists(door, out):
    # given a code used on the renewal of a client's service: 12.50, 10% off
    promotion = PromotionFactory()
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    code = PromoCodeFactory(promotion=promotion, code="USED1")
    client = ClientFactory(name="Zed", provider=promotion.provider)
    service = ServiceFactory(client=client)
    redeemed = door(
        "promotion.redeem",
        out=out,
        account=client.pk,
        project=promotion.provider.pk,
        pricelist=service.tariff.pk,
        price="12.50",
        currency="USD",
        kind="renewal",
        service=service.pk,
        promocode="USED1",
        idempotency_key="k",
    )
    usage = PromoCodeUsage.objects.get(redemption_id=redeemed["id"])
    # then both lists show the service, the client, and what the order charged for it
    rows = door("promotion.promocode.usage", out=out, elid=promotion.pk)["elem"]
    assert rows == [
        {
            "promocode": "USED1",
            "id": str(service.pk),
            "account": "Zed",
            "status": "active",
            "expense": "11.25 USD",
            "usage": str(usage.pk),
        }
    ]
    rows = door("promocode.usage", out=out, elid=code.pk)["elem"]
    assert rows == [
        {
            "id": str(service.pk),
            "account": "Zed",
            "status": "active",
            "expense": "11.25 USD",
            "usage": str(usage.pk),
        }
    ]
    assert door("promocode.usage", out=out, elid=99999)["error"]["type"] == "missing"


def test_history_rows_for_every_change_of_children(door, out):
    promotion = PromotionFactory()
    condition = ConditionFactory(promotion=promotion)
    door(
        "promotion.condition.edit",
        out=out,
        sok="ok",
        plid=promotion.pk,
        elid=condition.pk,
        amount="4",
    )
    door("promotion.condition.delete", out=out, elid=condition.pk)
    descs = list(History.objects.values_list("desc", flat=True))
    assert 'Count has been changed from "1" into "4"' in descs
    assert any("has been deleted" in d for d in descs)
    assert all(h.username == "operator" for h in History.objects.all())


# Overlapping promotions and value types (issue 16) ----------------------------------------------


def test_priority_combine_and_budgets_are_saved_shown_and_listed(door, out):
    # given a promotion made through the door with its overlap and budget fields
    provider = ProviderFactory()
    created = door(
        "promotion.edit",
        out=out,
        sok="ok",
        name="Stack",
        project=provider.pk,
        fromdate="2026-01-01",
        priority="-3",
        combine="combinable",
        budget="100.50",
        budget_period="day",
        client_budget="20",
    )
    promotion = Promotion.objects.get(pk=created["id"])
    # then they are saved, shown on the form and in the list
    assert (promotion.priority, promotion.combine, promotion.budget_period) == (
        -3,
        Promotion.Combine.COMBINABLE,
        Promotion.BudgetPeriod.DAY,
    )
    assert (promotion.budget, promotion.client_budget) == (Decimal("100.50"), Decimal("20"))
    shown = door("promotion.edit", out=out, elid=promotion.pk)
    assert {k: shown[k] for k in ("priority", "combine", "budget", "client_budget")} == {
        "priority": "-3",
        "combine": "combinable",
        "budget": "100.5",
        "client_budget": "20",
    }
    row = next(r for r in door("promotion", out=out)["elem"] if r["id"] == str(promotion.pk))
    assert (row["priority"], row["combine"], row["budget_period"]) == ("-3", "combinable", "day")


@pytest.mark.parametrize(
    "params, field",
    [
        ({"combine": "both"}, "combine"),
        ({"budget_period": "week"}, "budget_period"),
        ({"budget": "-1"}, "budget"),
        ({"priority": "99999999"}, "priority"),
    ],
)
def test_bad_overlap_fields_are_refused_naming_the_field(door, out, params, field):
    provider = ProviderFactory()
    answer = door(
        "promotion.edit",
        out=out,
        sok="ok",
        name="Bad",
        project=provider.pk,
        fromdate="2026-01-01",
        **params,
    )
    assert (answer["error"]["type"], answer["error"]["object"]) == ("value", field)
    assert not Promotion.objects.filter(name="Bad").exists()


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"percentage": "25"}, ("percent", Decimal("25"), None, "25.00")),
        ({"valuetype": "percent", "percentage": "10"}, ("percent", Decimal("10"), None, "10.00")),
        ({"valuetype": "amount", "amount": "30"}, ("amount", None, Decimal("30"), "30.00")),
        ({"valuetype": "price", "amount": "60"}, ("price", None, Decimal("60"), "40.00")),
    ],
    ids=["percent by default", "percent", "amount", "price"],
)
def test_each_value_type_is_saved_and_quoted_through_the_door(door, out, params, expected):
    # given a promotion and a discount of the value type, made through the door
    promotion = PromotionFactory(fromdate=datetime.date(2020, 1, 1), todate=None)
    client = ClientFactory(provider=promotion.provider)
    tariff = TariffFactory(provider=promotion.provider)
    created = door("promotion.discount.edit", out=out, sok="ok", plid=promotion.pk, **params)
    discount = Discount.objects.get(pk=created["id"])
    valuetype, percentage, amount, discounted = expected
    assert (discount.valuetype, discount.percentage, discount.amount) == (
        valuetype,
        percentage,
        amount,
    )
    # when a line of 100.00 is quoted through the door
    quote = door(
        "promotion.quote",
        out=out,
        project=promotion.provider.pk,
        account=client.pk,
        pricelist=tariff.pk,
        period="1",
        price="100",
        currency="USD",
    )
    # then the discount takes what its type says
    assert quote["elem"][0]["discount"] == discounted
    assert f"#{promotion.pk} applied" in quote["elem"][0]["verdicts"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"valuetype": "amount"}, "amount"),
        ({"valuetype": "price", "percentage": "10"}, "amount"),
        ({"valuetype": "percent", "amount": "5"}, "percentage"),
        ({"valuetype": "gift", "amount": "5"}, "valuetype"),
        ({"valuetype": "amount", "amount": "-5"}, "amount"),
    ],
)
def test_a_discount_without_its_value_is_refused_naming_the_field(door, out, params, field):
    promotion = PromotionFactory()
    answer = door("promotion.discount.edit", out=out, sok="ok", plid=promotion.pk, **params)
    assert (answer["error"]["type"], answer["error"]["object"]) == ("value", field)
    assert not Discount.objects.filter(promotion=promotion).exists()
