"""Writes to the catalogue: promotions, their discounts and their conditions."""

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from common.actors import Actor
from common.groups import group_resolve, groups_drop_empty
from common.services import history_record, model_create, model_delete_many, model_update
from promotions.models import Condition, ConditionGroup, Discount, PromoCode, Promotion

# Promotions -------------------------------------------------------------------------------------


@transaction.atomic
def promotion_create(*, actor: Actor, **fields: Any) -> Promotion:
    return model_create(model=Promotion, data=fields, actor=actor)


@transaction.atomic
def promotion_update(*, promotion: Promotion, actor: Actor, **fields: Any) -> Promotion:
    promotion, _ = model_update(instance=promotion, data=fields, actor=actor)
    return promotion


@transaction.atomic
def promotion_archive(*, promotion: Promotion, actor: Actor) -> Promotion:
    """Move a promotion out of the active list; its codes stop applying at once."""
    if not promotion.archived:
        promotion.archived = True
        promotion.save(update_fields=["archived"])
        history_record(obj=promotion, actor=actor, desc="Promotion has been archived")
    return promotion


@transaction.atomic
def promotion_restore(*, promotion: Promotion, actor: Actor) -> Promotion:
    if promotion.archived:
        promotion.archived = False
        promotion.save(update_fields=["archived"])
        history_record(obj=promotion, actor=actor, desc="Promotion has been restored from archive")
    return promotion


@transaction.atomic
def promotion_delete_many(*, promotions: Iterable[Promotion], actor: Actor) -> int:
    """Delete all or none: a promotion whose codes were used keeps its history, so archive it."""
    promotions = list(promotions)
    used = (
        PromoCode.objects.filter(promotion__in=promotions, usages__isnull=False)
        .values_list("promotion__name", flat=True)
        .distinct()
    )
    if used:
        raise ValidationError(
            {"elid": f"Promo codes of {', '.join(sorted(used))} have been used; archive instead."}
        )
    return model_delete_many(objects=promotions, actor=actor)


# Discounts --------------------------------------------------------------------------------------


@transaction.atomic
def discount_create(*, promotion: Promotion, actor: Actor, **fields: Any) -> Discount:
    _check_discount_tariffs(promotion, fields)
    return model_create(
        model=Discount, data={"promotion": promotion, **fields}, actor=actor, root=promotion
    )


@transaction.atomic
def discount_update(*, discount: Discount, actor: Actor, **fields: Any) -> Discount:
    _check_discount_tariffs(discount.promotion, fields)
    discount, _ = model_update(instance=discount, data=fields, actor=actor, root=discount.promotion)
    return discount


def _check_discount_tariffs(promotion: Promotion, fields: dict[str, Any]) -> None:
    tariffs = fields.get("pricelist") or []
    foreign = [t.name for t in tariffs if t.provider_id != promotion.provider_id]
    if foreign:
        raise ValidationError({"pricelist": f"Not tariffs of {promotion.provider}: {foreign}"})
    if fields.get("type") == Discount.Type.PRICELIST and "pricelist" in fields and not tariffs:
        raise ValidationError({"pricelist": "Choose the tariffs the discount covers."})


@transaction.atomic
def discount_delete_many(*, discounts: Iterable[Discount], actor: Actor) -> int:
    return model_delete_many(objects=discounts, actor=actor, root_of=lambda d: d.promotion)


# Conditions -------------------------------------------------------------------------------------


def _resolve_group(promotion: Promotion, group: str | None, groupname: str | None) -> Any:
    return group_resolve(
        model=ConditionGroup, owner={"promotion": promotion}, group=group, groupname=groupname
    )


@transaction.atomic
def condition_create(
    *,
    promotion: Promotion,
    actor: Actor,
    group: str | None = None,
    groupname: str | None = None,
    **fields: Any,
) -> Condition:
    resolved = _resolve_group(promotion, group, groupname)
    return model_create(
        model=Condition,
        data={"promotion": promotion, "group": resolved, **fields},
        actor=actor,
        root=promotion,
    )


@transaction.atomic
def condition_update(
    *,
    condition: Condition,
    actor: Actor,
    group: str | None = None,
    groupname: str | None = None,
    **fields: Any,
) -> Condition:
    if group is not None:
        fields["group"] = _resolve_group(condition.promotion, group, groupname)
    old_group = condition.group
    condition, _ = model_update(
        instance=condition, data=fields, actor=actor, root=condition.promotion
    )
    _drop_if_empty([old_group])
    return condition


@transaction.atomic
def condition_delete_many(*, conditions: Iterable[Condition], actor: Actor) -> int:
    conditions = list(conditions)
    groups = [c.group for c in conditions]
    deleted = model_delete_many(objects=conditions, actor=actor, root_of=lambda c: c.promotion)
    _drop_if_empty(groups)
    return deleted


def _drop_if_empty(groups: Iterable[ConditionGroup | None]) -> None:
    groups_drop_empty(ConditionGroup, groups)
