"""`{{ amount|money:currency }}` and `{{ moment|moment }}`: the one money and date-time format."""

from django import template

from billing.selectors import money_shown
from common.money import moment_format, money_format

register = template.Library()


@register.filter
def money(value, currency=None):
    """`{{ amount|money:"USD" }}`, `{{ amount|money:currency_row }}`, or `{{ m|money }}` for a
    value that carries its own `amount`, `currency` and `minor_units`."""
    if currency is None and hasattr(value, "currency"):
        return money_format(value.amount, value.currency, minor_units=value.minor_units)
    return money_shown(value, currency or "")


@register.filter
def moment(value):
    return moment_format(value)
