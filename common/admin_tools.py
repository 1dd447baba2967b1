"""What every admin shares: who acted, and which fields a form changed."""

import csv
import operator
from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from common.actors import Actor
from common.groups import group_choice
from common.money import money_format
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


def group_arg(data: dict, groups: QuerySet) -> dict:
    """The admin types a group's name; the services take an existing group's name, `new` with
    the new group's name, or `none`. `groups` are the owner's, read when the row is written (the
    groups inline is saved first, so a group added on the same page is found)."""
    data = dict(data)
    if "group_name" in data:
        data |= group_choice(data.pop("group_name"), groups.values_list("name", flat=True))
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


class MonthsWidget(forms.CheckboxSelectMultiple):
    """Checkboxes of the usual order periods, and a box for others typed as `1, 12`."""

    def value_from_datadict(self, data, files, name):
        ticked = data.getlist(name) if hasattr(data, "getlist") else data.get(name) or []
        if isinstance(ticked, str):
            ticked = [ticked]
        return [*ticked, data.get(f"{name}_other", "")]

    def format_value(self, value):
        return [str(v) for v in value or []]

    def render(self, name, value, attrs=None, renderer=None):
        value = self.format_value(value)
        offered = {str(choice) for choice, _ in self.choices}
        boxes = super().render(name, [v for v in value if v in offered], attrs, renderer)
        return format_html(
            '<div class="months">{}<label>other months '
            '<input type="text" name="{}_other" value="{}" size="8" placeholder="e.g. 1, 12">'
            "</label></div>",
            boxes,
            name,
            ", ".join(v for v in value if v not in offered),
        )


class MonthsField(forms.Field):
    """Order periods in months: the boxes ticked and the months typed (`1, 12`), as a sorted
    list of whole months; empty means every period."""

    widget = MonthsWidget
    MOST = 1200  # a hundred years, the longest period a rule may name (common.periods)

    def __init__(self, *, choices=(), **kwargs):
        super().__init__(**kwargs)
        self.widget.choices = [(months, f"{months} mo") for months in choices]

    def to_python(self, value):
        if value is None:
            return []
        if isinstance(value, (str, int)):
            value = [value]
        parts = [
            part.strip()
            for item in value
            for part in str(item).strip().strip("[]").split(",")
            if part.strip()
        ]
        for part in parts:
            if not (part.isdigit() and 1 <= int(part) <= self.MOST):
                raise ValidationError(
                    f"Order periods are whole months from 1 to {self.MOST}, separated by commas "
                    f"(e.g. 1, 12); “{part}” is not one.",
                    code="invalid",
                )
        return sorted({int(part) for part in parts})

    def has_changed(self, initial, data):
        try:
            return sorted(set(initial or [])) != self.to_python(data)
        except ValidationError:
            return True


def money_column(amount: str, currency: str, description: str):
    """A list column showing the `amount` attribute in the one money format; `currency` is the
    dotted path to its currency row (anything with `iso` and `minor_units`)."""
    read_currency = operator.attrgetter(currency)

    @admin.display(description=description, ordering=amount)
    def column(self, obj) -> str:
        value = getattr(obj, amount)
        if value is None:
            return "-"
        row = read_currency(obj)
        return money_format(value, row.iso, minor_units=row.minor_units)

    return column
