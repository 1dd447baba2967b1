"""The billing substrate on the door: project, currency, accountgroup, account, pricelist."""

from decimal import Decimal

from billing.models import Client, ClientGroup, Currency, Provider, Tariff
from billing.services import substrate_create, substrate_delete_many, substrate_update
from billmgr_api.errors import FuncError
from billmgr_api.fields import Amount, Choice, DateTime, Number, Ref, RefList, Text
from billmgr_api.handlers.clicks import registered_by_link
from billmgr_api.request import FuncRequest
from billmgr_api.resources import Column, Resource, id_column


def _substrate(
    func: str, model, columns: list[Column], params: list, queryset=None, **kw
) -> Resource:
    return Resource(
        queryset=queryset,
        func=func,
        model=model,
        columns=[id_column(), *columns],
        params=params,
        create=kw.pop("create", None)
        or (lambda req, parent, data: substrate_create(model=model, actor=req.actor, **data)),
        update=kw.pop("update", None)
        or (lambda req, obj, data: substrate_update(instance=obj, actor=req.actor, **data)),
        delete=lambda req, objs: substrate_delete_many(objects=objs, actor=req.actor),
        **kw,
    ).register()


def _account_create(req: FuncRequest, parent, data: dict) -> Client:
    """Registering a client: `sesid` (a click of referralprogram.registerclick) or `partner`
    attaches them to the partner, as BILLmanager's `register` does."""
    sesid, partner = data.pop("sesid", ""), data.pop("partner", None)
    client = substrate_create(model=Client, actor=req.actor, **data)
    registered_by_link(client=client, sesid=sesid, partner_id=partner, actor=req.actor)
    return client


def _account_update(req: FuncRequest, obj: Client, data: dict) -> Client:
    for name in ("sesid", "partner"):
        if data.pop(name, None):
            raise FuncError("value", name, f"{name} applies when a client registers")
    return substrate_update(instance=obj, actor=req.actor, **data)


currency = _substrate(
    "currency",
    Currency,
    [
        Column("name", lambda o: o.name, "name__icontains"),
        Column("iso", lambda o: o.iso, "iso__iexact"),
        Column("minor_units", lambda o: o.minor_units),
    ],
    [
        Text("name", required=True, max_length=100),
        Text("iso", required=True, max_length=32),
        Number("minor_units", maximum=8),
    ],
)

project = _substrate(
    "project",
    Provider,
    [
        Column("name", lambda o: o.name, "name__icontains"),
        Column("currency", lambda o: o.currency.iso, "currency__iso__iexact"),
        Column("max_discount", lambda o: o.max_discount),
    ],
    [
        Text("name", required=True),
        Ref("currency", Currency, required=True, lookup_fields=("iso",)),
        Amount("max_discount", maximum=100, default=Decimal(100)),
    ],
)

accountgroup = _substrate(
    "accountgroup",
    ClientGroup,
    [Column("name", lambda o: o.name, "name__icontains")],
    [Text("name", required=True)],
)

account = _substrate(
    "account",
    Client,
    [
        Column("name", lambda o: o.name, "name__icontains"),
        Column("email", lambda o: o.email, "email__icontains"),
        Column("project", lambda o: o.provider.name, "provider__name__icontains"),
        Column("registration_date", lambda o: o.registration_date.date()),
        Column("account_group", lambda o: [g.name for g in o.groups.all()], "groups__name"),
    ],
    [
        Text("name", required=True),
        Text("email", max_length=254),
        Ref("project", Provider, "provider", required=True),
        DateTime("registration_date"),
        RefList("account_group", ClientGroup, "groups"),
        Text("sesid", max_length=64),
        Number("partner", minimum=1),
    ],
    queryset=lambda: Client.objects.select_related("provider").prefetch_related("groups"),
    write_only=("sesid", "partner"),
    create=_account_create,
    update=_account_update,
)

pricelist = _substrate(
    "pricelist",
    Tariff,
    [
        Column("name", lambda o: o.name, "name__icontains"),
        Column("project", lambda o: o.provider.name, "provider__name__icontains"),
        Column("price", lambda o: o.price),
        Column("charge", lambda o: o.charge, "charge"),
    ],
    [
        Text("name", required=True),
        Ref("project", Provider, "provider", required=True),
        Amount("price", required=True),
        Choice("charge", Tariff.Charge, default=Tariff.Charge.MONTHLY),
    ],
    queryset=lambda: Tariff.objects.select_related("provider"),
)
