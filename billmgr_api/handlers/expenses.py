"""Expense intake on the func door: `expense` lists charges and refunds, `expense.edit` takes one
in (billing.services.expense_create): a charge (`account`, `amount`, `currency`, `date`), or a
refund (`refunds` = the charge's id, a negative `amount`; account and currency are the charge's).
An expense is history once taken: it is neither changed nor deleted, a correction is a refund;
`.edit` is a creation form. (A charge's service is named on REST, not here.)"""

from billing.models import Client, Currency, Expense
from billing.services import expense_create
from billmgr_api.errors import FuncError
from billmgr_api.fields import Amount, DateTime, Ref
from billmgr_api.request import FuncRequest
from billmgr_api.resources import Column, Resource, id_column


def _create(req: FuncRequest, parent, data: dict) -> Expense:
    return expense_create(actor=req.actor, **data)


def _history(req: FuncRequest, *args) -> None:
    raise FuncError("access", "elid", "An expense is history: refund it instead (refunds=ID)")


expense = Resource(
    func="expense",
    model=Expense,
    columns=[
        id_column(),
        Column("account", lambda e: e.client_id, "client_id"),
        Column("account_name", lambda e: e.client.name, "client__name__icontains"),
        Column("service", lambda e: e.service_id or ""),
        Column("amount", lambda e: e.amount),
        Column("currency", lambda e: e.currency.iso, "currency__iso__iexact"),
        Column("date", lambda e: e.created_at),
        Column("refunds", lambda e: e.refunds_id or "", "refunds_id"),
        Column("refunded", lambda e: e.refunded),
    ],
    params=[
        Ref("account", Client, "client"),
        Amount("amount", required=True, minimum=None),
        Ref("currency", Currency, lookup_fields=("iso",)),
        DateTime("date", "created_at"),
        Ref("refunds", Expense),
    ],
    queryset=lambda: Expense.objects.select_related("client", "currency").order_by("-pk"),
    create=_create,
    update=_history,
    delete=_history,
).register()
