import csv
import datetime
import io
import re
from decimal import Decimal

import pytest

from common.models import History
from referrals.models import (
    Partnership,
    Payout,
    ReferralProgram,
    Reward,
    Rule,
    RuleCondition,
    RuleConditionGroup,
)
from tests.factories import (
    ExpenseFactory,
    PartnershipFactory,
    ProviderFactory,
    ReferralFactory,
    ReferralProgramFactory,
    RewardFactory,
    RuleConditionGroupFactory,
    RuleFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
# The form's defaults of the program's hold, payout minimum and address screen.
MONEY_FLOW_DEFAULTS = {"hold_days": 0, "payout_minimum": "0", "link_attachments_per_address": 3}


def inline_forms(*prefixes: str, initial: int = 0, total: int = 0) -> dict:
    """The management form of each inline formset on a page."""
    forms = {}
    for prefix in prefixes:
        forms[f"{prefix}-TOTAL_FORMS"] = str(total if prefix == prefixes[0] else 0)
        forms[f"{prefix}-INITIAL_FORMS"] = str(initial if prefix == prefixes[0] else 0)
    return forms


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return client


@pytest.mark.parametrize(
    "model", ["referralprogram", "rule", "referral", "reward", "partnership", "linkclick", "payout"]
)
def test_changelists_and_add_pages_load(admin_client, model):
    ReferralProgramFactory()
    assert admin_client.get(f"/admin/referrals/{model}/").status_code == 200


def test_program_added_in_the_admin_goes_through_services(admin_client):
    provider = ProviderFactory()
    response = admin_client.post(
        "/admin/referrals/referralprogram/add/",
        {
            "provider": provider.pk,
            "name": "Friends",
            "promocode": "FRIEND@ID@",
            "start_date": "2026-01-01",
            "referrer_reward_kind": "cash",
            "referee_reward_kind": "cash",
            "rewarded": "referrer",
            "status": "active",
            **MONEY_FLOW_DEFAULTS,
            **inline_forms("rules", "partnerships"),
        },
    )
    assert response.status_code == 302, response.content[:2000]
    program = ReferralProgram.objects.get()
    assert History.objects.filter(object_id=program.pk, action="admin:referralprogram.add").exists()
    bad = admin_client.post(
        "/admin/referrals/referralprogram/add/",
        {
            "provider": provider.pk,
            "name": "Bad",
            "promocode": "NOPLACEHOLDER",
            "start_date": "2026-01-01",
            "referrer_reward_kind": "cash",
            "referee_reward_kind": "cash",
            "rewarded": "referrer",
            "status": "active",
            **MONEY_FLOW_DEFAULTS,
            **inline_forms("rules", "partnerships"),
        },
    )
    assert bad.status_code == 200 and b"@ID@" in bad.content
    assert ReferralProgram.objects.count() == 1


def test_rewards_export_as_csv(admin_client):
    # a client named as a spreadsheet formula is exported as text (every export neutralises)
    referral = ReferralFactory(client__name='=HYPERLINK("http://evil.example","x")')
    rule = RuleFactory(program=referral.program, name="10%", amount=Decimal("10"))
    expense = ExpenseFactory(client=referral.client, amount=Decimal("50"))
    reward = RewardFactory(
        beneficiary=referral.partner,
        referral=referral,
        rule=rule,
        expense=expense,
        amount=Decimal("5.00"),
        currency=expense.currency,
        created_at=datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC),
    )
    response = admin_client.post(
        "/admin/referrals/reward/", {"action": "export_csv", "_selected_action": [reward.pk]}
    )
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["id", "beneficiary", "role", "referral_client"]
    assert rows[1][1:4] == [referral.partner.name, "referrer", "'" + referral.client.name]
    # and money and moments read as on every page: minor units, code after; the zone named
    assert rows[1][7:9] == ["5.00 USD", "USD"]
    assert rows[1][10] == "2026-03-01 00:00 UTC"


def unpaid_rewards(referral, *amounts) -> list[Reward]:
    rule = RuleFactory(program=referral.program, name="10%", amount=Decimal("10"))
    return [
        RewardFactory(
            beneficiary=referral.partner,
            referral=referral,
            rule=rule,
            expense=ExpenseFactory(client=referral.client, amount=Decimal(a)),
            amount=Decimal(a) / 10,
            currency=referral.program.provider.currency,
        )
        for a in amounts
    ]


def confirm_fields(html: str) -> dict:
    form = re.search(r'<form method="post"[^>]*>(.*?)</form>', html, re.S).group(1)
    fields: dict = {}
    for name, value in re.findall(r'<input[^>]* name="([^"]+)" value="([^"]*)"', form):
        fields.setdefault(name, []).append(value)
    return fields


def test_pay_action_asks_for_confirmation_then_pays_each_partner_once(admin_client):
    # given two partners with unpaid rewards (7.00 and 3.00 USD)
    first, second = ReferralFactory(), ReferralFactory()
    rewards = unpaid_rewards(first, "50", "20") + unpaid_rewards(second, "30")
    # when the operator runs "Pay the unpaid rewards" on one reward of each
    selected = {"action": "pay_partners", "_selected_action": [rewards[0].pk, rewards[2].pk]}
    asked = admin_client.post("/admin/referrals/reward/", selected)
    # then a confirmation page shows each partner's amount and the total per currency, and
    # nothing is paid yet
    html = asked.content.decode()
    assert asked.status_code == 200 and "Pay unpaid rewards?" in html
    assert re.findall(r"<li>(.*?)</li>", html.split('id="pay-totals"')[1])[:1] == ["10.00 USD"]
    assert not Payout.objects.exists()
    # when they confirm with a reference
    fields = confirm_fields(html) | {"reference": ["BATCH-7"]}
    admin_client.post("/admin/referrals/reward/", fields)
    # then each partner has one payout of their whole unpaid amount, with the reference
    assert sorted((p.partner_id, p.amount, p.reference) for p in Payout.objects.all()) == sorted(
        [
            (first.partner_id, Decimal("7.00"), "BATCH-7"),
            (second.partner_id, Decimal("3.00"), "BATCH-7"),
        ]
    )
    assert not Reward.objects.filter(payout__isnull=True).exists()
    # and the same confirmation posted again pays nothing
    admin_client.post("/admin/referrals/reward/", fields)
    assert Payout.objects.count() == 2


@pytest.mark.parametrize("model", ["reward", "payout"])
def test_rewards_and_payouts_cannot_be_deleted_or_changed_in_the_admin(admin_client, model):
    # given a paid reward and its payout
    referral = ReferralFactory()
    reward = unpaid_rewards(referral, "50")[0]
    from common.actors import Actor
    from referrals.services import payouts_create

    payout = payouts_create(
        program=referral.program, partner=referral.partner, reference="R-1", actor=Actor.system("t")
    ).payouts[0]
    target = {"reward": reward, "payout": payout}[model]
    base = f"/admin/referrals/{model}/"
    # when a superuser tries the delete page, the bulk delete action or the change page
    delete_page = admin_client.post(f"{base}{target.pk}/delete/", {"post": "yes"})
    bulk = admin_client.post(
        base, {"action": "delete_selected", "_selected_action": [target.pk]}, follow=True
    )
    # then each is refused (the list offers no delete action) and the history stays as it was
    assert delete_page.status_code == 403 and bulk.status_code == 200
    changelist = admin_client.get(base)
    assert changelist.status_code == 200 and b'value="delete_selected"' not in changelist.content
    assert admin_client.post(f"{base}{target.pk}/change/", {}).status_code == 403
    assert Reward.objects.filter(pk=reward.pk, payout=payout).exists()
    assert Payout.objects.filter(pk=payout.pk, amount=Decimal("5.00")).exists()


def program_form(program, **changes) -> dict:
    values = {
        "provider": program.provider_id,
        "name": program.name,
        "promocode": program.promocode,
        "start_date": program.start_date.isoformat(),
        "referrer_reward_kind": "cash",
        "referee_reward_kind": "cash",
        "rewarded": "referrer",
        "status": "active",
        **MONEY_FLOW_DEFAULTS,
    }
    return {**values, **changes}


def test_rules_added_changed_and_deleted_inline_go_through_services(admin_client):
    # given a program with one rule
    program = ReferralProgramFactory()
    kept = RuleFactory(program=program, name="old", amount=Decimal("5"))
    doomed = RuleFactory(program=program, name="doomed", amount=Decimal("1"))
    rule_row = {"reward_type": "percent", "schedule": "month", "active": "on"}

    def save(added_amount: str):
        rows = [
            {**rule_row, "id": kept.pk, "name": "new", "amount": "7"},
            {**rule_row, "id": doomed.pk, "name": "doomed", "amount": "1", "DELETE": "on"},
            {**rule_row, "name": "added", "amount": added_amount},
        ]
        return admin_client.post(
            f"/admin/referrals/referralprogram/{program.pk}/change/",
            program_form(
                program,
                **inline_forms("rules", "partnerships", initial=2, total=3),
                **{
                    f"rules-{i}-{k}": v
                    for i, row in enumerate(rows)
                    for k, v in {**row, "program": program.pk}.items()
                },
            ),
        )

    # when the program page saves a changed rule, a deleted one and a new one over 100%
    response = save("150")
    # then the percentage over 100 is refused on the page and nothing is saved
    assert response.status_code == 200 and Rule.objects.count() == 2
    # when the new rule is valid
    response = save("15")
    # then every row went through the services, each with its history line on the program
    assert response.status_code == 302, response.content[:3000]
    assert sorted(Rule.objects.values_list("name", "amount")) == [
        ("added", Decimal("15")),
        ("new", Decimal("7")),
    ]
    lines = list(
        History.objects.filter(
            object_id=program.pk, action="admin:referralprogram.rule"
        ).values_list("desc", flat=True)
    )
    assert len(lines) >= 3 and any("new" in line for line in lines)


def test_conditions_added_inline_land_in_their_group(admin_client):
    # given a rule with a condition group
    rule = RuleFactory(program=ReferralProgramFactory(), name="r", amount=Decimal("5"))
    group = RuleConditionGroupFactory(rule=rule, name="either")
    # when two conditions are added on the rule page, one in the group
    rows = {
        "conditions-0-ctype": "2",
        "conditions-0-comparison": "ge",
        "conditions-0-item_count": "2",
        "conditions-0-group_name": group.name,
        "conditions-0-rule": rule.pk,
        "conditions-1-ctype": "1",
        "conditions-1-comparison": "gt",
        "conditions-1-amount_ctype_1": "100",
        "conditions-1-orderperiods": "12, 1",
        "conditions-1-rule": rule.pk,
    }
    response = admin_client.post(
        f"/admin/referrals/rule/{rule.pk}/change/",
        {
            "program": rule.program_id,
            "name": "r",
            "reward_type": "percent",
            "amount": "5",
            "schedule": "month",
            "active": "on",
            "groups-TOTAL_FORMS": "1",
            "groups-INITIAL_FORMS": "1",
            "groups-0-id": group.pk,
            "groups-0-name": "either",
            "groups-0-rule": rule.pk,
            "conditions-TOTAL_FORMS": "2",
            "conditions-INITIAL_FORMS": "0",
            **rows,
        },
    )
    # then both exist, the first in the group, each recorded in the program's history
    assert response.status_code == 302, response.content[:3000]
    conditions = {c.ctype: c for c in RuleCondition.objects.all()}
    assert conditions["2"].group == group and conditions["1"].group is None
    assert conditions["1"].amount_ctype_1 == Decimal("100")
    assert (conditions["1"].orderperiods, conditions["2"].orderperiods) == ([12, 1], [])
    assert (
        History.objects.filter(
            object_id=rule.program_id, action="admin:referralprogram.rule.condition"
        ).count()
        == 2
    )


def test_a_client_added_in_the_admin_is_enrolled_in_the_default_program(admin_client):
    program = ReferralProgramFactory(
        assign_by_default=True, promocode="PAL@ID@", url="https://example.com/join"
    )
    response = admin_client.post(
        "/admin/billing/client/add/",
        {
            "name": "Newcomer",
            "email": "new@example.com",
            "provider": program.provider_id,
            "registration_date_0": "2026-11-20",
            "registration_date_1": "10:00:00",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    partnership = Partnership.objects.get()
    client = partnership.partner
    assert (client.name, partnership.program) == ("Newcomer", program)
    assert partnership.code == f"PAL{client.pk}"
    assert partnership.link == f"https://example.com/join?from={client.pk}"


def test_a_taken_program_title_is_refused_on_the_admin_form(admin_client):
    provider = ProviderFactory()
    ReferralProgramFactory(provider=provider, name="Friends")
    response = admin_client.post(
        "/admin/referrals/referralprogram/add/",
        {
            "provider": provider.pk,
            "name": "friends",
            "start_date": "2026-01-01",
            "referrer_reward_kind": "cash",
            "referee_reward_kind": "cash",
            "rewarded": "referrer",
            "status": "active",
            **MONEY_FLOW_DEFAULTS,
            **inline_forms("rules", "partnerships"),
        },
    )
    assert response.status_code == 200
    assert b"A program with this title exists already." in response.content
    assert ReferralProgram.objects.count() == 1


def test_the_partner_list_shows_earned_payable_and_paid_in_bounded_queries(
    admin_client, django_assert_max_num_queries
):
    program = ReferralProgramFactory()
    for i in range(6):
        referral = ReferralFactory(program=program)
        PartnershipFactory(program=program, partner=referral.partner)
        for _ in range(i):
            RewardFactory(referral=referral, amount=Decimal("1000.50"))

    with django_assert_max_num_queries(9):
        page = admin_client.get("/admin/referrals/partnership/?o=1").content.decode()

    cells = {
        column: [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(rf'<td class="field-{column}[^"]*">(.*?)</td>', page, re.S)
        ]
        for column in ("earned", "payable", "paid")
    }
    assert cells["earned"] == ["-"] + [f"{1000.50 * i:,.2f} USD" for i in range(1, 6)]
    assert cells["payable"] == cells["earned"]
    assert cells["paid"] == ["-"] * 6


def test_a_rule_condition_group_added_and_deleted_inline_is_in_the_programs_history(
    admin_client,
):
    # given a rule with a group
    rule = Rule.objects.create(program=ReferralProgramFactory(), name="r", amount=Decimal("5"))
    doomed = RuleConditionGroupFactory(rule=rule, name="doomed")
    rule_form = {
        "program": rule.program_id,
        "name": "r",
        "reward_type": "percent",
        "amount": "5",
        "schedule": "month",
        "active": "on",
        "conditions-TOTAL_FORMS": "0",
        "conditions-INITIAL_FORMS": "0",
    }
    # when the group is deleted and another added on the rule page
    response = admin_client.post(
        f"/admin/referrals/rule/{rule.pk}/change/",
        {
            **rule_form,
            "groups-TOTAL_FORMS": "2",
            "groups-INITIAL_FORMS": "1",
            "groups-0-id": doomed.pk,
            "groups-0-name": "doomed",
            "groups-0-rule": rule.pk,
            "groups-0-DELETE": "on",
            "groups-1-name": "fresh",
            "groups-1-rule": rule.pk,
        },
    )
    # then both went through the services, each with its line in the program's history
    assert response.status_code == 302, response.content[:3000]
    assert list(RuleConditionGroup.objects.values_list("name", flat=True)) == ["fresh"]
    assert sorted(
        History.objects.filter(object_id=rule.program_id).values_list("desc", "action")
    ) == [
        ('Rule condition group "doomed" has been deleted', "admin:referralprogram.rule.condition"),
        ('Rule condition group "fresh" has been created', "admin:referralprogram.rule.condition"),
    ]


@pytest.mark.parametrize("typed", ["1, \u00b2", "\u0661\u0662", "12, x"])
def test_order_periods_in_other_than_ascii_digits_are_refused_as_a_form_error(typed):
    from django.core.exceptions import ValidationError

    from referrals.admin import OrderPeriodsField

    # when a rule condition's order periods are typed with other digits, then the form says so
    with pytest.raises(ValidationError, match="Order periods are months joined by commas"):
        OrderPeriodsField().clean(typed)
