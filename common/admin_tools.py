"""What every admin shares: who acted, and which fields a form changed."""

import csv
from collections.abc import Callable, Iterable

from django import forms
from django.http import HttpRequest, HttpResponse

from common.actors import Actor


def admin_actor(request: HttpRequest, action: str) -> Actor:
    return Actor(user=request.user, ip=request.META.get("REMOTE_ADDR"), action=f"admin:{action}")


def changed_fields(form: forms.ModelForm) -> dict:
    return {
        name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data
    }


def csv_response(
    filename: str, header: list[str], rows: Iterable[Iterable], row: Callable | None = None
) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    for item in rows:
        writer.writerow(row(item) if row else item)
    return response
