"""A quote as plain JSON-ready data: what the REST door answers and a redemption stores."""

from typing import Any

from promotions.engine.types import Quote


def money(value) -> str:
    return format(value, "f")


def quote_as_dict(quote: Quote) -> dict[str, Any]:
    return {
        "lines": [
            {
                "tariff": lq.line.tariff_id,
                "period": lq.line.period,
                "kind": lq.line.kind,
                "currency": lq.line.currency,
                "price": money(lq.line.price),
                "discount": money(lq.discount),
                "final_price": money(lq.final_price),
                "promotion": lq.promotion_id,
                "code": lq.code,
                "applied": [
                    {"promotion": a.promotion_id, "code": a.code, "discount": money(a.discount)}
                    for a in lq.applied
                ],
                "verdicts": [
                    {"promotion": v.promotion_id, "applied": v.applied, "reason": v.reason}
                    for v in lq.verdicts
                ],
            }
            for lq in quote.lines
        ],
        "codes": [
            {"code": c.code, "valid": c.valid, "promotion": c.promotion_id, "reason": c.reason}
            for c in quote.codes
        ],
        "budgets": [
            {
                "promotion": b.promotion_id,
                "period": b.period,
                "needs": money(b.needs),
                "left": None if b.left is None else money(b.left),
                "client_left": None if b.client_left is None else money(b.client_left),
            }
            for b in quote.budgets
        ],
        "total": money(quote.total),
        "discount_total": money(quote.discount_total),
        "explained": quote.explained,
    }
