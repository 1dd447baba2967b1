"""Condition groups shared by promotions and referral rules: OR inside a group, AND across groups."""

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models


class GroupChoice:
    NONE = "none"
    NEW = "new"


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


def grouped_terms(conditions: Iterable[Any]) -> list[list[Any]]:
    """The AND-ed terms: each group's conditions together (OR-ed), an ungrouped one alone."""
    terms: dict[Any, list[Any]] = {}
    for condition in conditions:
        key = ("group", condition.group_id) if condition.group_id else ("alone", condition.pk)
        terms.setdefault(key, []).append(condition)
    return list(terms.values())
