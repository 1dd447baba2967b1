"""The promotion engine: compiled rules, facts about a client, condition and discount strategies,
the quote."""

from promotions.codegen import normalize_code
from promotions.engine.quote import OrderContext, order_context, quote_order
from promotions.engine.types import Kind, Line, LineQuote, Order, Quote, Verdict

__all__ = [
    "Kind",
    "Line",
    "LineQuote",
    "Order",
    "OrderContext",
    "Quote",
    "Verdict",
    "normalize_code",
    "order_context",
    "quote_order",
]
