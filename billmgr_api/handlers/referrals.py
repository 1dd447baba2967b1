"""BILLmanager's referralprogram function family, translated onto referrals.services."""

from django.db.models import Count, Exists, OuterRef, Subquery, Sum

from billing.models import Client, ClientGroup, Currency, Provider
from billmgr_api.fields import Amount, Choice, Date, Number, NumberList, Ref, Switch, Text
from billmgr_api.registry import func
from billmgr_api.request import FuncRequest
from billmgr_api.resources import Column, Resource, id_column, read_only_list
from billmgr_api.results import FuncResult
from common.comparison import Comparison
from common.groups import GroupChoice
from referrals import services
from referrals.models import (
    Partnership,
    Referral,
    ReferralProgram,
    Reward,
    RewardKind,
    Rule,
    RuleCondition,
)

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
    queryset=lambda: Rule.objects.select_related("program"),
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


# A program's partners, referrals and rewards (read-only lists, the program as `elid`) ----------

referral_view = read_only_list(
    "referralprogram.referral",
    Referral,
    [
        id_column(),
        Column("account", lambda r: r.client.name, "client__name__icontains"),
        Column("partner", lambda r: r.partner.name, "partner__name__icontains"),
        Column("source", lambda r: r.source, "source"),
        Column("joined_at", lambda r: r.joined_at),
        Column("first_purchase_at", lambda r: r.first_purchase_at or ""),
        Column("last_purchase_at", lambda r: r.last_purchase_at or ""),
    ],
)
reward_view = read_only_list(
    "referralprogram.reward",
    Reward,
    [
        id_column(),
        Column("partner", lambda r: r.partner.name, "partner__name__icontains"),
        Column("account", lambda r: r.referral.client.name, "referral__client__name__icontains"),
        Column("rule", lambda r: r.rule.name),
        Column("amount", lambda r: r.amount),
        Column("currency", lambda r: r.currency.iso, "currency__iso__iexact"),
        Column("created_at", lambda r: r.created_at),
        Column("paid", lambda r: "on" if r.payout_id else "off"),
    ],
)
partner_view = read_only_list(
    "referralprogram.partner",
    Client,
    [
        id_column(),
        Column("name", lambda c: c.name, "name__icontains"),
        Column("code", lambda c: c.partner_code or ""),
        Column("referrals", lambda c: c.referral_count or 0),
        Column("earned", lambda c: c.earned or 0),
        Column("unpaid", lambda c: c.unpaid or 0),
    ],
)


@func("referralprogram.referral", perm="referrals.view_referral")
def program_referrals(req: FuncRequest) -> FuncResult:
    target = req.object(ReferralProgram.objects.all())
    rows = Referral.objects.filter(program=target).select_related("client", "partner")
    return referral_view.rows(req, rows.order_by("id"))


@func("referralprogram.reward", perm="referrals.view_reward")
def program_rewards(req: FuncRequest) -> FuncResult:
    target = req.object(ReferralProgram.objects.all())
    rows = Reward.objects.filter(rule__program=target).select_related(
        "partner", "referral__client", "rule", "currency"
    )
    return reward_view.rows(req, rows.order_by("id"))


@func("referralprogram.partner", perm="referrals.view_referral")
def program_partners(req: FuncRequest) -> FuncResult:
    target = req.object(ReferralProgram.objects.all())
    rewards = Reward.objects.filter(partner=OuterRef("pk"), rule__program=target)

    def total(queryset):
        # A subquery per sum: joining rewards beside referrals would multiply the rows.
        return Subquery(queryset.values("partner").annotate(s=Sum("amount")).values("s"))

    referrals = Referral.objects.filter(program=target, partner=OuterRef("pk"))
    enrolled = Partnership.objects.filter(program=target, partner=OuterRef("pk"))
    # Partners are the enrolled clients and those who have brought referrals.
    partners = Client.objects.filter(Exists(referrals) | Exists(enrolled)).annotate(
        partner_code=Subquery(enrolled.values("code")[:1]),
        referral_count=Subquery(referrals.values("partner").annotate(n=Count("id")).values("n")),
        earned=total(rewards),
        unpaid=total(rewards.filter(payout__isnull=True)),
    )
    return partner_view.rows(req, partners.order_by("id"))
