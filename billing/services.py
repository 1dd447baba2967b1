"""Writes for the billing substrate, so that func-style clients can set up what promotions refer to."""

import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from billing import hooks
from billing.models import Client, ClientGroup, Currency, Expense, Provider, Service, Tariff
from common.actors import Actor
from common.services import model_create, model_delete_many, model_update

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


SUBSTRATE_MODELS = (Currency, Provider, ClientGroup, Client, Tariff)


@transaction.atomic
def expense_create(
    *,
    client: Client,
    amount: Decimal,
    currency: Currency,
    service: Service | None = None,
    created_at: datetime.datetime | None = None,
) -> Expense:
    """Take in a charge."""
    if service is not None and service.client_id != client.pk:
        raise ValidationError({"service": f"Service {service.pk} is not a service of this client."})
    if amount <= 0:
        raise ValidationError({"amount": "A charge is more than zero."})
    expense = Expense(
        client=client,
        service=service,
        amount=amount,
        currency=currency,
        created_at=created_at or timezone.now(),
    )
    expense.full_clean()
    expense.save()
    return expense
