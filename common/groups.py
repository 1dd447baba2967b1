"""Condition groups, shared by promotions and referral rules: conditions in one group are OR-ed,
groups are AND-ed with each other, and a condition outside any group is a group of its own.

One implementation of everything about them: how the terms are formed and combined
(`ConditionGroups`), the `group`/`groupname` vocabulary of the doors (`group_resolve`), the writes
that keep groups tidy (`grouped_condition_create/update/delete_many`), the model check that a group
belongs to the condition's owner (`GroupedCondition`) and the admin inline that offers only the
owner's groups (`GroupedConditionInline`).
"""

import copy
import functools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.html import format_html, format_html_join

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
    *,
    model: type[models.Model],
    owner: dict[str, Any],
    group: str | None,
    groupname: str | None,
    actor: Actor | None = None,
    root: models.Model | None = None,
) -> Any:
    """`none` -> no group, `new` -> a new group named `groupname`, else an existing group's name.

    `owner` names the group's parent, e.g. {"promotion": promotion}; a new group's creation is
    recorded on `root` when an actor is given.
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
        if actor is None:
            return model.objects.create(**owner, name=name)
        return model_create(model=model, data={**owner, "name": name}, actor=actor, root=root)
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
        model=_group_model(model),
        owner=owner,
        group=group,
        groupname=groupname,
        actor=actor,
        root=root,
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
            model=group_model,
            owner=owner,
            group=group,
            groupname=groupname,
            actor=actor,
            root=root,
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


def condition_group_create(
    *, model: type[models.Model], owner: dict[str, Any], name: str, actor: Actor, root: models.Model
) -> Any:
    """A named group of `owner` (e.g. {"promotion": promotion}); history goes on `root`."""
    return model_create(model=model, data={**owner, "name": name}, actor=actor, root=root)


def condition_group_update(
    *, group: models.Model, actor: Actor, root: models.Model, **fields: Any
) -> Any:
    return model_update(instance=group, data=fields, actor=actor, root=root)[0]


def condition_groups_delete(
    *, groups: Iterable[models.Model], actor: Actor, root_of: Callable[[Any], models.Model]
) -> int:
    """Delete groups; their conditions stay, each then a term of its own (AND-ed)."""
    return model_delete_many(objects=list(groups), actor=actor, root_of=root_of)


def group_choice(name: str | None, existing: Iterable[str]) -> dict[str, str]:
    """A group typed by name as the services take it: none, an existing group, or a new one."""
    name = (name or "").strip()
    if not name:
        return {"group": GroupChoice.NONE}
    if name in set(existing):
        return {"group": name}
    return {"group": GroupChoice.NEW, "groupname": name}


class GroupedCondition:
    """Model mixin: a condition's group must belong to the condition's own owner. The model names
    its owner's foreign key in `group_owner` ("promotion", "rule")."""

    group_owner: str

    def group_error(self) -> dict[str, str]:
        owner_id = f"{self.group_owner}_id"
        if self.group_id and getattr(self.group, owner_id) != getattr(self, owner_id):
            return {"group": f"The group belongs to another {self.group_owner}."}
        return {}


class GroupNameInput(forms.TextInput):
    """A group typed by its name, with the owner's groups offered as suggestions."""

    def __init__(self, attrs=None, names: Iterable[str] = ()):
        super().__init__(attrs)
        self.names = list(names)

    def render(self, name, value, attrs=None, renderer=None):
        options = f"{(attrs or {}).get('id') or name}_groups"
        field = super().render(name, value, {**(attrs or {}), "list": options}, renderer)
        return format_html(
            '{}<datalist id="{}">{}</datalist>',
            field,
            options,
            format_html_join("", '<option value="{}">', ((n,) for n in self.names)),
        )


class GroupedConditionForm(forms.ModelForm):
    """A condition's group typed by name: conditions with one name are OR-ed, a new name makes a
    new group (also on the page that adds their owner, before any group exists)."""

    group_name = forms.CharField(
        required=False,
        max_length=200,
        label="group",
        widget=GroupNameInput(attrs={"size": 12}),
        help_text="Same name: OR-ed. A new name makes a group; empty: on its own.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        group = self.instance.group if self.instance.pk and self.instance.group_id else None
        self.initial["group_name"] = group.name if group else ""


class GroupedConditionInline:
    """Admin inline mixin: the group column is typed by name, suggesting the owner's groups."""

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("group")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        field = formset.form.base_fields.get("group_name")
        if field is not None:
            field = copy.deepcopy(field)
            group_model = _group_model(self.model)
            field.widget.names = (
                list(
                    group_model.objects.filter(**{self.model.group_owner: obj}).values_list(
                        "name", flat=True
                    )
                )
                if obj
                else []
            )
            formset.form.base_fields["group_name"] = field
        return formset
