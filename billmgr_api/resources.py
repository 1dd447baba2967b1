"""List, edit and delete functions built from one declaration per object type.

A resource says which model it shows, its list columns (and how each filters), its form parameters,
and which services create, change and delete it; the door itself holds no business rules.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models, transaction
from django.db.models import Q

from billmgr_api.errors import FuncError, from_validation_error
from billmgr_api.fields import Param, is_whole
from billmgr_api.registry import func
from billmgr_api.request import FuncRequest
from billmgr_api.results import FuncResult
from common.groups import GroupChoice
from common.services import display_value

# Parameters that steer the protocol and never filter a list.
RESERVED = {"func", "out", "sok", "elid", "plid", "auth", "authinfo", "p_num", "p_cnt", "lang"}


@dataclass(frozen=True)
class Column:
    name: str
    value: Callable[[Any], Any]
    # How `name=VALUE` filters the list: an ORM lookup taking the raw string, or a function to a Q.
    lookup: str | Callable[[str], Q] | None = None

    def filter_q(self, raw: str, model: type[models.Model] | None = None) -> Q | None:
        if self.lookup is None:
            return None
        if callable(self.lookup):
            return self.lookup(raw)
        if model is not None:
            self._check_value(raw, model)
        return Q(**{self.lookup: raw})

    def _check_value(self, raw: str, model: type[models.Model]) -> None:
        """A value the filtered column cannot hold (`id=abc`, `ip=abc`, `elid=²`) is a `value`
        error naming the column, not a database error."""
        field = None
        for part in self.lookup.split("__"):
            if part == "pk":
                part = model._meta.pk.name
            try:
                field = model._meta.get_field(part)
            except FieldDoesNotExist:
                if part not in ("exact", "iexact"):
                    return  # a text lookup (icontains...): any string will do
                break
            if field.is_relation and field.related_model is not None:
                model = field.related_model
                field = model._meta.pk
        if field is None:
            return
        try:
            if isinstance(field, models.IntegerField | models.AutoField) and not (
                is_whole(raw) and len(raw) < 19
            ):
                raise ValidationError("not a whole number")
            field.run_validators(field.to_python(raw))
        except ValidationError:
            raise FuncError("value", self.name, f"{self.name} cannot be {raw!r}") from None


# How a form's object reaches its provider: the object itself, or its parent (a discount's
# promotion, a rule's program, a condition's rule and its program).
PARENT_LINKS = ("promotion", "program", "rule")


def _provider_id(obj: models.Model | None) -> int | None:
    for _ in range(len(PARENT_LINKS) + 1):
        if obj is None:
            return None
        if hasattr(obj, "provider_id"):
            return obj.provider_id
        obj = next((getattr(obj, n) for n in PARENT_LINKS if hasattr(obj, n)), None)
    return None


def id_column() -> Column:
    return Column("id", lambda o: o.pk, "pk")


@dataclass
class Resource:
    """One object type on the door; `register()` adds `func`, `func.edit` and `func.delete`."""

    func: str
    model: type[models.Model]
    columns: list[Column]
    params: list[Param]
    create: Callable[[FuncRequest, Any, dict[str, Any]], models.Model]
    update: Callable[[FuncRequest, models.Model, dict[str, Any]], models.Model]
    delete: Callable[[FuncRequest, list[models.Model]], int]
    queryset: Callable[[], models.QuerySet] | None = None
    # For a child (a promotion's discount): the parent's model and the child's FK to it.
    parent_model: type[models.Model] | None = None
    parent_attr: str | None = None
    # Params shown by `.edit` that are not plain attributes, e.g. a condition's group name.
    readers: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    write_only: tuple[str, ...] = ()
    # The list may show fewer rows than `.edit` reaches (promotion hides archived ones).
    list_scope: Callable[[models.QuerySet], models.QuerySet] | None = None
    # Filters the user saved (promotion.filter), applied beneath the request's own.
    saved_filters: Callable[[FuncRequest], dict[str, str]] | None = None

    # Permissions are the Django model permissions of the model shown.
    def perm(self, action: str) -> str:
        return f"{self.model._meta.app_label}.{action}_{self.model._meta.model_name}"

    def base_queryset(self) -> models.QuerySet:
        return self.queryset() if self.queryset else self.model.objects.all()

    def param_of(self) -> dict[str, str]:
        mapping = {p.attr: p.name for p in self.params}
        if self.parent_attr:
            mapping[self.parent_attr] = "plid"
        return mapping

    def parent(self, req: FuncRequest, name: str) -> models.Model | None:
        if self.parent_model is None:
            return None
        return req.object(self.parent_model.objects.all(), name)

    def scoped(self, req: FuncRequest, parent: models.Model | None) -> models.QuerySet:
        qs = self.base_queryset()
        return qs.filter(**{self.parent_attr: parent}) if parent is not None else qs

    # list ------------------------------------------------------------------------------------

    def rows(self, req: FuncRequest, qs: models.QuerySet, extra: dict[str, str] | None = None):
        filters = {**(extra or {}), **{k: v for k, v in req.params.items() if k not in RESERVED}}
        for col in self.columns:
            raw = filters.get(col.name, "").strip()
            q = col.filter_q(raw, qs.model) if raw else None
            if q is not None:
                qs = qs.filter(q)
        page, size = req.paging()
        total = qs.count()
        chunk = qs[(page - 1) * size : page * size]
        rows = [{c.name: display_value(c.value(o)) for c in self.columns} for o in chunk]
        return FuncResult.listing(rows, page=page, page_size=size, total=total)

    def list_handler(self, req: FuncRequest) -> FuncResult:
        # A child list takes its parent as elid (promotion.discount&elid=PROMOTION).
        qs = self.scoped(req, self.parent(req, "elid"))
        if self.list_scope is not None:
            qs = self.list_scope(qs)
        return self.rows(req, qs, self.saved_filters(req) if self.saved_filters else None)

    # edit ------------------------------------------------------------------------------------

    def show(self, obj: models.Model) -> dict[str, str]:
        values = {"id": str(obj.pk)}
        for p in self.params:
            if p.name in self.write_only:
                continue
            reader = self.readers.get(p.name)
            values[p.name] = p.show(reader(obj) if reader else getattr(obj, p.attr))
        return values

    def parse(self, req: FuncRequest, *, creating: bool) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for p in self.params:
            if req.has(p.name):
                data[p.attr] = p.parse(req.get(p.name))
            elif creating and p.required:
                raise FuncError("empty", p.name, f"{p.name} is required")
        # A parameter left out of a create takes the model's (or the service's) default.
        return data

    def edit_handler(self, req: FuncRequest) -> FuncResult:
        parent = self.parent(req, "plid") if self.parent_model and req.has("plid") else None
        elid = req.one_id("elid")
        obj = None
        if elid is not None:
            req.require(self.perm("change" if req.sok else "view"))
            obj = req.object(self.scoped(req, parent), "elid")
        elif req.sok:
            req.require(self.perm("add"))
            if self.parent_model is not None and parent is None:
                raise FuncError("empty", "plid", "plid is required to create this object")
        else:
            req.require(self.perm("view"))
        if not req.sok:
            values = self.show(obj) if obj is not None else self.defaults()
            return FuncResult.form(values, self.options(parent, obj))
        try:
            with transaction.atomic():
                data = self.parse(req, creating=obj is None)
                if obj is None:
                    obj = self.create(req, parent, data)
                else:
                    obj = self.update(req, obj, data)
        except ValidationError as exc:
            raise from_validation_error(exc, self.param_of()) from exc
        if isinstance(obj, FuncResult):  # work handed to the background answers for itself
            return obj
        if isinstance(obj, int):  # a batch (generated promo codes) answers how many it made
            return FuncResult.ok(count=obj)
        return FuncResult.ok(id=obj.pk)

    # option lists (slist) ------------------------------------------------------------------

    def options(
        self, parent: models.Model | None, obj: models.Model | None
    ) -> dict[str, list[tuple[str, str]]]:
        """Every choice field's allowed values, as ISPsystem forms list them: choices, existing
        objects (of the form's provider where they belong to one) and condition groups."""
        if parent is None and obj is not None and self.parent_attr:
            parent = getattr(obj, self.parent_attr)
        provider_id = _provider_id(parent if parent is not None else obj)
        lists = {}
        for p in self.params:
            if p.name in self.write_only:
                continue
            values = p.options(provider_id)
            if values is not None:
                lists[p.name] = values
        groups = self._group_options(parent)
        if groups is not None:
            lists["group"] = groups
        return lists

    def _group_options(self, parent: models.Model | None) -> list[tuple[str, str]] | None:
        """`group` of a condition: none, new (with `groupname`), or a group of the same parent."""
        if not any(p.name == "group" for p in self.params):
            return None
        values = [(GroupChoice.NONE, "no group"), (GroupChoice.NEW, "a new group (groupname)")]
        group_model = self.model._meta.get_field("group").related_model
        to_parent = next(
            f.name
            for f in group_model._meta.concrete_fields
            if f.many_to_one and f.related_model is self.parent_model
        )
        if parent is not None:
            names = group_model.objects.filter(**{to_parent: parent}).order_by("pk")
            values += [(name, name) for name in names.values_list("name", flat=True)]
        return values

    def defaults(self) -> dict[str, str]:
        return {
            p.name: p.show(p.empty_value()) for p in self.params if p.name not in self.write_only
        }

    # delete ----------------------------------------------------------------------------------

    def delete_handler(self, req: FuncRequest) -> FuncResult:
        objs = req.objects(self.base_queryset(), "elid")
        try:
            with transaction.atomic():
                self.delete(req, objs)
        except ValidationError as exc:
            raise from_validation_error(exc, self.param_of()) from exc
        return FuncResult.ok()

    def register(self) -> "Resource":
        func(self.func, perm=self.perm("view"))(self.list_handler)
        func(f"{self.func}.edit")(self.edit_handler)
        func(f"{self.func}.delete", perm=self.perm("delete"))(self.delete_handler)
        return self


def read_only_list(func: str, model: type[models.Model], columns: list[Column]) -> Resource:
    """Columns and paging for a list that has no form (history, usage); not registered itself."""

    def refuse(*args: Any) -> Any:
        raise FuncError("access", func, f"{func} is read-only")

    return Resource(
        func=func,
        model=model,
        columns=columns,
        params=[],
        create=refuse,
        update=refuse,
        delete=refuse,
    )
