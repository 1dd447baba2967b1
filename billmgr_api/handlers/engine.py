"""Func-style twins of the REST engine: promotion.quote, promotion.redeem and promotion.release.

Order lines come as parallel lists, as every multi-value parameter of the door does:
`pricelist=3, 4&period=12, 1&price=100.00, 20.00&currency=USD, USD&kind=new, renewal`.
"""

import datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.utils import timezone

from billmgr_api.errors import FuncError, from_validation_error
from billmgr_api.fields import is_whole, split_list
from billmgr_api.registry import func
from billmgr_api.request import FuncRequest
from billmgr_api.results import FuncResult
from common.moments import checked_moment
from common.throttle import Throttled
from promotions import services
from promotions.engine import Kind, Line, Order, Quote
from promotions.engine.present import quote_as_dict
from promotions.models import Redemption

# The door's parameter names for the engine's fields, so errors name what the client sent.
PARAM_OF = {"client": "account", "lines": "pricelist", "provider": "project"}


def _moment(req: FuncRequest) -> datetime.datetime:
    raw = req.get("at").strip()
    if not raw:
        return timezone.now()
    try:
        moment = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise FuncError("value", "at", "at is YYYY-MM-DD or YYYY-MM-DD HH:MM:SS") from None
    try:
        return checked_moment(moment)
    except ValueError as exc:
        raise FuncError("value", "at", str(exc)) from None


def _required_id(req: FuncRequest, name: str) -> int:
    value = req.one_id(name)
    if value is None:
        raise FuncError("empty", name, f"{name} is required")
    return value


def _order(req: FuncRequest) -> Order:
    tariffs = split_list(req.get("pricelist"))
    if not tariffs:
        raise FuncError("empty", "pricelist", "pricelist is required: one tariff per order line")
    count = len(tariffs)

    def column(name: str, default: str | None = None) -> list[str]:
        values = split_list(req.get(name))
        if not values and default is not None:
            return [default] * count
        if len(values) != count:
            raise FuncError("value", name, f"{name} needs {count} value(s), one per pricelist")
        return values

    periods, prices, currencies, kinds = (
        column("period", "1"),
        column("price"),
        column("currency"),
        column("kind", Kind.NEW),
    )
    lines = []
    for tariff, period, price, currency, kind in zip(
        tariffs, periods, prices, currencies, kinds, strict=True
    ):
        if not is_whole(tariff) or len(tariff) > 18 or not is_whole(period) or len(period) > 4:
            raise FuncError("value", "pricelist", "pricelist and period are whole numbers")
        try:
            amount = Decimal(price)
        except InvalidOperation:
            raise FuncError("value", "price", f"price {price!r} is not an amount") from None
        if not amount.is_finite() or amount < 0 or abs(amount.adjusted()) > 15:
            raise FuncError("value", "price", f"price {price!r} is not an amount")
        if kind not in Kind.CHOICES:
            raise FuncError("value", "kind", f"kind is one of {', '.join(Kind.CHOICES)}")
        lines.append(Line(int(tariff), int(period), amount, currency.upper(), kind))
    return Order(
        client_id=_required_id(req, "account"),
        provider_id=_required_id(req, "project"),
        at=_moment(req),
        lines=tuple(lines),
        codes=tuple(split_list(req.get("promocode"))),
    )


def _line_rows(quote_lines: list[dict]) -> list[dict[str, str]]:
    return [
        {
            "id": str(number),
            "pricelist": str(line["tariff"]),
            "period": str(line["period"]),
            "kind": line["kind"],
            "price": line["price"],
            "discount": line["discount"],
            "final_price": line["final_price"],
            "promotion": str(line["promotion"] or ""),
            "promocode": line["code"] or "",
            "verdicts": "; ".join(f"#{v['promotion']} {v['reason']}" for v in line["verdicts"]),
        }
        for number, line in enumerate(quote_lines, start=1)
    ]


def _quoted(fn):
    try:
        return fn()
    except ValidationError as exc:
        raise from_validation_error(exc, PARAM_OF) from None
    except Throttled as exc:
        raise _guessing_limit(exc) from None


def _guessing_limit(exc: Throttled) -> FuncError:
    return FuncError(
        "limit",
        "promocode",
        f"Too many unknown promo codes; try again in {exc.retry_after} seconds",
    )


@func("promotion.quote", perm="promotions.view_promotion")
def promotion_quote(req: FuncRequest) -> FuncResult:
    quote: Quote = _quoted(lambda: services.order_quote(order=_order(req), actor=req.actor))
    data = quote_as_dict(quote)
    rows = _line_rows(data["lines"])
    result = FuncResult.listing(rows, page=1, page_size=len(rows), total=len(rows))
    result.values = {
        "total": data["total"],
        "discount_total": data["discount_total"],
        "promocodes": "; ".join(c["reason"] for c in data["codes"]),
    }
    return result


@func("promotion.redeem", perm="promotions.add_redemption")
def promotion_redeem(req: FuncRequest) -> FuncResult:
    key = req.get("idempotency_key").strip()
    if not key or len(key) > 255:
        raise FuncError(
            "empty", "idempotency_key", "idempotency_key is required (1-255 characters)"
        )
    order = _order(req)
    try:
        redemption, created = _quoted(
            lambda: services.redemption_redeem(order=order, idempotency_key=key, actor=req.actor)
        )
    except services.RedemptionRefused as exc:
        raise FuncError("limit", "promocode", exc.reason) from None
    return FuncResult.ok(
        id=redemption.pk,
        repeated="off" if created else "on",
        total=redemption.quote["total"],
        discount_total=redemption.quote["discount_total"],
        promocode=", ".join(
            u.promocode.code for u in redemption.usages.select_related("promocode")
        ),
    )


@func("promotion.release", perm="promotions.change_redemption")
def promotion_release(req: FuncRequest) -> FuncResult:
    redemption = req.object(Redemption.objects.all())
    services.redemption_release(redemption=redemption, actor=req.actor)
    return FuncResult.ok()
