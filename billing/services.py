"""Writes for the billing substrate, so that func-style clients can set up what promotions refer to."""

import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F, ProtectedError
from django.db.models.functions import Round
from django.utils import timezone

from billing import hooks
from billing.models import Client, ClientGroup, Currency, Expense, Provider, Service, Tariff
from common.actors import Actor
from common.money import MONEY_DECIMAL_PLACES as PLACES
from common.services import history_record, model_create, model_delete_many, model_update

M = TypeVar("M", bound=models.Model)


@transaction.atomic
def substrate_create(*, model: type[M], actor: Actor, **fields: Any) -> M:
    """Create a currency, provider, client group, client or tariff."""
    _check_substrate(model, None, fields)
    created = model_create(model=model, data=fields, actor=actor)
    if model is Client:
        hooks.client_created(client=created, actor=actor)
    return created


@transaction.atomic
def substrate_update(*, instance: M, actor: Actor, **fields: Any) -> M:
    _check_substrate(type(instance), instance, fields)
    instance, _ = model_update(instance=instance, data=fields, actor=actor)
    return instance


@transaction.atomic
def substrate_delete_many(*, objects: Iterable[models.Model], actor: Actor) -> int:
    """All or nothing: an object still referred to (a currency of a provider, say) stops the lot."""
    try:
        with transaction.atomic():
            return model_delete_many(objects=objects, actor=actor)
    except ProtectedError as exc:
        blocked = sorted({str(o) for o in exc.protected_objects})[:5]
        raise ValidationError({"elid": f"Still in use by: {', '.join(blocked)}"}) from exc


def _check_substrate(model: type[models.Model], instance: Any, fields: dict[str, Any]) -> None:
    moves_provider = (
        model is Client
        and instance is not None
        and "provider" in fields
        and instance.provider_id != fields["provider"].pk
    )
    if moves_provider and instance.services.exists():
        raise ValidationError({"provider": "A client with services cannot change provider."})
    # Rewards, refunds' shares and payouts in a currency are rounded to its minor unit: another
    # unit afterwards would leave them finer or coarser than the currency.
    changes_unit = (
        model is Currency
        and instance is not None
        and "minor_units" in fields
        and fields["minor_units"] != instance.minor_units
    )
    if changes_unit and Expense.objects.filter(currency=instance).exists():
        raise ValidationError(
            {
                "minor_units": f"{instance.iso} has expenses: its minor unit stays "
                f"{instance.minor_units} (money in it was rounded to it)."
            }
        )


SUBSTRATE_MODELS = (Currency, Provider, ClientGroup, Client, Tariff)


@transaction.atomic
def expense_create(
    *,
    amount: Decimal,
    client: Client | None = None,
    currency: Currency | None = None,
    service: Service | None = None,
    created_at: datetime.datetime | None = None,
    refunds: Expense | None = None,
    actor: Actor | None = None,
) -> Expense:
    """Take in a charge, or with `refunds` a refund of (part of) an earlier charge.

    A charge is more than zero and names its client and currency. A refund is less than zero, of
    the refunded charge's client and currency (the defaults), not before it, and never more than
    what is left of it: the charge's `refunded` counter moves by a guarded UPDATE (0 rows: too
    much), so parallel refunds of one charge can never add up to more than it, whichever commits
    first.
    """
    if refunds is not None:
        client = client or refunds.client
        currency = currency or refunds.currency
    missing = {
        name: "Required for a charge (a refund takes its charge's)."
        for name, value in (("client", client), ("currency", currency))
        if value is None
    }
    if missing:
        raise ValidationError(missing)
    if service is not None and service.client_id != client.pk:
        raise ValidationError({"service": f"Service {service.pk} is not a service of this client."})
    created_at = created_at or timezone.now()
    if refunds is None and amount <= 0:
        raise ValidationError(
            {"amount": "A charge is more than zero; a refund names the charge it refunds."}
        )
    if refunds is not None:
        _check_refund(
            refunds=refunds, client=client, amount=amount, currency=currency, at=created_at
        )
    expense = Expense(
        client=client,
        service=service,
        amount=amount,
        currency=currency,
        created_at=created_at,
        refunds=refunds,
    )
    expense.full_clean()
    if refunds is not None:
        # Rounded to the column's places: SQLite computes decimals in floating point.
        taken = (
            Expense.objects.alias(left=Round(F("amount") - F("refunded") + amount, PLACES))
            .filter(pk=refunds.pk, left__gte=0)
            .update(refunded=Round(F("refunded") - amount, PLACES))
        )
        if taken != 1:
            left = Expense.objects.values_list(F("amount") - F("refunded"), flat=True).get(
                pk=refunds.pk
            )
            raise ValidationError(
                {
                    "amount": f"The refund is more than what is left of expense {refunds.pk} "
                    f"({left.normalize():f} {currency})."
                }
            )
    expense.save()
    if refunds is not None:
        history_record(
            obj=refunds,
            actor=actor or Actor.system("expense.refund"),
            desc=f"Refunded {(-amount).normalize():f} {currency} by expense {expense.pk}",
        )
    return expense


def _check_refund(
    *,
    refunds: Expense,
    client: Client,
    amount: Decimal,
    currency: Currency,
    at: datetime.datetime,
) -> None:
    errors = {}
    if refunds.refunds_id is not None or refunds.amount <= 0:
        errors["refunds"] = f"Expense {refunds.pk} is no charge: only a charge is refunded."
    elif refunds.client_id != client.pk:
        errors["refunds"] = f"Expense {refunds.pk} is not a charge of this client."
    elif refunds.currency_id != currency.pk:
        errors["currency"] = f"A refund of expense {refunds.pk} is in {refunds.currency}."
    elif at < refunds.created_at:
        errors["created_at"] = f"A refund is not dated before the charge it refunds ({refunds.pk})."
    if amount >= 0:
        errors["amount"] = "A refund is less than zero, e.g. -12.50."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def expense_refund_rest_many(
    *, expenses: Iterable[Expense], actor: Actor, at: datetime.datetime | None = None
) -> list[Expense]:
    """Refund what is left of each charge (those refunded in full already are left alone): every
    refund is made, or none."""
    made = []
    for charge in expenses:
        left = charge.amount - charge.refunded
        if charge.refunds_id is not None or charge.amount <= 0 or left <= 0:
            continue
        made.append(
            expense_create(
                client=charge.client,
                amount=-left,
                currency=charge.currency,
                service=charge.service,
                created_at=max(at or timezone.now(), charge.created_at),
                refunds=charge,
                actor=actor,
            )
        )
    return made
