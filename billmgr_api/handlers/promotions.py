"""Every promotion function of BILLmanager's promotion module, translated onto promotions.services."""

import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import ClientGroup, Currency, Provider, Tariff
from billmgr_api.errors import FuncError
from billmgr_api.fields import Amount, Choice, Date, Number, NumberList, Ref, RefList, Switch, Text
from billmgr_api.models import SavedFilter
from billmgr_api.registry import func
from billmgr_api.request import FuncRequest
from billmgr_api.resources import Column, Resource, id_column, read_only_list
from billmgr_api.results import FuncResult
from common.groups import GroupChoice
from common.models import History
from common.selectors import history_of
from promotions import codegen, selectors, services
from promotions.jobs import background_from, generate_codes_start
from promotions.models import (
    PRIORITY_LIMIT,
    Comparison,
    Condition,
    Discount,
    PeriodType,
    PromoCode,
    PromoCodeUsage,
    Promotion,
)
from referrals.models import ReferralProgram


def _date_filter(lookup: str, name: str):
    def to_q(raw: str) -> Q:
        try:
            return Q(**{lookup: datetime.date.fromisoformat(raw)})
        except ValueError:
            raise FuncError("value", name, f"{name} must be a date as YYYY-MM-DD") from None

    return to_q


def _status_filter(raw: str) -> Q:
    if raw not in Promotion.Status.values:
        raise FuncError("value", "status", f"status is one of {', '.join(Promotion.Status.values)}")
    return Promotion.objects.status_q(raw, timezone.localdate())


PROMOTION_COLUMNS = [
    id_column(),
    Column("name", lambda p: p.name, "name__icontains"),
    Column("fromdate", lambda p: p.fromdate, _date_filter("fromdate__gte", "fromdate")),
    Column("todate", lambda p: p.todate, _date_filter("todate__lte", "todate")),
    Column("status", lambda p: p.status, _status_filter),
    Column("project_name", lambda p: p.provider.name, "provider__name__icontains"),
    Column("priority", lambda p: p.priority, "priority"),
    Column("combine", lambda p: p.combine, "combine"),
    Column("budget", lambda p: "" if p.budget is None else p.budget),
    Column("budget_period", lambda p: p.budget_period, "budget_period"),
    Column("client_budget", lambda p: "" if p.client_budget is None else p.client_budget),
]
FILTER_PARAMS = ("name", "project_name", "status", "fromdate", "todate")


def _saved_promotion_filter(req: FuncRequest) -> dict[str, str]:
    saved = SavedFilter.objects.filter(user=req.user, func="promotion").first()
    return saved.params if saved else {}


promotion = Resource(
    func="promotion",
    model=Promotion,
    columns=PROMOTION_COLUMNS,
    params=[
        Text("name", required=True),
        Ref("project", Provider, "provider", required=True),
        Date("fromdate", required=True),
        Date("todate"),
        Number("priority", minimum=-PRIORITY_LIMIT, maximum=PRIORITY_LIMIT, default=0),
        Choice("combine", Promotion.Combine, default=Promotion.Combine.EXCLUSIVE),
        Amount("budget"),
        Choice("budget_period", Promotion.BudgetPeriod, default=Promotion.BudgetPeriod.TOTAL),
        Amount("client_budget"),
    ],
    queryset=lambda: Promotion.objects.select_related("provider"),
    list_scope=lambda qs: qs.filter(archived=False),
    saved_filters=_saved_promotion_filter,
    create=lambda req, parent, data: services.promotion_create(actor=req.actor, **data),
    update=lambda req, obj, data: services.promotion_update(promotion=obj, actor=req.actor, **data),
    delete=lambda req, objs: services.promotion_delete_many(promotions=objs, actor=req.actor),
).register()


@func("promotion.archived", perm="promotions.view_promotion")
def promotion_archived(req: FuncRequest):
    qs = Promotion.objects.select_related("provider").filter(archived=True)
    return promotion.rows(req, qs)


@func("promotion.archive", perm="promotions.change_promotion")
@transaction.atomic
def promotion_archive(req: FuncRequest) -> FuncResult:
    for p in req.objects(Promotion.objects.all()):
        services.promotion_archive(promotion=p, actor=req.actor)
    return FuncResult.ok()


@func("promotion.restore", perm="promotions.change_promotion")
@transaction.atomic
def promotion_restore(req: FuncRequest) -> FuncResult:
    for p in req.objects(Promotion.objects.all()):
        services.promotion_restore(promotion=p, actor=req.actor)
    return FuncResult.ok()


@func("promotion.filter", perm="promotions.view_promotion")
def promotion_filter(req: FuncRequest) -> FuncResult:
    """Without sok: the filter in force; with sok: set it (empty values drop a criterion)."""
    current = _saved_promotion_filter(req)
    if not req.sok:
        return FuncResult.form({name: current.get(name, "") for name in FILTER_PARAMS})
    wanted = {n: req.get(n).strip() for n in FILTER_PARAMS if req.get(n).strip()}
    for column in PROMOTION_COLUMNS:
        if column.name in wanted:
            column.filter_q(wanted[column.name])  # a bad value fails now, not on every list
    SavedFilter.objects.update_or_create(
        user=req.user, func="promotion", defaults={"params": wanted}
    )
    return FuncResult.ok()


HISTORY_COLUMNS = [
    id_column(),
    Column(
        "changedate",
        lambda h: timezone.localtime(h.changedate).strftime("%Y-%m-%d %H:%M:%S"),
    ),
    Column("desc", lambda h: h.desc, "desc__icontains"),
    Column("user", lambda h: h.username, "username"),
    Column("ip", lambda h: h.ip, "ip"),
    Column("action", lambda h: h.action, "action"),
]
history_view = read_only_list("promotion.history", History, HISTORY_COLUMNS)


@func("promotion.history", perm="promotions.view_promotion")
def promotion_history(req: FuncRequest) -> FuncResult:
    target = req.object(Promotion.objects.all())
    return history_view.rows(req, history_of(obj=target))


# Discounts --------------------------------------------------------------------------------------

discount = Resource(
    func="promotion.discount",
    model=Discount,
    parent_model=Promotion,
    parent_attr="promotion",
    columns=[
        id_column(),
        Column("name", str),
        Column("actiontype", lambda d: d.actiontype, "actiontype"),
        Column("type", lambda d: d.type, "type"),
        Column("valuetype", lambda d: d.valuetype, "valuetype"),
        Column("percentage", lambda d: "" if d.percentage is None else d.percentage),
        Column("amount", lambda d: "" if d.amount is None else d.amount),
    ],
    params=[
        Choice("type", Discount.Type, default=Discount.Type.ALL),
        RefList("pricelist", Tariff),
        Choice("valuetype", Discount.ValueType, default=Discount.ValueType.PERCENT),
        Amount("percentage", maximum=100),
        Amount("amount"),
        Choice("actiontype", Discount.ActionType, default=Discount.ActionType.ALL),
        NumberList("period"),
        Choice("validity", Discount.Validity, default=Discount.Validity.UNLIMITED),
        Number("validitylength", minimum=1, maximum=1200),
    ],
    queryset=lambda: Discount.objects.select_related("promotion").prefetch_related("pricelist"),
    create=lambda req, parent, data: services.discount_create(
        promotion=parent, actor=req.actor, **data
    ),
    update=lambda req, obj, data: services.discount_update(discount=obj, actor=req.actor, **data),
    delete=lambda req, objs: services.discount_delete_many(discounts=objs, actor=req.actor),
).register()


# Conditions -------------------------------------------------------------------------------------

condition = Resource(
    func="promotion.condition",
    model=Condition,
    parent_model=Promotion,
    parent_attr="promotion",
    columns=[
        id_column(),
        Column("condition", lambda c: c.describe()),
        Column("cgroup", lambda c: c.group.name if c.group else "", "group__name"),
        Column("ctype", lambda c: c.ctype, "ctype"),
    ],
    params=[
        Choice("ctype", Condition.Type, required=True),
        Choice("comparison", Comparison, default=Comparison.GE),
        Ref("pricelist", Tariff),
        NumberList("period"),
        Choice("periodtype", PeriodType),
        Number("periodlength", minimum=1),
        Number("amount"),
        Ref("currency", Currency, lookup_fields=("iso",)),
        Amount("summa"),
        Ref("affiliate", ReferralProgram),
        Ref("account_group", ClientGroup),
        Text("group"),
        Text("groupname"),
    ],
    readers={
        "group": lambda c: c.group.name if c.group else GroupChoice.NONE,
        "groupname": lambda c: c.group.name if c.group else "",
    },
    queryset=lambda: Condition.objects.select_related(
        "promotion", "group", "pricelist", "currency", "affiliate", "account_group"
    ),
    create=lambda req, parent, data: services.condition_create(
        promotion=parent, actor=req.actor, **data
    ),
    update=lambda req, obj, data: services.condition_update(condition=obj, actor=req.actor, **data),
    delete=lambda req, objs: services.condition_delete_many(conditions=objs, actor=req.actor),
).register()


# Promo codes ------------------------------------------------------------------------------------


def _promocode_create(req: FuncRequest, parent: Promotion, data: dict):
    """A fixed code makes one code; a template (`?`) makes `count` codes and answers how many, or,
    from PROMOCODES_BACKGROUND_FROM codes on, is checked now and generated in the background
    (answering the job's id, as the admin's progress page shows it)."""
    count = data.pop("count", None) or 1
    if codegen.is_template(data.get("code", "")):
        onlydigit = data.pop("onlydigit", False)
        template = data.pop("code")
        if count >= background_from():
            job = generate_codes_start(
                promotions=[parent],
                template=template,
                count=count,
                onlydigit=onlydigit,
                actor=req.actor,
                code_settings=data,
            )
            return FuncResult.ok(job=job.pk, count=count, background="on")
        return services.promocodes_generate(
            promotion=parent,
            actor=req.actor,
            template=template,
            count=count,
            digits_only=onlydigit,
            **data,
        )
    if count != 1:
        raise FuncError("value", "count", 'A fixed code is one code; add "?" to generate more.')
    return services.promocode_create(promotion=parent, actor=req.actor, **data)


def _promocode_update(req: FuncRequest, obj: PromoCode, data: dict):
    if (data.pop("count", None) or 1) != 1:
        raise FuncError("value", "count", "count applies when generating new codes")
    return services.promocode_update(promocode=obj, actor=req.actor, **data)


promocode = Resource(
    func="promotion.promocode",
    model=PromoCode,
    parent_model=Promotion,
    parent_attr="promotion",
    columns=[
        id_column(),
        Column("code", lambda c: c.code, "code__icontains"),
        Column("uselimit", lambda c: c.uselimit),
        Column("use_count", lambda c: c.use_count),
        Column("account_uselimit", lambda c: c.account_uselimit),
        Column("active_time_type", lambda c: c.active_time_type, "active_time_type"),
        Column("fromdate", lambda c: c.fromdate),
        Column("todate", lambda c: c.todate),
    ],
    params=[
        Text("code", required=True, max_length=100),
        Number("count", minimum=1, maximum=services.MAX_CODES_PER_CALL),
        Number("uselimit", minimum=1),
        Number("account_uselimit", minimum=1),
        Switch("onlydigit"),
        Choice("active_time_type", PromoCode.ActiveTimeType, default="always"),
        Date("fromdate"),
        Date("todate"),
        Choice("expiretype", PromoCode.ExpireType, default="unlimited"),
        Choice("periodtype", PeriodType),
        Number("periodlength", minimum=1),
    ],
    write_only=("count",),
    queryset=lambda: PromoCode.objects.select_related("promotion"),
    create=_promocode_create,
    update=_promocode_update,
    delete=lambda req, objs: services.promocode_delete_many(promocodes=objs, actor=req.actor),
).register()


# Usage ------------------------------------------------------------------------------------------

USAGE_COLUMNS = [
    Column("id", lambda u: u.service_id or "", "service_id"),
    Column("account", lambda u: u.client.name, "client__name__icontains"),
    Column("status", lambda u: u.status, "status"),
    Column("expense", lambda u: selectors.usage_charge(u)),
    Column("usage", lambda u: u.pk),
]
usage_view = read_only_list("promocode.usage", PromoCodeUsage, USAGE_COLUMNS)
promotion_usage_view = read_only_list(
    "promotion.promocode.usage",
    PromoCodeUsage,
    [
        Column("promocode", lambda u: u.promocode.code, "promocode__code__icontains"),
        *USAGE_COLUMNS,
    ],
)


@func("promotion.promocode.usage", perm="promotions.view_promocodeusage")
def promotion_promocode_usage(req: FuncRequest) -> FuncResult:
    target = req.object(Promotion.objects.all())
    return promotion_usage_view.rows(req, selectors.usages_of_promotion(promotion=target))


@func("promocode.usage", perm="promotions.view_promocodeusage")
def promocode_usage(req: FuncRequest) -> FuncResult:
    target = req.object(PromoCode.objects.all())
    return usage_view.rows(req, selectors.usages_of_promocode(promocode=target))
