"""Reads for billing."""

from decimal import Decimal

from django.db.models.signals import post_delete, post_save

from billing.models import Currency, Service
from common.money import money_format

# Minor units per currency code, read once (a handful of rows) and forgotten when a currency
# changes, so a page formatting many amounts by code makes no query per amount.
_minor_units: dict[str, int] = {}


def currency_minor_units(iso: str) -> int:
    if iso not in _minor_units:
        _minor_units.update(Currency.objects.values_list("iso", "minor_units"))
    return _minor_units.get(iso, 2)


def _forget_minor_units(**kwargs) -> None:
    _minor_units.clear()


post_save.connect(_forget_minor_units, sender=Currency, dispatch_uid="currency_minor_units")
post_delete.connect(_forget_minor_units, sender=Currency, dispatch_uid="currency_minor_units_del")


def money_shown(amount: Decimal | int | str | None, currency: "Currency | str") -> str:
    """An amount in the one money format, the currency given as a row or by its code."""
    if amount is None or amount == "":
        return ""
    if isinstance(currency, Currency):
        return money_format(amount, currency.iso, minor_units=currency.minor_units)
    return money_format(amount, str(currency), minor_units=currency_minor_units(str(currency)))


# The periods tariffs are usually ordered for, in months (BILLmanager's defaults).
USUAL_ORDER_PERIODS = (1, 3, 6, 12, 24, 36)


def order_periods() -> list[int]:
    """The usual order periods and every other one a service was ordered for, shortest first."""
    ordered = Service.objects.order_by().values_list("period", flat=True).distinct()
    return sorted(set(USUAL_ORDER_PERIODS) | set(ordered))
