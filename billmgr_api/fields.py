"""Parameters of the func-style door: parse a string into a value, and show a value as a string.

Dates are YYYY-MM-DD, switches on/off, amounts decimal strings, lists joined by ", ".
"""

import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import models

from billmgr_api.errors import FuncError
from common.services import display_value

# A form's option list of existing objects shows at most this many (by id).
MAX_OPTIONS = 1000


def is_whole(raw: str) -> bool:
    """ASCII digits only: `str.isdigit` also takes superscripts and other scripts' digits."""
    return raw.isascii() and raw.isdigit()


def split_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


class Param:
    """One parameter: `name` on the wire, `attr` on the model/service, parsed by `parse_value`."""

    def __init__(
        self, name: str, attr: str | None = None, *, required: bool = False, help: str = ""
    ):
        self.name = name
        self.attr = attr or name
        self.required = required
        self.help = help

    def parse(self, raw: str) -> Any:
        raw = raw.strip()
        if raw == "":
            if self.required:
                raise FuncError("empty", self.name, f"{self.name} is required")
            return self.empty_value()
        return self.parse_value(raw)

    def empty_value(self) -> Any:
        return None

    def parse_value(self, raw: str) -> Any:
        return raw

    def show(self, value: Any) -> str:
        return display_value(value)

    def options(self, provider_id: int | None) -> list[tuple[str, str]] | None:
        """The values a form may offer (its `slist`), or None for a free field."""
        return None

    def bad(self, msg: str) -> FuncError:
        return FuncError("value", self.name, msg)


class Text(Param):
    def __init__(self, *args, max_length: int = 200, **kw):
        super().__init__(*args, **kw)
        self.max_length = max_length

    def empty_value(self) -> str:
        return ""

    def parse_value(self, raw: str) -> str:
        if len(raw) > self.max_length:
            raise self.bad(f"{self.name} is longer than {self.max_length} characters")
        if "\x00" in raw:
            raise self.bad(f"{self.name} contains a NUL character")
        return raw


class Date(Param):
    def parse_value(self, raw: str) -> datetime.date:
        try:
            if len(raw) != 10:
                raise ValueError(raw)
            return datetime.date.fromisoformat(raw)
        except ValueError:
            raise self.bad(f"{self.name} must be a date as YYYY-MM-DD, not {raw!r}") from None


class DateTime(Date):
    """A date on the wire; midnight in the server's time zone in the database; empty means now."""

    def empty_value(self) -> datetime.datetime:
        from django.utils import timezone

        return timezone.now()

    def parse_value(self, raw: str) -> datetime.datetime:
        from django.utils import timezone

        day = super().parse_value(raw)
        return timezone.make_aware(datetime.datetime.combine(day, datetime.time()))

    def show(self, value: Any) -> str:
        from django.utils import timezone

        return timezone.localtime(value).date().isoformat() if value else ""


class Switch(Param):
    def empty_value(self) -> bool:
        return False

    def parse_value(self, raw: str) -> bool:
        if raw not in ("on", "off"):
            raise self.bad(f"{self.name} is on or off, not {raw!r}")
        return raw == "on"


class Number(Param):
    def __init__(
        self,
        *args,
        minimum: int | None = 0,
        maximum: int = 2**31 - 1,
        default: int | None = None,
        **kw,
    ):
        super().__init__(*args, **kw)
        self.minimum = minimum
        self.maximum = maximum
        self.default = default

    def empty_value(self) -> int | None:
        return self.default

    def parse_value(self, raw: str) -> int:
        digits = raw[1:] if raw[:1] in "+-" else raw
        if not is_whole(digits) or len(digits) > 18:
            raise self.bad(f"{self.name} must be a whole number, not {raw!r}")
        value = int(raw)
        if self.minimum is not None and value < self.minimum:
            raise self.bad(f"{self.name} must be at least {self.minimum}")
        if value > self.maximum:
            raise self.bad(f"{self.name} must be at most {self.maximum}")
        return value


class Amount(Param):
    def __init__(
        self,
        *args,
        minimum: Decimal | None = Decimal(0),
        maximum=None,
        default: Decimal | None = None,
        **kw,
    ):
        super().__init__(*args, **kw)
        self.minimum = minimum
        self.maximum = maximum
        self.default = default

    def empty_value(self) -> Decimal | None:
        return self.default

    def parse_value(self, raw: str) -> Decimal:
        try:
            if not raw.isascii():
                raise InvalidOperation(raw)
            value = Decimal(raw)
        except InvalidOperation:
            raise self.bad(f"{self.name} must be a decimal number, not {raw!r}") from None
        if not value.is_finite() or value.as_tuple().exponent < -4 or abs(value) >= 10**16:
            raise self.bad(f"{self.name} must have at most 16 digits and 4 decimal places")
        if self.minimum is not None and value < self.minimum:
            raise self.bad(f"{self.name} must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise self.bad(f"{self.name} must be at most {self.maximum}")
        return value

    def show(self, value: Any) -> str:
        return "" if value is None else format(value.normalize(), "f")


class Choice(Param):
    def __init__(self, name: str, choices: type[models.TextChoices], *args, default=None, **kw):
        super().__init__(name, *args, **kw)
        self.choices = choices
        self.default = default

    def empty_value(self) -> Any:
        return self.default if self.default is not None else ""

    def options(self, provider_id: int | None) -> list[tuple[str, str]]:
        return [(str(value), str(label)) for value, label in self.choices.choices]

    def parse_value(self, raw: str) -> str:
        if raw not in self.choices.values:
            allowed = ", ".join(self.choices.values)
            raise self.bad(f"{self.name} is one of {allowed}, not {raw!r}")
        return raw


class NumberList(Param):
    def empty_value(self) -> list[int]:
        return []

    def parse_value(self, raw: str) -> list[int]:
        parts = split_list(raw)
        if not all(is_whole(part) and len(part) <= 9 for part in parts):
            raise self.bad(f"{self.name} is a list of whole numbers like '1, 12'")
        values = sorted({int(part) for part in parts})
        if any(v < 1 or v > 1200 for v in values):
            raise self.bad(f"{self.name} values are months from 1 to 1200")
        return values


class Ref(Param):
    """An id of another object; `lookup_fields` lets e.g. a currency also be named by its ISO code."""

    def __init__(self, name: str, model: type[models.Model], *args, lookup_fields=(), **kw):
        super().__init__(name, *args, **kw)
        self.model = model
        self.lookup_fields = lookup_fields

    def parse_value(self, raw: str) -> models.Model:
        found = None
        if is_whole(raw) and len(raw) < 19:
            found = self.model.objects.filter(pk=int(raw)).first()
        for field in self.lookup_fields:
            found = found or self.model.objects.filter(**{field: raw}).first()
        if found is None:
            raise self.bad(f"no {self.model._meta.verbose_name} {raw!r}")
        return found

    def show(self, value: Any) -> str:
        return "" if value is None else str(value.pk)

    def options(self, provider_id: int | None) -> list[tuple[str, str]]:
        """Existing objects by id; those of a provider (tariffs, programs) only of the form's
        provider when it has one."""
        objects = self.model.objects.all()
        if provider_id is not None and any(
            f.name == "provider" for f in self.model._meta.concrete_fields
        ):
            objects = objects.filter(provider_id=provider_id)
        return [(str(o.pk), str(o)) for o in objects.order_by("pk")[:MAX_OPTIONS]]


class RefList(Ref):
    def empty_value(self) -> list:
        return []

    def parse_value(self, raw: str) -> list[models.Model]:
        return [super(RefList, self).parse_value(part) for part in split_list(raw)]

    def show(self, value: Any) -> str:
        objs = value.all() if hasattr(value, "all") else value
        return ", ".join(str(o.pk) for o in sorted(objs, key=lambda o: o.pk))
