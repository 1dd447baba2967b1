"""Writes for referral programs, their rules and rule conditions: every door calls these."""

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from common.actors import Actor
from common.groups import group_resolve, groups_drop_empty
from common.services import model_create, model_delete_many, model_update
from referrals.models import ReferralProgram, Rule, RuleCondition, RuleConditionGroup

DEFAULT_TAKEN = "Only one referral program of a provider is assigned by default."


def _one_default(fn):
    """The partial unique index decides, also between two concurrent saves; named as the field."""
    taken = ValidationError({"assign_by_default": ValidationError(DEFAULT_TAKEN, code="unique")})
    try:
        with transaction.atomic():
            return fn()
    except ValidationError as exc:
        if DEFAULT_TAKEN in exc.messages:
            raise taken from exc
        raise
    except IntegrityError as exc:
        if "referralprogram_one_default_per_provider" in str(exc):
            raise taken from exc
        raise


# Programs ---------------------------------------------------------------------------------------


def program_create(*, actor: Actor, **fields: Any) -> ReferralProgram:
    return _one_default(lambda: model_create(model=ReferralProgram, data=fields, actor=actor))


def program_update(*, program: ReferralProgram, actor: Actor, **fields: Any) -> ReferralProgram:
    return _one_default(lambda: model_update(instance=program, data=fields, actor=actor)[0])


@transaction.atomic
def program_delete_many(*, programs: Iterable[ReferralProgram], actor: Actor) -> int:
    """All or none: a program with referrals keeps them; set it inactive instead."""
    programs = list(programs)
    busy = sorted({p.name for p in programs if p.referrals.exists()})
    if busy:
        raise ValidationError(
            {"elid": f"{', '.join(busy)} has referrals; make it inactive instead."}
        )
    return model_delete_many(objects=programs, actor=actor)


# Rules ------------------------------------------------------------------------------------------


@transaction.atomic
def rule_create(*, program: ReferralProgram, actor: Actor, **fields: Any) -> Rule:
    return model_create(model=Rule, data={"program": program, **fields}, actor=actor, root=program)


@transaction.atomic
def rule_update(*, rule: Rule, actor: Actor, **fields: Any) -> Rule:
    return model_update(instance=rule, data=fields, actor=actor, root=rule.program)[0]


@transaction.atomic
def rule_delete_many(*, rules: Iterable[Rule], actor: Actor) -> int:
    rules = list(rules)
    paid = sorted({r.name for r in rules if r.rewards.exists()})
    if paid:
        raise ValidationError({"elid": f"{', '.join(paid)} has rewards; make it inactive instead."})
    return model_delete_many(objects=rules, actor=actor, root_of=lambda r: r.program)


# Rule conditions --------------------------------------------------------------------------------


def _group(rule: Rule, group: str | None, groupname: str | None):
    return group_resolve(
        model=RuleConditionGroup, owner={"rule": rule}, group=group, groupname=groupname
    )


@transaction.atomic
def rule_condition_create(
    *, rule: Rule, actor: Actor, group: str | None = None, groupname: str | None = None, **fields
) -> RuleCondition:
    return model_create(
        model=RuleCondition,
        data={"rule": rule, "group": _group(rule, group, groupname), **fields},
        actor=actor,
        root=rule.program,
    )


@transaction.atomic
def rule_condition_update(
    *,
    condition: RuleCondition,
    actor: Actor,
    group: str | None = None,
    groupname: str | None = None,
    **fields: Any,
) -> RuleCondition:
    if group is not None:
        fields["group"] = _group(condition.rule, group, groupname)
    old_group = condition.group
    condition, _ = model_update(
        instance=condition, data=fields, actor=actor, root=condition.rule.program
    )
    groups_drop_empty(RuleConditionGroup, [old_group])
    return condition


@transaction.atomic
def rule_condition_delete_many(*, conditions: Iterable[RuleCondition], actor: Actor) -> int:
    conditions = list(conditions)
    groups = [c.group for c in conditions]
    deleted = model_delete_many(objects=conditions, actor=actor, root_of=lambda c: c.rule.program)
    groups_drop_empty(RuleConditionGroup, groups)
    return deleted
