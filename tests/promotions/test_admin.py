"""The operators' admin: pages load, and every write goes through the services with history."""

import datetime
import re
from decimal import Decimal

import pytest
import time_machine
from django.contrib import admin
from django.contrib.messages import get_messages
from django.test import RequestFactory
from django.urls import reverse
from django.utils.html import escape

from common.actors import Actor
from common.models import History
from common.selectors import history_of
from promotions import codegen, selectors, services
from promotions.models import (
    Condition,
    ConditionGroup,
    Discount,
    PromoCode,
    PromoCodeUsage,
    Promotion,
)
from tests.factories import (
    ClientFactory,
    ClientGroupFactory,
    ConditionFactory,
    ConditionGroupFactory,
    CurrencyFactory,
    DiscountFactory,
    ExpenseFactory,
    PromoCodeFactory,
    PromoCodeUsageFactory,
    PromotionFactory,
    ProviderFactory,
    ServiceFactory,
    TariffFactory,
    UserFactory,
    redemption_of,
)

pytestmark = pytest.mark.django_db

INLINE_PREFIXES = ["discounts", "groups", "conditions", "promocodes"]


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def inline_management(**initial: int) -> dict[str, int]:
    """The management forms of the promotion page's inlines; `initial` gives rows already saved."""
    data = {}
    for prefix in INLINE_PREFIXES:
        rows = initial.get(prefix, 0)
        data |= {
            f"{prefix}-TOTAL_FORMS": rows,
            f"{prefix}-INITIAL_FORMS": rows,
            f"{prefix}-MIN_NUM_FORMS": 0,
            f"{prefix}-MAX_NUM_FORMS": 1000,
        }
    return data


def promotion_form(promotion: Promotion, **changes) -> dict:
    data = {
        "name": promotion.name,
        "provider": promotion.provider_id,
        "fromdate": promotion.fromdate.isoformat(),
        "todate": promotion.todate.isoformat() if promotion.todate else "",
        "priority": promotion.priority,
        "combine": promotion.combine,
        "budget": promotion.budget or "",
        "budget_period": promotion.budget_period,
        "client_budget": promotion.client_budget or "",
    }
    return data | changes


def form_errors(response) -> str:
    """What the admin complained about, for assertion messages."""
    if response.context is None or "adminform" not in response.context:
        return ""
    inline_errors = [fs.formset.errors for fs in response.context.get("inline_admin_formsets", [])]
    return f"{response.context['adminform'].form.errors} {inline_errors}"


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# Pages ------------------------------------------------------------------------------------------


def _usage():
    return PromoCodeUsageFactory(service=ServiceFactory(), promocode__code="USED1")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: DiscountFactory().promotion, id="promotion"),
        pytest.param(lambda: PromoCodeFactory(), id="promocode"),
        pytest.param(_usage, id="promocodeusage"),
        pytest.param(lambda: CurrencyFactory(), id="currency"),
        pytest.param(lambda: ProviderFactory(), id="provider"),
        pytest.param(lambda: ClientGroupFactory(), id="clientgroup"),
        pytest.param(lambda: ClientFactory(), id="client"),
        pytest.param(lambda: TariffFactory(), id="tariff"),
        pytest.param(lambda: ServiceFactory(), id="service"),
        pytest.param(lambda: ExpenseFactory(), id="expense"),
    ],
)
def test_changelist_and_change_pages_load(staff, make):
    # given an object of the model
    obj = make()
    model = type(obj)
    # when the operator opens its list and its page
    listing = staff.get(url(model, "changelist"))
    page = staff.get(url(model, "change", obj.pk))
    # then both load and the list shows the object
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [obj]
    assert page.status_code == 200
    assert page.context["original"] == obj


def test_anonymous_visitors_are_sent_to_the_login_page(client, db):
    response = client.get(url(Promotion, "changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_promotion_add_page_has_every_inline(staff):
    response = staff.get(url(Promotion, "add"))
    assert response.status_code == 200
    prefixes = [fs.formset.prefix for fs in response.context["inline_admin_formsets"]]
    assert prefixes == INLINE_PREFIXES


@time_machine.travel("2026-06-15 10:00:00+00:00", tick=False)
@pytest.mark.parametrize(
    ("status", "expected"),
    [("planned", "Later"), ("active", "Now"), ("expired", "Past"), ("archived", "Shelved")],
)
def test_changelist_status_filter(staff, status, expected):
    # given one promotion in each status on 2026-06-15
    day = datetime.date(2026, 6, 15)
    PromotionFactory(name="Later", fromdate=day + datetime.timedelta(days=1), todate=None)
    PromotionFactory(name="Now", fromdate=day, todate=day)
    PromotionFactory(
        name="Past", fromdate=day - datetime.timedelta(days=9), todate=day - datetime.timedelta(1)
    )
    PromotionFactory(name="Shelved", fromdate=day, todate=None, archived=True)
    # when the list is filtered by status
    response = staff.get(url(Promotion, "changelist"), {"status": status})
    # then only the promotion of that status is listed
    assert [p.name for p in response.context["cl"].result_list] == [expected]


def test_changelist_finds_a_promotion_by_one_of_its_codes(staff):
    wanted = PromoCodeFactory(code="FINDME").promotion
    PromoCodeFactory(code="OTHER")
    response = staff.get(url(Promotion, "changelist"), {"q": "findme"})
    assert list(response.context["cl"].result_list) == [wanted]


def test_change_page_shows_the_history(staff, operator):
    # given a promotion renamed by someone from some address
    promotion = PromotionFactory(name="Draft")
    actor = Actor(user=operator, ip="192.0.2.7", action="test.history")
    services.promotion_update(promotion=promotion, actor=actor, name="Final")
    # when its page is opened
    page = staff.get(url(Promotion, "change", promotion.pk)).content.decode()
    # then the history table shows the change, the address and the function
    assert escape('Name has been changed from "Draft" into "Final"') in page
    assert "192.0.2.7" in page
    assert "test.history" in page


# Writes -----------------------------------------------------------------------------------------


def test_adding_a_promotion_with_inline_rows_goes_through_the_services(staff):
    # given a provider with a tariff
    provider = ProviderFactory()
    # when the add form is posted with a discount, a condition and a promo code row
    data = {
        "name": "Admin made",
        "provider": provider.pk,
        "fromdate": "2026-07-01",
        "todate": "2026-07-31",
        "priority": "0",
        "combine": "exclusive",
        "budget_period": "total",
        **inline_management(),
        "discounts-TOTAL_FORMS": 1,
        "discounts-INITIAL_FORMS": 0,
        "discounts-0-type": "all",
        "discounts-0-valuetype": "percent",
        "discounts-0-percentage": "12.5",
        "discounts-0-actiontype": "order",
        "discounts-0-period": "[]",
        "discounts-0-validity": "unlimited",
        "conditions-TOTAL_FORMS": 1,
        "conditions-0-ctype": "service_count",
        "conditions-0-comparison": "ge",
        "conditions-0-amount": "2",
        "promocodes-TOTAL_FORMS": 1,
        "promocodes-0-code": "admin10",
        "promocodes-0-active_time_type": "always",
        "promocodes-0-expiretype": "unlimited",
    }
    response = staff.post(url(Promotion, "add"), data)
    # then the promotion and its rows exist
    assert response.status_code == 302, form_errors(response)
    promotion = Promotion.objects.get()
    assert (promotion.name, promotion.provider, promotion.todate) == (
        "Admin made",
        provider,
        datetime.date(2026, 7, 31),
    )
    assert promotion.discounts.get().percentage == Decimal("12.5")
    assert promotion.conditions.get().amount == 2
    assert promotion.promocodes.get().code == "ADMIN10"  # upper-cased by the service
    # and each write is in the promotion's history with the operator, the IP and the admin action
    lines = history_of(obj=promotion)
    assert sorted(lines.values_list("desc", flat=True)) == sorted(
        [
            'Promotion "Admin made" has been created',
            f'Discount "{promotion.discounts.get()}" has been created',
            f'Condition "{promotion.conditions.get()}" has been created',
            'Promo code "ADMIN10" has been created',
        ]
    )
    assert {(h.username, h.ip) for h in lines} == {("operator", "127.0.0.1")}
    assert lines.get(desc__startswith="Promotion").action == "admin:promotion.add"


def test_adding_a_promotion_that_ends_before_it_starts_is_refused(staff):
    data = {
        "name": "Backwards",
        "provider": ProviderFactory().pk,
        "fromdate": "2026-07-31",
        "todate": "2026-07-01",
        **inline_management(),
    }
    response = staff.post(url(Promotion, "add"), data)
    assert response.status_code == 200
    assert "todate" in response.context["adminform"].form.errors
    assert not Promotion.objects.exists()
    assert not History.objects.exists()


def test_changing_a_promotion_field_saves_it_and_writes_a_history_line(staff):
    # given a promotion
    promotion = PromotionFactory(name="Before")
    # when its name is changed on its admin page
    response = staff.post(
        url(Promotion, "change", promotion.pk),
        promotion_form(promotion, name="After") | inline_management(),
    )
    # then the new name is saved and the change is in its history, with who made it
    assert response.status_code == 302, form_errors(response)
    assert Promotion.objects.get(pk=promotion.pk).name == "After"
    line = history_of(obj=promotion).get()
    assert (line.desc, line.username, line.ip, line.action) == (
        'Name has been changed from "Before" into "After"',
        "operator",
        "127.0.0.1",
        "admin:promotion.change",
    )


def test_changing_an_inline_discount_saves_it_and_writes_a_history_line(staff):
    # given a promotion with a 10% discount
    discount = DiscountFactory(percentage=Decimal("10"))
    promotion = discount.promotion
    # when the discount is changed to 15% in the inline
    data = promotion_form(promotion) | inline_management(discounts=1)
    data |= {
        "discounts-0-id": discount.pk,
        "discounts-0-promotion": promotion.pk,
        "discounts-0-type": discount.type,
        "discounts-0-valuetype": discount.valuetype,
        "discounts-0-percentage": "15",
        "discounts-0-actiontype": discount.actiontype,
        "discounts-0-period": "[]",
        "discounts-0-validity": discount.validity,
    }
    response = staff.post(url(Promotion, "change", promotion.pk), data)
    # then 15% is saved and the change is in the promotion's history
    assert response.status_code == 302, form_errors(response)
    assert Discount.objects.get(pk=discount.pk).percentage == Decimal("15")
    assert list(history_of(obj=promotion).values_list("desc", flat=True)) == [
        'Discount, % has been changed from "10" into "15"'
    ]


def test_deleting_an_inline_condition_drops_its_emptied_group(staff):
    # given a promotion with a condition in a group
    promotion = PromotionFactory()
    group = ConditionGroupFactory(promotion=promotion, name="solo")
    condition = ConditionFactory(promotion=promotion, group=group)
    # when the condition row is deleted on the promotion's page
    data = promotion_form(promotion) | inline_management(groups=1, conditions=1)
    data |= {
        "groups-0-id": group.pk,
        "groups-0-promotion": promotion.pk,
        "groups-0-name": group.name,
        "conditions-0-id": condition.pk,
        "conditions-0-promotion": promotion.pk,
        "conditions-0-ctype": condition.ctype,
        "conditions-0-comparison": condition.comparison,
        "conditions-0-amount": condition.amount,
        "conditions-0-group_name": group.name,
        "conditions-0-DELETE": "on",
    }
    response = staff.post(url(Promotion, "change", promotion.pk), data)
    # then the condition is deleted through the service, which drops the empty group too
    assert response.status_code == 302, form_errors(response)
    assert not Condition.objects.exists()
    assert not ConditionGroup.objects.exists()
    assert list(history_of(obj=promotion).values_list("desc", flat=True)) == [
        f'Condition "{condition.describe()}" has been deleted'
    ]


# Actions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "archived_before", "desc"),
    [
        ("archive", False, "Promotion has been archived"),
        ("restore", True, "Promotion has been restored from archive"),
    ],
)
def test_archive_and_restore_actions(staff, action, archived_before, desc):
    # given two selected promotions and one that is not selected
    chosen = PromotionFactory.create_batch(2, archived=archived_before)
    other = PromotionFactory(archived=archived_before)
    # when the action is run on the selected ones
    response = staff.post(
        url(Promotion, "changelist"),
        {"action": action, "_selected_action": [p.pk for p in chosen]},
    )
    # then only they change, each with a history line naming the action
    assert response.status_code == 302
    assert set(Promotion.objects.filter(archived=not archived_before)) == set(chosen)
    assert Promotion.objects.get(pk=other.pk).archived is archived_before
    for promotion in chosen:
        line = history_of(obj=promotion).get()
        assert (line.desc, line.username, line.action) == (
            desc,
            "operator",
            f"admin:promotion.{action}",
        )
    assert not history_of(obj=other).exists()
    assert messages_of(response) == [f"2 promotion(s) {action}d."]


def test_generate_codes_action_asks_first_then_generates(staff):
    # given two selected promotions
    chosen = PromotionFactory.create_batch(2)
    selection = {"action": "generate_codes", "_selected_action": [p.pk for p in chosen]}
    # when the action is chosen, an intermediate form is shown and nothing is generated
    asked = staff.post(url(Promotion, "changelist"), selection)
    assert asked.status_code == 200
    assert "admin/promotions/generate_codes.html" in [t.name for t in asked.templates]
    assert set(asked.context["promotions"]) == set(chosen)
    assert not PromoCode.objects.exists()
    # when the form is filled in and applied
    done = staff.post(
        url(Promotion, "changelist"),
        selection | {"apply": "Generate", "template": "adm-?????", "count": 25, "uselimit": 2},
    )
    # then each promotion has 25 new distinct codes of the template, with the usage limit
    assert done.status_code == 302
    for promotion in chosen:
        codes = list(promotion.promocodes.values_list("code", flat=True))
        assert len(codes) == len(set(codes)) == 25
        assert all(
            re.search(codegen.template_regex("ADM-?????", digits_only=False), c) for c in codes
        )
        assert set(promotion.promocodes.values_list("uselimit", flat=True)) == {2}
        line = history_of(obj=promotion).get()
        assert (line.desc, line.action) == (
            '25 promo codes have been generated from template "ADM-?????"',
            "admin:promotion.promocode.generate",
        )
    assert messages_of(done) == ["50 promo code(s) generated."]


def test_generate_codes_action_with_a_too_small_template_says_so_and_saves_nothing(staff):
    # given two promotions and a template with room for 10 codes
    chosen = PromotionFactory.create_batch(2)
    # when 6 codes are asked for each (12 in all)
    done = staff.post(
        url(Promotion, "changelist"),
        {
            "action": "generate_codes",
            "_selected_action": [p.pk for p in chosen],
            "apply": "Generate",
            "template": "TINY-?",
            "count": 6,
            "onlydigit": "on",
        },
    )
    # then the operator is told why and not one code is kept (all or nothing)
    assert done.status_code == 302
    assert not PromoCode.objects.exists()
    assert not History.objects.exists()
    [message] = messages_of(done)
    assert "can make only 4 more codes" in message


@pytest.mark.parametrize(
    "fields",
    [
        {"template": "", "count": 5},
        {"template": "OK-????", "count": 0},
        {"template": "OK-????", "count": "many"},
    ],
)
def test_generate_codes_action_shows_the_form_again_on_bad_input(staff, fields):
    promotion = PromotionFactory()
    response = staff.post(
        url(Promotion, "changelist"),
        {"action": "generate_codes", "_selected_action": [promotion.pk], "apply": "Generate"}
        | fields,
    )
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not PromoCode.objects.exists()


# Promo codes and usages -------------------------------------------------------------------------


def test_adding_a_fixed_promo_code_goes_through_the_service(staff):
    promotion = PromotionFactory()
    response = staff.post(
        url(PromoCode, "add"),
        {
            "promotion": promotion.pk,
            "code": "spring5",
            "uselimit": 5,
            "active_time_type": "always",
            "expiretype": "unlimited",
        },
    )
    assert response.status_code == 302, form_errors(response)
    code = PromoCode.objects.get()
    assert (code.promotion, code.code, code.uselimit) == (promotion, "SPRING5", 5)
    line = history_of(obj=promotion).get()
    assert (line.desc, line.action) == (
        'Promo code "SPRING5" has been created',
        "admin:promocode.add",
    )


def test_adding_a_promo_code_template_on_the_code_page_does_not_crash(staff):
    # given the single-code add form, which takes any text as the code
    promotion = PromotionFactory()
    # when a template with "?" is entered
    response = staff.post(
        url(PromoCode, "add"),
        {
            "promotion": promotion.pk,
            "code": "ONE-????",
            "active_time_type": "always",
            "expiretype": "unlimited",
        },
    )
    # then either one code of the template is made, or the form refuses it; never a crash
    if response.status_code == 302:
        [code] = PromoCode.objects.values_list("code", flat=True)
        assert re.search(codegen.template_regex("ONE-????", digits_only=False), code)
    else:
        assert response.status_code == 200
        assert response.context["adminform"].form.errors
        assert not PromoCode.objects.exists()


def test_changing_a_promo_code_saves_it_and_writes_history_on_its_promotion(staff):
    code = PromoCodeFactory(code="LIMITED", uselimit=5)
    response = staff.post(
        url(PromoCode, "change", code.pk),
        {
            "promotion": code.promotion_id,
            "code": "LIMITED",
            "uselimit": 9,
            "active_time_type": "always",
            "expiretype": "unlimited",
        },
    )
    assert response.status_code == 302, form_errors(response)
    assert PromoCode.objects.get(pk=code.pk).uselimit == 9
    assert list(history_of(obj=code.promotion).values_list("desc", flat=True)) == [
        'Usage limit has been changed from "5" into "9"'
    ]


def test_deleting_an_unused_promo_code_goes_through_the_service(staff):
    code = PromoCodeFactory(code="GONE")
    response = staff.post(url(PromoCode, "delete", code.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not PromoCode.objects.exists()
    line = history_of(obj=code.promotion).get()
    assert (line.desc, line.action) == (
        'Promo code "GONE" has been deleted',
        "admin:promocode.delete",
    )


def test_deleting_a_used_promo_code_is_refused(staff):
    # given a code that has been used
    usage = PromoCodeUsageFactory(promocode__code="KEPT")
    # when the operator confirms its deletion
    response = staff.post(url(PromoCode, "delete", usage.promocode.pk), {"post": "yes"})
    # then the page says it cannot be deleted and the code and its history stay as they were
    assert response.status_code == 200
    assert response.context["protected"]
    assert PromoCode.objects.filter(code="KEPT").exists()
    assert not History.objects.exists()


def test_promo_code_usage_admin_is_read_only(staff, operator):
    # given a usage
    usage = PromoCodeUsageFactory()
    model_admin = admin.site._registry[PromoCodeUsage]
    request = RequestFactory().get("/")
    request.user = operator
    # then even a superuser may neither add nor change usages through the admin
    assert model_admin.has_change_permission(request, usage) is False
    assert model_admin.has_add_permission(request) is False
    assert staff.get(url(PromoCodeUsage, "add")).status_code == 403
    # and the usage page shows no save button
    page = staff.get(url(PromoCodeUsage, "change", usage.pk))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False


@time_machine.travel("2026-06-15 10:00:00+00:00", tick=False)
def test_the_promotion_page_shows_conditions_codes_and_uses_at_a_glance(staff):
    # given a promotion with two OR-ed conditions in a group, one alone, and used codes
    from tests.factories import PromoCodeUsageFactory as UsageFactory

    promotion = PromotionFactory(fromdate=datetime.date(2026, 6, 1))
    group = ConditionGroupFactory(promotion=promotion)
    ConditionFactory(promotion=promotion, ctype="service_count", amount=2, group=group)
    ConditionFactory(promotion=promotion, ctype="paid_services", amount=1, group=group)
    ConditionFactory(promotion=promotion, ctype="service_count", comparison="lt", amount=9)
    busy = PromoCodeFactory(promotion=promotion, code="BUSY", use_count=3, uselimit=5)
    PromoCodeFactory(promotion=promotion, code="IDLE")
    day = datetime.datetime(2026, 6, 14, 9, tzinfo=datetime.UTC)
    for _ in range(3):
        UsageFactory(promocode=busy, created_at=day)
    # when the page is opened
    page = staff.get(url(Promotion, "change", promotion.pk)).content.decode()
    # then the conditions read as an expression, the codes carry their uses, and a chart shows them
    assert escape("(active services >= 2 OR paid services >= 1) AND active services < 9") in page
    assert "<td>BUSY</td><td>3</td><td>5</td>" in page and "2 codes, 3 uses" in page
    assert "<svg" in page and "06-14: 3" in page


@time_machine.travel("2026-06-15 10:00:00+00:00", tick=False)
def test_redemptions_per_day_counts_each_day_and_keeps_the_empty_ones():
    from promotions.selectors import redemptions_per_day
    from tests.factories import PromoCodeUsageFactory as UsageFactory

    code = PromoCodeFactory()
    for when in (
        "2026-06-13T23:59:00+00:00",
        "2026-06-13T00:00:00+00:00",
        "2026-06-15T08:00:00+00:00",
        "2026-05-01T00:00:00+00:00",
    ):
        UsageFactory(promocode=code, created_at=datetime.datetime.fromisoformat(when))
    days = redemptions_per_day(promotion=code.promotion, days=3)
    assert days == [
        (datetime.date(2026, 6, 13), 2),
        (datetime.date(2026, 6, 14), 0),
        (datetime.date(2026, 6, 15), 1),
    ]


@pytest.mark.parametrize("may_add_codes", [False, True])
def test_generating_codes_needs_the_right_to_add_codes(client, may_add_codes):
    # given a staff user who may change promotions, and add codes or not
    from django.contrib.auth.models import Permission

    user = UserFactory(username="editor", is_staff=True)
    perms = ["view_promotion", "change_promotion"] + (["add_promocode"] if may_add_codes else [])
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    client.force_login(user)
    promotion = PromotionFactory()
    # when the user asks to generate codes
    listing = client.get(url(Promotion, "changelist")).content.decode()
    client.post(
        url(Promotion, "changelist"),
        {
            "action": "generate_codes",
            "_selected_action": [promotion.pk],
            "apply": "Generate",
            "template": "R-????",
            "count": 5,
        },
    )
    # then the action is offered and works only with the right to add codes
    assert ('value="generate_codes"' in listing) is may_add_codes
    assert promotion.promocodes.count() == (5 if may_add_codes else 0)


def test_code_usage_rows_cannot_be_deleted_even_by_a_superuser(staff):
    # given a use of a code
    usage = PromoCodeUsageFactory()
    # when a superuser opens its delete page, or runs the list's delete action on it
    page = staff.get(url(PromoCodeUsage, "delete", usage.pk))
    listing = staff.get(url(PromoCodeUsage, "changelist")).content.decode()
    staff.post(
        url(PromoCodeUsage, "changelist"),
        {"action": "delete_selected", "_selected_action": [usage.pk], "post": "yes"},
    )
    # then it is refused, no delete action is offered, and the use is kept with its counter
    assert page.status_code == 403
    assert 'value="delete_selected"' not in listing
    assert PromoCodeUsage.objects.filter(pk=usage.pk).exists()


def list_cells(page: str, column: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(rf'<td class="field-{column}[^"]*">(.*?)</td>', page, re.S)
    ]


def test_the_promotion_list_shows_uses_and_discount_given_in_bounded_queries(
    staff, django_assert_max_num_queries
):
    yen = CurrencyFactory(iso="JPY", name="yen", minor_units=0)
    usd = CurrencyFactory(iso="USD")
    provider = ProviderFactory(currency=usd)
    promotions = [PromotionFactory(name=f"P{i}", provider=provider) for i in range(8)]
    for i, promotion in enumerate(promotions):
        PromoCodeFactory(promotion=promotion)
        for _ in range(i):
            redemption_of(promotion, discount=Decimal("600.25"))
    redemption_of(promotions[1], discount=Decimal("1500"), currency=yen.iso)
    released = redemption_of(promotions[1], discount=Decimal("99"))
    released.status, released.released_at = "released", released.created_at
    released.save()

    with django_assert_max_num_queries(10):
        page = staff.get(url(Promotion, "changelist") + "?o=1").content.decode()

    # uses: the orders each discounted (P1's yen order too; the released one not)
    assert list_cells(page, "uses") == ["0", "2", *(str(i) for i in range(2, 8))]
    given = list_cells(page, "given")
    assert given[0] == "-"
    assert given[1] == "1,500 JPY, 600.25 USD"
    assert given[3] == "1,800.75 USD"
    assert list_cells(page, "code_count") == ["1"] * 8


def test_the_code_list_shows_uses_against_the_limit(staff):
    PromoCodeFactory(code="LIMITED", uselimit=10, use_count=3)
    PromoCodeFactory(code="OPEN", use_count=3)

    page = staff.get(url(PromoCode, "changelist") + "?o=2").content.decode()

    assert list_cells(page, "left") == ["7 of 10", "no limit"]


# Order periods as checkboxes --------------------------------------------------------------------


def discount_row(promotion: Promotion, **period) -> dict:
    return (
        promotion_form(promotion)
        | inline_management()
        | {
            "discounts-TOTAL_FORMS": 1,
            "discounts-0-type": "all",
            "discounts-0-percentage": "10",
            "discounts-0-actiontype": "all",
            "discounts-0-validity": "unlimited",
            **period,
        }
    )


@pytest.mark.parametrize(
    ("ticked", "typed", "saved"),
    [
        (["1", "12"], "", [1, 12]),
        ([], "1, 12", [1, 12]),
        (["12"], "1,12, 5", [1, 5, 12]),
        ([], "[12]", [12]),
        ([], "", []),
    ],
)
def test_order_periods_are_ticked_or_typed(staff, ticked, typed, saved):
    promotion = PromotionFactory()
    data = discount_row(
        promotion, **{"discounts-0-period": ticked, "discounts-0-period_other": typed}
    )

    response = staff.post(url(Promotion, "change", promotion.pk), data)

    assert response.status_code == 302, form_errors(response)
    assert promotion.discounts.get().period == saved


@pytest.mark.parametrize("typed", ["1, twelve", "0", "1; 12", "1201", "-1"])
def test_order_periods_that_are_not_months_are_refused_with_a_clear_error(staff, typed):
    promotion = PromotionFactory()
    data = discount_row(promotion, **{"discounts-0-period_other": typed})

    response = staff.post(url(Promotion, "change", promotion.pk), data)

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors[0]["period"]
    assert errors[0].startswith("Order periods are whole months from 1 to 1200")
    assert not Discount.objects.exists()


def test_the_period_boxes_are_the_tariffs_periods_and_the_summary_names_them(staff):
    ServiceFactory(period=18)
    discount = DiscountFactory(period=[1, 12])

    page = staff.get(url(Promotion, "change", discount.promotion.pk)).content.decode()

    offered = re.findall(r'name="discounts-0-period" value="(\d+)"', page)
    assert offered == ["1", "3", "6", "12", "18", "24", "36"]
    ticked = re.findall(r'name="discounts-0-period" value="(\d+)"[^>]*checked', page)
    assert ticked == ["1", "12"]
    assert "10% on all tariffs, new orders and renewals, on orders of 1 or 12 months" in page


# Condition groups -------------------------------------------------------------------------------


def test_conditions_are_grouped_on_the_add_page_and_every_write_is_in_history(staff):
    # given a provider, and an add page with a group row and three conditions naming groups
    provider = ProviderFactory()
    data = {
        "name": "Grouped at once",
        "provider": provider.pk,
        "fromdate": "2026-07-01",
        "todate": "",
        "priority": 0,
        "combine": "exclusive",
        "budget_period": "total",
        **inline_management(),
        "groups-TOTAL_FORMS": 1,
        "groups-0-name": "new or loyal",
        "conditions-TOTAL_FORMS": 3,
        "conditions-0-ctype": "registration",
        "conditions-0-comparison": "ge",
        "conditions-0-periodtype": "year",
        "conditions-0-periodlength": "1",
        "conditions-0-group_name": "new or loyal",
        "conditions-1-ctype": "service_count",
        "conditions-1-comparison": "ge",
        "conditions-1-amount": "5",
        "conditions-1-group_name": "new or loyal",
        "conditions-2-ctype": "paid_services",
        "conditions-2-comparison": "ge",
        "conditions-2-amount": "1",
        "conditions-2-group_name": "payers",  # no such row: a new group
    }
    # when it is saved
    response = staff.post(url(Promotion, "add"), data)
    # then the conditions are in their groups, which combine as the expression says
    assert response.status_code == 302, form_errors(response)
    promotion = Promotion.objects.get()
    grouped = {c.ctype: c.group.name for c in promotion.conditions.select_related("group")}
    assert grouped == {
        "registration": "new or loyal",
        "service_count": "new or loyal",
        "paid_services": "payers",
    }
    assert selectors.conditions_expression(promotion=promotion) == (
        "(registered within the last 1 year(s) OR active services >= 5) AND (paid services >= 1)"
    )
    # and both groups' creation is in the promotion's history
    lines = list(history_of(obj=promotion).values_list("desc", "action"))
    assert ('Condition group "new or loyal" has been created', "admin:promotion.change") in lines
    assert ('Condition group "payers" has been created', "admin:promotion.change") in lines


def test_renaming_and_deleting_a_group_inline_write_history(staff):
    # given a promotion with two groups, a condition in the first
    promotion = PromotionFactory()
    first = ConditionGroupFactory(promotion=promotion, name="first")
    second = ConditionGroupFactory(promotion=promotion, name="second")
    condition = ConditionFactory(promotion=promotion, group=first)
    # when the first is renamed and the second deleted on the promotion's page
    data = promotion_form(promotion) | inline_management(groups=2, conditions=1)
    data |= {
        "groups-0-id": first.pk,
        "groups-0-promotion": promotion.pk,
        "groups-0-name": "renamed",
        "groups-1-id": second.pk,
        "groups-1-promotion": promotion.pk,
        "groups-1-name": "second",
        "groups-1-DELETE": "on",
        "conditions-0-id": condition.pk,
        "conditions-0-promotion": promotion.pk,
        "conditions-0-ctype": condition.ctype,
        "conditions-0-comparison": condition.comparison,
        "conditions-0-amount": condition.amount,
        "conditions-0-group_name": "renamed",
    }
    response = staff.post(url(Promotion, "change", promotion.pk), data)
    # then both are done through the services, each with its history line
    assert response.status_code == 302, form_errors(response)
    assert list(ConditionGroup.objects.values_list("name", flat=True)) == ["renamed"]
    assert Condition.objects.get().group.name == "renamed"
    assert sorted(history_of(obj=promotion).values_list("desc", flat=True)) == [
        'Condition group "second" has been deleted',
        'Name has been changed from "first" into "renamed"',
    ]


def test_history_rows_link_to_their_objects(staff):
    promotion = PromotionFactory(name="Linked")
    services.promotion_archive(promotion=promotion, actor=Actor(user=None, ip="", action="test"))

    page = staff.get(reverse("admin:common_history_changelist")).content.decode()

    link = url(Promotion, "change", promotion.pk)
    assert f'<a href="{link}">#{promotion.pk}</a>' in page
    # and its moment reads as every moment does: local time, the zone named
    assert re.search(
        r'<th class="field-changedate[^"]*"><a [^>]*>\d{4}-\d\d-\d\d \d\d:\d\d UTC</a>', page
    ), page[page.find("field-changedate") - 20 :][:300]


@time_machine.travel(datetime.datetime(2026, 3, 2, 12, tzinfo=datetime.UTC), tick=False)
def test_the_budget_is_charted_per_period_and_the_list_shows_this_periods_burn(staff):
    # given a day budget of 100.00 that gave 25.00 yesterday and 40.00 today
    from promotions.models import BudgetSpend

    promotion = PromotionFactory(budget=Decimal("100"), budget_period="day")
    BudgetSpend.objects.create(promotion=promotion, period="2026-03-01", spent=Decimal("25"))
    BudgetSpend.objects.create(promotion=promotion, period="2026-03-02", spent=Decimal("40"))
    unbudgeted = PromotionFactory()
    # when the list and the promotion's page are opened
    listing = staff.get(url(Promotion, "changelist")).content.decode()
    page = staff.get(url(Promotion, "change", promotion.pk)).content.decode()
    # then the list shows today's burn, and the page charts each day against the budget
    assert "40.00 USD of 100.00 USD (40%)" in listing
    assert "Discount given per budget period (per day) of 100.00" in page
    assert "<title>2026-03-01: 25.00 USD</title>" in page
    assert "<td>2026-03-02</td><td>40.00 USD of 100.00 USD</td>" in page
    assert staff.get(url(Promotion, "change", unbudgeted.pk)).status_code == 200
