"""Writes to the catalogue: promotions, their discounts and their conditions.

Every write here changes a provider's rules, so each draws the provider's new rules version in its
own transaction: every app server's next quote sees the change.
"""

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from common import groups as common_groups
from common.actors import Actor
from common.groups import (
    grouped_condition_create,
    grouped_condition_update,
    grouped_conditions_delete,
)
from common.services import history_record, model_create, model_delete_many, model_update
from promotions.engine.rules import rules_version_bump
from promotions.models import Condition, ConditionGroup, Discount, PromoCode, Promotion


def rules_changed(*providers: int) -> None:
    """The rules of these providers changed in the current transaction."""
    for provider_id in sorted(set(providers)):
        rules_version_bump(provider_id=provider_id)


# Promotions -------------------------------------------------------------------------------------


@transaction.atomic
def promotion_create(*, actor: Actor, **fields: Any) -> Promotion:
    promotion = model_create(model=Promotion, data=fields, actor=actor)
    rules_changed(promotion.provider_id)
    return promotion


@transaction.atomic
def promotion_update(*, promotion: Promotion, actor: Actor, **fields: Any) -> Promotion:
    before = promotion.provider_id
    if "provider" in fields and fields["provider"].pk != before:
        _check_movable(promotion)
    promotion, _ = model_update(instance=promotion, data=fields, actor=actor)
    rules_changed(before, promotion.provider_id)
    return promotion


def _check_movable(promotion: Promotion) -> None:
    """A promotion moves to another provider only without rules naming the old one's things."""
    named = sorted(
        {
            t.name
            for d in promotion.discounts.prefetch_related("pricelist")
            for t in d.pricelist.all()
        }
        | set(
            promotion.conditions.filter(pricelist__isnull=False).values_list(
                "pricelist__name", flat=True
            )
        )
        | set(
            promotion.conditions.filter(affiliate__isnull=False).values_list(
                "affiliate__name", flat=True
            )
        )
    )
    if named:
        raise ValidationError(
            {
                "provider": f"The promotion's discounts or conditions name {', '.join(named)} of "
                f"its provider; change them before moving it to another provider."
            }
        )


@transaction.atomic
def promotion_archive(*, promotion: Promotion, actor: Actor) -> Promotion:
    """Move a promotion out of the active list; its codes stop applying at once."""
    if not promotion.archived:
        promotion.archived = True
        promotion.save(update_fields=["archived"])
        history_record(obj=promotion, actor=actor, desc="Promotion has been archived")
        rules_changed(promotion.provider_id)
    return promotion


@transaction.atomic
def promotion_restore(*, promotion: Promotion, actor: Actor) -> Promotion:
    if promotion.archived:
        promotion.archived = False
        promotion.save(update_fields=["archived"])
        history_record(obj=promotion, actor=actor, desc="Promotion has been restored from archive")
        rules_changed(promotion.provider_id)
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
    deleted = model_delete_many(objects=promotions, actor=actor)
    rules_changed(*(p.provider_id for p in promotions))
    return deleted


# Discounts --------------------------------------------------------------------------------------


@transaction.atomic
def discount_create(*, promotion: Promotion, actor: Actor, **fields: Any) -> Discount:
    _check_discount_tariffs(promotion, fields)
    discount = model_create(
        model=Discount, data={"promotion": promotion, **fields}, actor=actor, root=promotion
    )
    rules_changed(promotion.provider_id)
    return discount


@transaction.atomic
def discount_update(*, discount: Discount, actor: Actor, **fields: Any) -> Discount:
    _check_discount_tariffs(discount.promotion, fields)
    discount, _ = model_update(instance=discount, data=fields, actor=actor, root=discount.promotion)
    rules_changed(discount.promotion.provider_id)
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
    discounts = list(discounts)
    deleted = model_delete_many(objects=discounts, actor=actor, root_of=lambda d: d.promotion)
    rules_changed(*(d.promotion.provider_id for d in discounts))
    return deleted


# Conditions -------------------------------------------------------------------------------------


@transaction.atomic
def condition_create(
    *,
    promotion: Promotion,
    actor: Actor,
    group: str | None = None,
    groupname: str | None = None,
    **fields: Any,
) -> Condition:
    condition = grouped_condition_create(
        model=Condition,
        owner={"promotion": promotion},
        actor=actor,
        root=promotion,
        group=group,
        groupname=groupname,
        **fields,
    )
    rules_changed(promotion.provider_id)
    return condition


@transaction.atomic
def condition_update(
    *,
    condition: Condition,
    actor: Actor,
    group: str | None = None,
    groupname: str | None = None,
    **fields: Any,
) -> Condition:
    promotion = condition.promotion
    condition, _ = grouped_condition_update(
        condition=condition,
        owner={"promotion": promotion},
        actor=actor,
        root=promotion,
        group=group,
        groupname=groupname,
        **fields,
    )
    rules_changed(promotion.provider_id)
    return condition


@transaction.atomic
def condition_delete_many(*, conditions: Iterable[Condition], actor: Actor) -> int:
    conditions = list(conditions)
    deleted = grouped_conditions_delete(
        conditions=conditions, actor=actor, root_of=lambda c: c.promotion
    )
    rules_changed(*(c.promotion.provider_id for c in conditions))
    return deleted


# Condition groups -------------------------------------------------------------------------------


@transaction.atomic
def condition_group_create(*, promotion: Promotion, name: str, actor: Actor) -> ConditionGroup:
    group = common_groups.condition_group_create(
        model=ConditionGroup,
        owner={"promotion": promotion},
        name=name,
        actor=actor,
        root=promotion,
    )
    rules_changed(promotion.provider_id)
    return group


@transaction.atomic
def condition_group_update(*, group: ConditionGroup, actor: Actor, **fields: Any) -> ConditionGroup:
    group = common_groups.condition_group_update(
        group=group, actor=actor, root=group.promotion, **fields
    )
    rules_changed(group.promotion.provider_id)
    return group


@transaction.atomic
def condition_group_delete_many(*, groups: Iterable[ConditionGroup], actor: Actor) -> int:
    """Delete groups; their conditions stay, each AND-ed on its own."""
    groups = list(groups)
    deleted = common_groups.condition_groups_delete(
        groups=groups, actor=actor, root_of=lambda g: g.promotion
    )
    rules_changed(*(g.promotion.provider_id for g in groups))
    return deleted
