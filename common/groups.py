"""Condition groups, shared by promotions and referral rules: conditions in one group are OR-ed,
groups are AND-ed with each other, and a condition outside any group is a group of its own.

One implementation of everything about them: how the terms are formed and combined
(`ConditionGroups`), the `group`/`groupname` vocabulary of the doors (`group_resolve`), the writes
that keep groups tidy (`grouped_condition_create/update/delete_many`), the model check that a group
belongs to the condition's owner (`GroupedCondition`) and the admin inline that offers only the
owner's groups (`GroupedConditionInline`).
"""

import functools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from common.actors import Actor
from common.services import model_create, model_delete_many, model_update

T = TypeVar("T")
R = TypeVar("R")


class GroupChoice:
    NONE = "none"
    NEW = "new"


@dataclass(frozen=True)
class ConditionGroups(Generic[T]):
    """The AND-ed terms of a set of conditions, each term the OR-ed conditions of one group."""

    terms: tuple[tuple[T, ...], ...]

    @classmethod
    def of(
        cls,
        conditions: Iterable[T],
        *,
        group_of: Callable[[T], Any] = lambda c: c.group_id,
        key_of: Callable[[T], Any] = lambda c: c.pk if c.pk is not None else id(c),
    ) -> "ConditionGroups[T]":
        terms: dict[Any, list[T]] = {}
        for condition in conditions:
            group = group_of(condition)
            terms.setdefault(
                ("group", group) if group else ("alone", key_of(condition)), []
            ).append(condition)
        return cls(tuple(tuple(members) for members in terms.values()))

    def __bool__(self) -> bool:
        return bool(self.terms)

    def fold(
        self,
        *,
        each: Callable[[T], R],
        any_of: Callable[[list[R]], R],
        all_of: Callable[[list[R]], R],
    ) -> R:
        """Combine the conditions into one value: `each` turns a condition into a value, `any_of`
        combines a group's values, `all_of` the groups' (e.g. into a filter, or into text)."""
        return all_of([any_of([each(c) for c in members]) for members in self.terms])

    def as_q(self, each: Callable[[T], Q | None]) -> Q:
        """The conditions as one database filter; `each` gives a condition's filter, or None for
        a condition that always holds (its whole group then holds)."""

        def any_of(filters: list[Q | None]) -> Q:
            return Q() if None in filters else functools.reduce(operator.or_, filters)

        return self.fold(
            each=each,
            any_of=any_of,
            all_of=lambda terms: functools.reduce(operator.and_, terms, Q()),
        )

    def first_failing(self, holds: Callable[[T], bool]) -> tuple[T, ...] | None:
        """The first term none of whose conditions holds, or None when every term holds."""
        for members in self.terms:
            if not any(holds(c) for c in members):
                return members
        return None

    def expression(self, text: Callable[[T], str], *, grouped: Callable[[T], bool]) -> str:
        """`(A OR B) AND C`; a term of a named group is bracketed even with one member."""
        return " AND ".join(
            f"({' OR '.join(text(c) for c in members)})"
            if len(members) > 1 or grouped(members[0])
            else text(members[0])
            for members in self.terms
        )


def group_resolve(
    *, model: type[models.Model], owner: dict[str, Any], group: str | None, groupname: str | None
) -> Any:
    """`none` -> no group, `new` -> a new group named `groupname`, else an existing group's name.

    `owner` names the group's parent, e.g. {"promotion": promotion}.
    """
    if group in (None, "", GroupChoice.NONE):
        return None
    if group == GroupChoice.NEW:
        name = (groupname or "").strip()
        if not name:
            raise ValidationError({"groupname": "Enter the name of the new group."})
        if model.objects.filter(**owner, name=name).exists():
            raise ValidationError(
                {"groupname": ValidationError(f'The group "{name}" exists already.', code="unique")}
            )
        return model.objects.create(**owner, name=name)
    found = model.objects.filter(**owner, name=group).first()
    if found is None:
        raise ValidationError({"group": f'No group "{group}" here.'})
    return found


def groups_drop_empty(model: type[models.Model], groups: Iterable[Any]) -> None:
    ids = {g.pk for g in groups if g is not None}
    model.objects.filter(pk__in=ids, conditions__isnull=True).delete()


def _group_model(condition_model: type[models.Model]) -> type[models.Model]:
    return condition_model._meta.get_field("group").related_model


def grouped_condition_create(
    *,
    model: type[models.Model],
    owner: dict[str, Any],
    actor: Actor,
    root: models.Model,
    group: str | None = None,
    groupname: str | None = None,
    **fields: Any,
) -> Any:
    """Create a condition of `owner` (e.g. {"rule": rule}) in the group named as the doors name it;
    history goes on `root`."""
    resolved = group_resolve(
        model=_group_model(model), owner=owner, group=group, groupname=groupname
    )
    return model_create(
        model=model, data={**owner, "group": resolved, **fields}, actor=actor, root=root
    )


def grouped_condition_update(
    *,
    condition: models.Model,
    owner: dict[str, Any],
    actor: Actor,
    root: models.Model,
    group: str | None = None,
    groupname: str | None = None,
    **fields: Any,
) -> tuple[Any, list[str]]:
    """Change a condition, moving it to another group when `group` is given; a group left empty
    is removed. Answers the condition and its changes, as `model_update` does."""
    group_model = _group_model(type(condition))
    if group is not None:
        fields["group"] = group_resolve(
            model=group_model, owner=owner, group=group, groupname=groupname
        )
    old_group = condition.group
    condition, changes = model_update(instance=condition, data=fields, actor=actor, root=root)
    groups_drop_empty(group_model, [old_group])
    return condition, changes


def grouped_conditions_delete(
    *, conditions: Iterable[models.Model], actor: Actor, root_of: Callable[[Any], models.Model]
) -> int:
    """Delete conditions; the groups they leave empty go with them."""
    conditions = list(conditions)
    if not conditions:
        return 0
    groups = [c.group for c in conditions]
    deleted = model_delete_many(objects=conditions, actor=actor, root_of=root_of)
    groups_drop_empty(_group_model(type(conditions[0])), groups)
    return deleted


class GroupedCondition:
    """Model mixin: a condition's group must belong to the condition's own owner. The model names
    its owner's foreign key in `group_owner` ("promotion", "rule")."""

    group_owner: str

    def group_error(self) -> dict[str, str]:
        owner_id = f"{self.group_owner}_id"
        if self.group_id and getattr(self.group, owner_id) != getattr(self, owner_id):
            return {"group": f"The group belongs to another {self.group_owner}."}
        return {}


class GroupedConditionInline:
    """Admin inline mixin: the group column offers only the groups of the object being edited."""

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        groups = formset.form.base_fields.get("group")
        if groups is not None:
            owner = self.model.group_owner
            groups.queryset = (
                groups.queryset.model.objects.filter(**{owner: obj})
                if obj
                else groups.queryset.none()
            )
        return formset
