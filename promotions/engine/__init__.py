"""The promotion engine: compiled rules, facts about a client, condition and discount strategies,
the quote."""

from promotions.codegen import normalize_code
from promotions.engine.quote import quote_order
from promotions.engine.types import Kind, Line, LineQuote, Order, Quote, Verdict

__all__ = [
    "Kind",
    "Line",
    "LineQuote",
    "Order",
    "Quote",
    "Verdict",
    "normalize_code",
    "quote_order",
]
