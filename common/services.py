"""Writes shared by every app: field-by-field updates that record history the same way."""

import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib.contenttypes.models import ContentType
from django.db import models

from common.actors import Actor
from common.models import History
from common.rawsql import insert

M = TypeVar("M", bound=models.Model)


def history_record(*, obj: models.Model, actor: Actor, desc: str) -> History:
    record = history_line(obj=obj, actor=actor, desc=desc)
    insert([record])  # every write records one: see common.rawsql
    return record


def history_line(*, obj: models.Model, actor: Actor, desc: str) -> History:
    """The history line of a write, not yet saved (a writer that inserts it in its own statement
    takes it from here, so every line reads alike)."""
    user = actor.user
    return History(
        content_type_id=ContentType.objects.get_for_model(obj, for_concrete_model=True).pk,
        object_id=obj.pk,
        desc=desc,
        user_id=user.pk if user is not None and user.pk else None,
        username=actor.username,
        ip=actor.ip or None,
        action=actor.action,
    )


def display_value(value: Any) -> str:
    """How a value reads in a history line."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, list | tuple | set):
        return ", ".join(display_value(v) for v in value)
    return str(value)


def _label(field: models.Field) -> str:
    text = str(field.verbose_name)
    return text[:1].upper() + text[1:]


def _m2m_current(instance: models.Model, name: str) -> list[models.Model]:
    if not instance.pk:
        return []
    return sorted(getattr(instance, name).all(), key=lambda o: o.pk)


def model_update(
    *, instance: M, data: dict[str, Any], actor: Actor, root: models.Model | None = None
) -> tuple[M, list[str]]:
    """Set the changed fields, validate, save, and record one history line per changed field.

    `root` is the object the history belongs to (a promotion for its discount); default itself.
    Many-to-many fields take an iterable of objects.
    """
    meta = instance._meta
    initial = {f.attname: getattr(instance, f.attname) for f in meta.concrete_fields}
    changes: list[str] = []
    changed_fields: list[str] = []
    m2m_changes: dict[str, list[models.Model]] = {}
    for name, value in data.items():
        field = meta.get_field(name)
        if field.many_to_many:
            old_objs = _m2m_current(instance, name)
            new_objs = sorted(value, key=lambda o: o.pk)
            if [o.pk for o in old_objs] != [o.pk for o in new_objs]:
                m2m_changes[name] = new_objs
                changes.append(
                    f'{_label(field)} has been changed from "{display_value(old_objs)}" '
                    f'into "{display_value(new_objs)}"'
                )
            continue
        attname = field.name
        old = getattr(instance, attname)
        if old != value:
            setattr(instance, attname, value)
            changed_fields.append(attname)
            changes.append(
                f'{_label(field)} has been changed from "{display_value(old)}" '
                f'into "{display_value(value)}"'
            )
    if changed_fields:
        instance.full_clean()
        # clean() may derive other fields from the changed ones (a discount set back to
        # unlimited validity drops its length): those are saved with them.
        derived = [
            f.name
            for f in meta.concrete_fields
            if f.name not in changed_fields and getattr(instance, f.attname) != initial[f.attname]
        ]
        instance.save(update_fields=[*changed_fields, *derived])
    for name, objs in m2m_changes.items():
        getattr(instance, name).set(objs)
    target = root or instance
    for desc in changes:
        history_record(obj=target, actor=actor, desc=desc)
    return instance, changes


def model_create(
    *,
    model: type[M],
    data: dict[str, Any],
    actor: Actor,
    root: models.Model | None = None,
    desc: str | None = None,
) -> M:
    """Create, validate and save one object and record its creation in history."""
    plain = {k: v for k, v in data.items() if not model._meta.get_field(k).many_to_many}
    many = {k: v for k, v in data.items() if model._meta.get_field(k).many_to_many}
    instance = model(**plain)
    instance.full_clean()
    instance.save()
    for name, objs in many.items():
        getattr(instance, name).set(list(objs))
    history_record(
        obj=root or instance,
        actor=actor,
        desc=desc or f'{_label_model(model)} "{instance}" has been created',
    )
    return instance


def model_delete_many(
    *, objects: Iterable[models.Model], actor: Actor, root_of=lambda obj: None
) -> int:
    """Delete objects, recording each deletion on its root (itself when it has none)."""
    deleted = 0
    for obj in objects:
        history_record(
            obj=root_of(obj) or obj,
            actor=actor,
            desc=f'{_label_model(type(obj))} "{obj}" has been deleted',
        )
        obj.delete()
        deleted += 1
    return deleted


def _label_model(model: type[models.Model]) -> str:
    text = str(model._meta.verbose_name)
    return text[:1].upper() + text[1:]
