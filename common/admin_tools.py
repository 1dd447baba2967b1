"""What every admin shares: who acted, and which fields a form changed."""

import csv
from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from common.actors import Actor
from common.groups import GroupChoice
from common.net import client_ip
from common.spreadsheet import safe_cell

# How an inline's rows are written: create(data), update(current, changed data), delete(objects).
InlineWriters = tuple[Callable[[dict], Any], Callable[[Any, dict], Any], Callable[[list], Any]]


class ListedOnlyAdmin(admin.ModelAdmin):
    """Rows the services (or the traffic) write: listed and viewed here, never added or changed
    by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ListedOnlyInline(admin.TabularInline):
    """Rows shown under their parent, never added or deleted there."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class KeptAdmin(ListedOnlyAdmin):
    """History: listed and viewed, never added, changed or deleted here; corrections are new
    rows."""

    def has_delete_permission(self, request, obj=None):
        return False


def admin_actor(request: HttpRequest, action: str) -> Actor:
    return Actor(user=request.user, ip=client_ip(request), action=f"admin:{action}")


def changed_fields(form: forms.ModelForm) -> dict:
    return {
        name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data
    }


def csv_response(
    filename: str, header: list[str], rows: Iterable[Iterable], row: Callable | None = None
) -> HttpResponse:
    """Every export: a header and rows, each cell neutralised if a spreadsheet would run it."""
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    for item in rows:
        writer.writerow([safe_cell(cell) for cell in (row(item) if row else item)])
    return response


def group_arg(data: dict) -> dict:
    """The admin picks a group object; the services take a group name (or `none`)."""
    data = dict(data)
    if "group" in data:
        group = data.pop("group")
        data["group"] = group.name if group else GroupChoice.NONE
    return data


def formset_save_through(formset, writers: InlineWriters, parent_field: str) -> None:
    """Save an inline formset through services, in one transaction: deletes, then each changed
    row's changed fields, then new rows; each write keeps its own history line."""
    create, update, delete = writers
    formset.new_objects, formset.changed_objects = [], []
    formset.deleted_objects = [f.instance for f in formset.deleted_forms if f.instance.pk]
    with transaction.atomic():
        delete(formset.deleted_objects)
        for f in formset.forms:
            if f in formset.deleted_forms or not f.has_changed():
                continue
            data = {
                k: v for k, v in f.cleaned_data.items() if k not in ("id", "DELETE", parent_field)
            }
            if f.instance.pk:
                current = formset.model.objects.get(pk=f.instance.pk)
                update(current, {k: data[k] for k in f.changed_data if k in data})
                formset.changed_objects.append((current, f.changed_data))
            else:
                made = create(data)
                if isinstance(made, formset.model):
                    formset.new_objects.append(made)


class ServiceSavedAdmin(admin.ModelAdmin):
    """Saves go through the app's services, so history and rules are the same as on every door.

    Subclasses give `create(actor, data)`, `update(current, actor, changed)` and, for inlines,
    `inline_writers(request, parent)` -> {model: (create, update, delete)}.
    """

    create = update = None

    def save_model(self, request, obj, form, change):
        actor = admin_actor(
            request, f"{self.model._meta.model_name}.{'change' if change else 'add'}"
        )
        try:
            if change:
                current = type(obj).objects.get(pk=obj.pk)
                saved = self.update(current, actor, changed_fields(form))
            else:
                saved = self.create(actor, form.cleaned_data)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            raise
        obj.pk = saved.pk
        obj._state.adding = False

    def inline_writers(self, request, parent) -> dict[type, InlineWriters]:
        return {}

    def save_formset(self, request, form, formset, change):
        writers = self.inline_writers(request, form.instance).get(formset.model)
        if writers is None:
            return super().save_formset(request, form, formset, change)
        formset_save_through(formset, writers, formset.fk.name)
