"""The order contract every door shares: what an order may hold, how its codes are written, what an
idempotency key is. A door converts its own syntax (JSON, func-style lists, an admin form) into the
plain values `order_build` takes; every rule about those values lives here, once.

Errors name the field as a dotted path (`lines.2.price`, `codes`, `client`), so each door can say
it in its own words (REST nests it, the func door names its parameter).
"""

import datetime
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from promotions.engine import Kind, Line, Order
from promotions.models import PromoCode

# An order names a few codes; more would turn one request into a batch of guesses.
MAX_CODES_PER_ORDER = 10
# A checkout's order; a bigger batch is not an order (and its answer would be megabytes).
MAX_LINES_PER_ORDER = 500
# Order periods are months, up to a hundred years.
MAX_PERIOD_MONTHS = 1200
# Money as the database keeps it: 20 digits, 4 of them after the point.
PRICE_MAX_DIGITS, PRICE_DECIMAL_PLACES = 20, 4
MAX_CURRENCY_LENGTH = 32
MAX_CODE_LENGTH = PromoCode._meta.get_field("code").max_length
MAX_IDEMPOTENCY_KEY_LENGTH = 255


# Ids are 64-bit in the database: a larger number names nothing.
MAX_ID = 2**63 - 1


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _id(value: Any) -> bool:
    return _whole(value) and 1 <= value <= MAX_ID


def _line(number: int, raw: Mapping[str, Any]) -> Line:
    errors: dict[str, str] = {}
    tariff, period, price = raw.get("tariff"), raw.get("period", 1), raw.get("price")
    kind, service = raw.get("kind") or Kind.NEW, raw.get("service")
    currency = str(raw.get("currency") or "").strip().upper()
    if not _id(tariff):
        errors["tariff"] = "A tariff is named by its id."
    if not _whole(period) or not 1 <= period <= MAX_PERIOD_MONTHS:
        errors["period"] = f"A period is 1 to {MAX_PERIOD_MONTHS} months."
    if not isinstance(price, Decimal) or not price.is_finite():
        errors["price"] = "A price is an amount like 10.00."
    elif price < 0:
        errors["price"] = "A price is zero or more."
    elif (
        price.as_tuple().exponent < -PRICE_DECIMAL_PLACES
        or price.adjusted() >= PRICE_MAX_DIGITS - PRICE_DECIMAL_PLACES
    ):
        errors["price"] = (
            f"A price has at most {PRICE_MAX_DIGITS - PRICE_DECIMAL_PLACES} digits before the "
            f"point and {PRICE_DECIMAL_PLACES} after it."
        )
    if not currency or len(currency) > MAX_CURRENCY_LENGTH:
        errors["currency"] = "A currency is named by its ISO code, like USD."
    if kind not in Kind.CHOICES:
        errors["kind"] = f"kind is one of {', '.join(Kind.CHOICES)}, not {kind!r}."
    if service is not None and not _id(service):
        errors["service"] = "The renewed service is named by its id."
    if errors:
        raise ValidationError({f"lines.{number}.{name}": msg for name, msg in errors.items()})
    return Line(
        tariff_id=tariff,
        period=period,
        price=price,
        currency=currency,
        kind=kind,
        service_id=service,
    )


def order_build(
    *,
    client: int | None,
    provider: int | None,
    lines: Iterable[Mapping[str, Any]],
    codes: Iterable[str] = (),
    at: datetime.datetime | None = None,
) -> Order:
    """An Order from plain values, or a ValidationError naming every field that is wrong.

    A line is a mapping of `tariff`, `period` (months, default 1), `price` (Decimal), `currency`,
    `kind` (`new` or `renewal`, default new) and `service` (the renewed service, optional).
    Codes are normalised (see `normalize_code`); blanks and repeats are dropped before the limit
    is counted.
    """
    errors: dict[str, Any] = {}
    for name, value in (("client", client), ("provider", provider)):
        if not _id(value):
            errors[name] = f"The {name} is named by its id."
    lines = list(lines)
    if not lines:
        errors["lines"] = "An order has at least one line."
    elif len(lines) > MAX_LINES_PER_ORDER:
        errors["lines"] = f"An order has at most {MAX_LINES_PER_ORDER} lines, not {len(lines)}."
    built = []
    if "lines" not in errors:
        for number, raw in enumerate(lines):
            try:
                built.append(_line(number, raw))
            except ValidationError as exc:
                errors.update(exc.error_dict)
    codes = [str(c) for c in codes]
    if any(len(c.strip()) > MAX_CODE_LENGTH for c in codes):
        errors["codes"] = f"A promo code has at most {MAX_CODE_LENGTH} characters."
    if at is not None and timezone.is_naive(at):
        errors["at"] = "The moment of the order carries its time zone."
    order = None
    if not errors:
        order = Order(
            client_id=client,
            provider_id=provider,
            at=at or timezone.now(),
            lines=tuple(built),
            codes=tuple(codes),
        )
        if len(order.codes) > MAX_CODES_PER_ORDER:
            errors["codes"] = f"An order carries at most {MAX_CODES_PER_ORDER} promo codes."
    if errors:
        raise ValidationError(errors)
    return order


def idempotency_key_clean(raw: str | None) -> str:
    """The key as stored: surrounding spaces dropped, 1 to 255 characters."""
    key = (raw or "").strip()
    if not key:
        raise ValidationError(
            {"idempotency_key": ValidationError("An idempotency key is required.", code="required")}
        )
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationError(
            {
                "idempotency_key": f"An idempotency key has at most "
                f"{MAX_IDEMPOTENCY_KEY_LENGTH} characters."
            }
        )
    return key
