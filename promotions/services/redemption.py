"""Quotes behind the guessing brake, redemptions of an order's codes, and their release."""

import dataclasses
import hashlib
import itertools
import json

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from common.actors import Actor
from common.services import history_record
from common.throttle import throttle_check, throttle_fail
from promotions.engine import Order, Quote, quote_order
from promotions.engine.present import quote_as_dict
from promotions.models import PromoCode, PromoCodeUsage, Redemption
from promotions.services.orders import idempotency_key_clean

# Redemptions ------------------------------------------------------------------------------------


class RedemptionRefused(Exception):
    """The order cannot be redeemed as asked (a code used up, expired, not the client's...)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def order_fingerprint(order: Order) -> str:
    """What makes two requests the same order; `at` is left out so a retry may omit it."""
    lines = [
        [ln.tariff_id, ln.period, str(ln.price), ln.currency, ln.kind, ln.service_id]
        for ln in order.lines
    ]
    codes = sorted(order.codes)
    payload = json.dumps([order.client_id, order.provider_id, codes, lines])
    return hashlib.sha256(payload.encode()).hexdigest()


def _guessing_keys(order: Order, actor: Actor) -> list[str]:
    return [f"client:{order.client_id}", f"ip:{actor.ip}" if actor.ip else ""]


def _guard_codes(order: Order, actor: Actor) -> None:
    """Refuse an order with codes from a client or address that has guessed too many unknown
    codes lately; this order's unknown codes are counted first, so no single order can carry
    more guesses than are left. The order's codes are normalised: a code typed in lower case
    is the stored code, not a guess."""
    if not order.codes:
        return
    keys = _guessing_keys(order, actor)
    throttle_check(scope="promocode", keys=keys)
    known = set(PromoCode.objects.filter(code__in=order.codes).values_list("code", flat=True))
    unknown = len(set(order.codes) - known)
    if unknown:
        # Outside any transaction of the caller's work, so a refused order still counts.
        throttle_fail(scope="promocode", keys=keys, count=unknown)
        throttle_check(scope="promocode", keys=keys, over=True)


def order_quote(*, order: Order, actor: Actor) -> Quote:
    """The engine's quote, behind the promo-code guessing brake."""
    _guard_codes(order, actor)
    return quote_order(order=order)


def redemption_redeem(
    *, order: Order, idempotency_key: str, actor: Actor
) -> tuple[Redemption, bool]:
    """Record the order's code usages once per key; returns the redemption and whether it is new."""
    idempotency_key = idempotency_key_clean(idempotency_key)
    _guard_codes(order, actor)
    fingerprint = order_fingerprint(order)
    # A redemption happens now: a caller's back-dated `at` must not revive an expired code.
    order = dataclasses.replace(order, at=timezone.now())
    try:
        with transaction.atomic():
            return _redeem(order, idempotency_key, fingerprint, actor), True
    except (IntegrityError, RedemptionRefused) as exc:
        # A request with the same key may have committed first: then its answer is ours.
        existing = Redemption.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            if isinstance(exc, RedemptionRefused):
                raise
            raise RedemptionRefused(
                "A concurrent order took the client's last use of a code."
            ) from exc
    if existing.fingerprint != fingerprint:
        raise RedemptionRefused(
            f"Idempotency key {idempotency_key!r} was used for a different order."
        )
    return existing, False


def _redeem(order: Order, key: str, fingerprint: str, actor: Actor) -> Redemption:
    existing = Redemption.objects.filter(idempotency_key=key).first()
    if existing is not None:
        raise IntegrityError("idempotency key taken")
    wanted = set(order.codes)
    # Lock the codes in primary-key order before reading their limits, so the quote below
    # sees every use committed before us and concurrent redeemers queue in one order.
    locked = {
        c.code: c
        for c in PromoCode.objects.select_for_update().filter(code__in=wanted).order_by("pk")
    }
    quote = quote_order(order=order)
    refused = [c.reason for c in quote.codes if not c.valid]
    used = set(quote.used_codes())
    for verdict in quote.codes:
        if verdict.valid and verdict.code not in used:
            applied_with = next(
                (lq.code for lq in quote.lines if lq.promotion_id == verdict.promotion_id), None
            )
            if applied_with:
                refused.append(
                    f"code {verdict.code} is not needed: promotion {verdict.promotion_id} "
                    f"applies with code {applied_with}"
                )
            else:
                refused.extend(_why_unused(quote, verdict.promotion_id))
    if refused:
        raise RedemptionRefused("; ".join(refused))

    redemption = Redemption(
        idempotency_key=key,
        fingerprint=fingerprint,
        client_id=order.client_id,
        provider_id=order.provider_id,
        quote=quote_as_dict(quote),
    )
    # The quote has just resolved this client of this provider, and the key's uniqueness and the
    # status check are the database's: validating them again would cost four queries a redemption.
    redemption.full_clean(
        exclude=["client", "provider"], validate_unique=False, validate_constraints=False
    )
    redemption.save()
    for code in sorted((locked[c] for c in used), key=lambda c: c.pk):
        _take_use(code=code, client_id=order.client_id, redemption=redemption)
    history_record(
        obj=redemption,
        actor=actor,
        desc=f"Order redeemed with {', '.join(sorted(used)) or 'no promo code'}",
    )
    return redemption


def _why_unused(quote: Quote, promotion_id: int | None) -> list[str]:
    """A valid code whose promotion does not apply at all is not the client's to use."""
    reasons = {
        v.reason
        for lq in quote.lines
        for v in lq.verdicts
        if v.promotion_id == promotion_id and not v.reason.startswith("not chosen")
    }
    return sorted(reasons)


def _take_use(*, code: PromoCode, client_id: int, redemption: Redemption) -> PromoCodeUsage:
    taken = PromoCode.objects.filter(
        Q(uselimit__isnull=True) | Q(use_count__lt=F("uselimit")), pk=code.pk
    ).update(use_count=F("use_count") + 1)
    if not taken:
        raise RedemptionRefused(f"code {code.code} has been used up")
    live_slots = set(
        PromoCodeUsage.objects.filter(
            promocode=code, client_id=client_id, status=PromoCodeUsage.Status.ACTIVE
        ).values_list("client_slot", flat=True)
    )
    if code.account_uselimit is not None and len(live_slots) >= code.account_uselimit:
        raise RedemptionRefused(
            f"code {code.code} may be used {code.account_uselimit} time(s) per client"
        )
    slot = next(n for n in itertools.count(1) if n not in live_slots)
    return PromoCodeUsage.objects.create(
        promocode=code, client_id=client_id, redemption=redemption, client_slot=slot
    )


@transaction.atomic
def redemption_release(*, redemption: Redemption, actor: Actor) -> Redemption:
    """Undo a redemption (order cancelled or refunded): its uses return to the codes. Idempotent."""
    redemption = Redemption.objects.select_for_update().get(pk=redemption.pk)
    if redemption.status == Redemption.Status.RELEASED:
        return redemption
    usages = redemption.usages.filter(status=PromoCodeUsage.Status.ACTIVE).order_by("promocode_id")
    for usage in usages:
        PromoCode.objects.filter(pk=usage.promocode_id, use_count__gt=0).update(
            use_count=F("use_count") - 1
        )
    usages.update(status=PromoCodeUsage.Status.RELEASED)
    redemption.status = Redemption.Status.RELEASED
    redemption.released_at = timezone.now()
    redemption.full_clean(validate_unique=False)
    redemption.save(update_fields=["status", "released_at"])
    history_record(obj=redemption, actor=actor, desc="Redemption released; its code uses are free")
    return redemption
