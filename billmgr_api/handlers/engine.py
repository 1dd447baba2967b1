"""Func-style twins of the REST engine: promotion.quote, promotion.redeem and promotion.release.

Order lines come as parallel lists, as every multi-value parameter of the door does:
`pricelist=3, 4&period=12, 1&price=100.00, 20.00&currency=USD, USD&kind=new, renewal&service=, 42`
(`service` names the renewed service of a renewal line; blank for the others). The order's rules
are promotions.services.order_build's; this door only reads its lists.
"""

import datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

from billmgr_api.errors import FuncError, from_validation_error
from billmgr_api.fields import is_whole, split_list
from billmgr_api.registry import func
from billmgr_api.request import FuncRequest
from billmgr_api.results import FuncResult
from common.moments import checked_moment
from common.throttle import Throttled
from promotions import services
from promotions.engine import Kind, Order, Quote
from promotions.engine.present import quote_as_dict
from promotions.models import Redemption
from promotions.selectors import redemption_usages

# The door's parameter names for the order's fields, so errors name what the client sent.
PARAM_OF = {
    "client": "account",
    "provider": "project",
    "lines": "pricelist",
    "tariff": "pricelist",
    "codes": "promocode",
}


def _moment(req: FuncRequest) -> datetime.datetime | None:
    raw = req.get("at").strip()
    if not raw:
        return None
    try:
        moment = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise FuncError("value", "at", "at is YYYY-MM-DD or YYYY-MM-DD HH:MM:SS") from None
    try:
        return checked_moment(moment)
    except ValueError as exc:
        raise FuncError("value", "at", str(exc)) from None


def _whole(name: str, raw: str) -> int:
    # Ids fit 18 digits; longer digit strings are no number this door takes.
    if not is_whole(raw) or len(raw) > 18:
        raise FuncError("value", name, f"{name} {raw!r} is not a whole number")
    return int(raw)


def _amount(raw: str) -> Decimal:
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise FuncError("value", "price", f"price {raw!r} is not an amount") from None


def _id(req: FuncRequest, name: str) -> int | None:
    raw = req.get(name).strip()
    if not raw:
        raise FuncError("empty", name, f"{name} is required")
    return _whole(name, raw)


def _lines(req: FuncRequest) -> list[dict]:
    """The order lines from parallel lists, one value per `pricelist` in each."""
    tariffs = split_list(req.get("pricelist"))
    if not tariffs:
        raise FuncError("empty", "pricelist", "pricelist is required: one tariff per order line")
    count = len(tariffs)

    def column(name: str, default: str | None = None) -> list[str]:
        if not req.get(name).strip() and default is not None:
            return [default] * count
        # Blank entries are kept in place: `service=, 42` names the second line's service only.
        values = [part.strip() for part in req.get(name).split(",")]
        if len(values) != count:
            raise FuncError("value", name, f"{name} needs {count} value(s), one per pricelist")
        return values

    rows = zip(
        tariffs,
        column("period", "1"),
        column("price"),
        column("currency"),
        column("kind", Kind.NEW),
        column("service", ""),
        strict=True,
    )
    return [
        {
            "tariff": _whole("pricelist", tariff),
            "period": _whole("period", period),
            "price": _amount(price),
            "currency": currency,
            "kind": kind,
            "service": _whole("service", service) if service else None,
        }
        for tariff, period, price, currency, kind, service in rows
    ]


def _door_error(exc: ValidationError) -> FuncError:
    """The order's field paths (`lines.3.price`) named as this door's parameters (`price`)."""
    if hasattr(exc, "error_dict"):
        exc = ValidationError(
            {
                PARAM_OF.get(path.split(".")[-1], path.split(".")[-1]): errors
                for path, errors in exc.error_dict.items()
            }
        )
    return from_validation_error(exc, PARAM_OF)


def _order(req: FuncRequest) -> Order:
    client, provider = _id(req, "account"), _id(req, "project")
    lines, at = _lines(req), _moment(req)
    try:
        return services.order_build(
            client=client,
            provider=provider,
            lines=lines,
            codes=req.get("promocode").split(","),
            at=at,
        )
    except ValidationError as exc:
        raise _door_error(exc) from None


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
            # Each promotion's part, the first and those stacked on it: "4 12.00, 5 10.00".
            "applied": ", ".join(f"{a['promotion']} {a['discount']}" for a in line["applied"]),
            "verdicts": "; ".join(f"#{v['promotion']} {v['reason']}" for v in line["verdicts"]),
        }
        for number, line in enumerate(quote_lines, start=1)
    ]


def _quoted(fn):
    try:
        return fn()
    except ValidationError as exc:
        raise _door_error(exc) from None
    except Throttled as exc:
        raise _guessing_limit(exc) from None


def _guessing_limit(exc: Throttled) -> FuncError:
    return FuncError(
        "limit",
        "promocode",
        f"Too many unknown promo codes; try again in {exc.retry_after} seconds",
    )


def _explain(req: FuncRequest) -> bool:
    raw = req.get("explain").strip() or "off"
    if raw not in ("on", "off"):
        raise FuncError("value", "explain", f"explain is on or off, not {raw!r}")
    return raw == "on"


@func("promotion.quote", perm="promotions.view_promotion")
def promotion_quote(req: FuncRequest) -> FuncResult:
    """`explain=on` gives every live promotion's verdict on every line; by default a line's
    verdicts are the winner's, the runner-up's, the near misses' and those of the codes named."""
    order, explain = _order(req), _explain(req)
    quote: Quote = _quoted(
        lambda: services.order_quote(order=order, actor=req.actor, explain=explain)
    )
    data = quote_as_dict(quote)
    rows = _line_rows(data["lines"])
    result = FuncResult.listing(rows, page=1, page_size=len(rows), total=len(rows))
    result.values = {
        "total": data["total"],
        "discount_total": data["discount_total"],
        "promocodes": "; ".join(c["reason"] for c in data["codes"]),
        # What each budgeted promotion has left (a quote reserves nothing).
        "budgets": "; ".join(
            f"#{b['promotion']} {b['period']}: needs {b['needs']}"
            + (f", {b['left']} left" if b["left"] is not None else "")
            + (f", {b['client_left']} left for the client" if b["client_left"] is not None else "")
            for b in data["budgets"]
        ),
        "explained": "on" if data["explained"] else "off",
    }
    return result


@func("promotion.redeem", perm="promotions.add_redemption")
def promotion_redeem(req: FuncRequest) -> FuncResult:
    key = _quoted(lambda: services.idempotency_key_clean(req.get("idempotency_key")))
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
        promocode=", ".join(u.promocode.code for u in redemption_usages(redemption=redemption)),
    )


@func("promotion.release", perm="promotions.change_redemption")
def promotion_release(req: FuncRequest) -> FuncResult:
    redemption = req.object(Redemption.objects.all())
    services.redemption_release(redemption=redemption, actor=req.actor)
    return FuncResult.ok()
