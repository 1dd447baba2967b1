"""BILLmanager's referralprogram function family, translated onto referrals.services."""

from billing.models import Client, ClientGroup, Currency, Provider
from billmgr_api.fields import Amount, Choice, Date, Number, NumberList, Ref, Switch, Text
from billmgr_api.registry import func
from billmgr_api.request import FuncRequest
from billmgr_api.resources import Column, Resource, id_column
from billmgr_api.results import FuncResult
from common.comparison import Comparison
from common.groups import GroupChoice
from common.services import display_value
from referrals import selectors, services
from referrals.models import ReferralProgram, RewardKind, Rule, RuleCondition

program = Resource(
    func="referralprogram",
    model=ReferralProgram,
    columns=[
        id_column(),
        Column("name", lambda p: p.name, "name__icontains"),
        Column("project", lambda p: p.provider.name, "provider__name__icontains"),
        Column("promocode", lambda p: p.promocode),
        Column("start_date", lambda p: p.start_date),
        Column("end_date", lambda p: p.end_date),
        Column("assign_by_default", lambda p: "on" if p.assign_by_default else "off"),
        Column("status", lambda p: p.status, "status"),
        # BILLmanager 6's own columns of this list
        Column("locale_name", lambda p: p.name, "name__icontains"),
        Column("url", lambda p: p.url),
        Column("locale_url", lambda p: p.url),
        Column("project_name", lambda p: p.provider.name, "provider__name__icontains"),
    ],
    params=[
        Ref("project", Provider, "provider", required=True),
        Text("name", required=True),
        Text("promocode", max_length=100),
        Date("start_date", required=True),
        Date("end_date"),
        Switch("assign_by_default"),
        Text("url", max_length=200),
        Ref("account_group", ClientGroup),
        Ref("account_group_restrict", ClientGroup),
        Choice("referrer_reward_kind", RewardKind, default=RewardKind.CASH),
        Choice("referee_reward_kind", RewardKind, default=RewardKind.CASH),
        Choice("rewarded", ReferralProgram.Rewarded, default=ReferralProgram.Rewarded.REFERRER),
        Number("min_referrals"),
        Number("max_referrals"),
        Ref("currency", Currency, lookup_fields=("iso",)),
        Choice("status", ReferralProgram.Status, default=ReferralProgram.Status.ACTIVE),
    ],
    queryset=lambda: ReferralProgram.objects.select_related("provider"),
    create=lambda req, parent, data: services.program_create(actor=req.actor, **data),
    update=lambda req, obj, data: services.program_update(program=obj, actor=req.actor, **data),
    delete=lambda req, objs: services.program_delete_many(programs=objs, actor=req.actor),
).register()

rule = Resource(
    func="referralprogram.rule",
    model=Rule,
    parent_model=ReferralProgram,
    parent_attr="program",
    columns=[
        id_column(),
        Column("name", lambda r: r.name, "name__icontains"),
        Column("reward_type", lambda r: r.reward_type, "reward_type"),
        Column("amount", lambda r: r.amount),
        Column("description", lambda r: r.description),
        Column("schedule", lambda r: r.schedule, "schedule"),
        Column("active", lambda r: "on" if r.active else "off"),
    ],
    params=[
        Text("name", required=True),
        Choice("reward_type", Rule.RewardType, default=Rule.RewardType.PERCENT),
        Amount("amount", required=True),
        Choice("schedule", Rule.Schedule, default=Rule.Schedule.MONTH),
        Switch("active"),
    ],
    queryset=lambda: Rule.objects.select_related(
        "program__provider__currency", "program__currency"
    ),
    create=lambda req, parent, data: services.rule_create(program=parent, actor=req.actor, **data),
    update=lambda req, obj, data: services.rule_update(rule=obj, actor=req.actor, **data),
    delete=lambda req, objs: services.rule_delete_many(rules=objs, actor=req.actor),
).register()

condition = Resource(
    func="referralprogram.rule.condition",
    model=RuleCondition,
    parent_model=Rule,
    parent_attr="rule",
    columns=[
        id_column(),
        Column("condition", str),
        Column("cgroup", lambda c: c.group.name if c.group else "", "group__name"),
        Column("ctype", lambda c: c.ctype, "ctype"),
    ],
    params=[
        Choice("ctype", RuleCondition.Type, required=True),
        NumberList("orderperiods"),
        Choice("comparison", Comparison, default=Comparison.GE),
        Amount("amount_ctype_1"),
        Amount("amount_ctype_4"),
        Number("item_count"),
        Number("referral_count"),
        Text("group"),
        Text("groupname"),
    ],
    readers={
        "group": lambda c: c.group.name if c.group else GroupChoice.NONE,
        "groupname": lambda c: c.group.name if c.group else "",
    },
    queryset=lambda: RuleCondition.objects.select_related("rule__program", "group"),
    create=lambda req, parent, data: services.rule_condition_create(
        rule=parent, actor=req.actor, **data
    ),
    update=lambda req, obj, data: services.rule_condition_update(
        condition=obj, actor=req.actor, **data
    ),
    delete=lambda req, objs: services.rule_condition_delete_many(conditions=objs, actor=req.actor),
).register()


# A program's partners, referrals and rewards: BILLmanager 6's referrer screens ------------------
# (program as `elid`; the referral and reward lists take `partner` to show one referrer's).


def _listing(req: FuncRequest, rows: list[dict], total: int) -> FuncResult:
    page, size = req.paging()
    shown = [{k: display_value(v) for k, v in row.items()} for row in rows]
    return FuncResult.listing(shown, page=page, page_size=size, total=total)


def _window(req: FuncRequest) -> tuple[int, int]:
    page, size = req.paging()
    return (page - 1) * size, size


def _partner(req: FuncRequest, program: ReferralProgram) -> Client | None:
    if not req.get("partner").strip():
        return None
    return req.object(selectors.partners(program), "partner")


@func("referralprogram.partner", perm="referrals.view_referral")
def program_partners(req: FuncRequest) -> FuncResult:
    """The referrers: code, referrals, earned and unpaid per currency (never summed across)."""
    target = req.object(ReferralProgram.objects.all())
    offset, size = _window(req)
    rows, total = selectors.partner_rows(program=target, offset=offset, limit=size)
    return _listing(
        req,
        [
            {
                "id": r.partner_id,
                "name": r.name,
                "code": r.code,
                "referrals": r.referral_count,
                "earned": selectors.money_text(r.earned),
                "unpaid": selectors.money_text(r.unpaid),
            }
            for r in rows
        ],
        total,
    )


@func("referralprogram.referral", perm="referrals.view_referral")
def program_referrals(req: FuncRequest) -> FuncResult:
    """A referrer's referrals (or the program's): name and e-mail, total expenses, paid amount
    (real payouts only), the rules that rewarded them, join date, how they came, first and last
    purchase."""
    target = req.object(ReferralProgram.objects.all())
    found = selectors.program_referrals(program=target, partner=_partner(req, target))
    offset, size = _window(req)
    rows = selectors.referral_rows(found[offset : offset + size])
    return _listing(
        req,
        [
            {
                "id": r.referral.pk,
                "name": r.name,
                "account": r.referral.client.name,
                "account_id": r.referral.client_id,
                "partner": r.referral.partner.name,
                "partner_id": r.referral.partner_id,
                "total_expenses": selectors.money_text(r.expenses),
                "paid_amount": selectors.money_text(r.paid),
                "rules": r.rules,
                "joined_at": r.referral.joined_at,
                "source": r.referral.source,
                "came_from": r.came_from,
                "first_purchase_at": r.first_purchase_at or "",
                "last_purchase_at": r.last_purchase_at or "",
            }
            for r in rows
        ],
        found.count(),
    )


@func("referralprogram.reward", perm="referrals.view_reward")
def program_rewards(req: FuncRequest) -> FuncResult:
    """Rewards per credited client, accrual day and currency, newest first: same-day rewards of
    several rules are summed into one row, as BILLmanager 6 shows them."""
    target = req.object(ReferralProgram.objects.all())
    days = selectors.reward_days(program=target, partner=_partner(req, target))
    offset, size = _window(req)
    rows = selectors.reward_day_rows(target, days[offset : offset + size])
    return _listing(
        req,
        [
            {
                "id": f"{r.day.isoformat()}.{r.beneficiary_id}.{r.amount.currency}",
                "date": r.day,
                "partner": r.beneficiary,
                "partner_id": r.beneficiary_id,
                "amount": f"{r.amount.shown:f}",
                "currency": r.amount.currency,
                "paid_amount": f"{r.paid.shown:f}",
                "rules": r.rules,
                "rewards": r.count,
            }
            for r in rows
        ],
        days.count(),
    )
