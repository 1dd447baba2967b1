"""Quotes behind the guessing brake, redemptions of an order's codes, and their release."""

import dataclasses
import hashlib
import itertools
import json

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from common.actors import Actor
from common.services import history_record
from common.throttle import throttle_check, throttle_fail
from promotions.engine import Order, Quote, quote_order
from promotions.engine.present import quote_as_dict
from promotions.engine.rules import rules_version
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


def order_quote(*, order: Order, actor: Actor, explain: bool = False) -> Quote:
    """The engine's quote, behind the promo-code guessing brake; `explain` gives every live
    promotion's verdict on every line."""
    _guard_codes(order, actor)
    return quote_order(order=order, explain=explain)


class _RulesMoved(Exception):
    """A rule changed between the quote and the lock: the order is quoted again."""


# Quotes made again when the rules keep moving under a redemption, before it gives up.
REQUOTES = 3


def redemption_redeem(
    *, order: Order, idempotency_key: str, actor: Actor
) -> tuple[Redemption, bool]:
    """Record the order's code usages once per key; returns the redemption and whether it is new.

    Lock-last: the order is quoted first, outside any lock. Then one short transaction takes the
    codes' uses with guarded updates (the update takes the code's row lock, codes in primary-key
    order), re-checks what can change meanwhile (per-client limits, the rules version: if it
    moved, the order is quoted again) and writes the usages. The lock is held for a few
    statements, whatever the size of the catalogue.
    """
    idempotency_key = idempotency_key_clean(idempotency_key)
    _guard_codes(order, actor)
    fingerprint = order_fingerprint(order)
    # A redemption happens now: a caller's back-dated `at` must not revive an expired code.
    order = dataclasses.replace(order, at=timezone.now())
    existing = Redemption.objects.filter(idempotency_key=idempotency_key).first()
    for _ in range(REQUOTES):
        if existing is not None:
            break
        try:
            quote = quote_order(order=order)
            _refuse_unusable(quote)
            with transaction.atomic():
                return _redeem(order, quote, idempotency_key, fingerprint, actor), True
        except _RulesMoved:
            continue
        except (IntegrityError, RedemptionRefused) as exc:
            # A request with the same key may have committed first: then its answer is ours.
            existing = Redemption.objects.filter(idempotency_key=idempotency_key).first()
            if existing is None:
                if isinstance(exc, RedemptionRefused):
                    raise
                raise RedemptionRefused(
                    "A concurrent order took the client's last use of a code."
                ) from exc
    if existing is None:
        raise RedemptionRefused("The promotions kept changing during the redemption; try again.")
    if existing.fingerprint != fingerprint:
        raise RedemptionRefused(
            f"Idempotency key {idempotency_key!r} was used for a different order."
        )
    return existing, False


def _refuse_unusable(quote: Quote) -> None:
    """An order redeems only codes it can use: an invalid code, or a valid one that gives no
    discount, refuses the whole order with the reasons."""
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


def _redeem(order: Order, quote: Quote, key: str, fingerprint: str, actor: Actor) -> Redemption:
    used = quote.used_codes()
    redemption = Redemption(
        idempotency_key=key,
        fingerprint=fingerprint,
        client_id=order.client_id,
        provider_id=order.provider_id,
        quote=quote_as_dict(quote),
    )
    # The quote has just resolved this client of this provider, and the key's uniqueness and the
    # status check are the database's: validating them again would cost queries a redemption.
    redemption.full_clean(
        exclude=["client", "provider"], validate_unique=False, validate_constraints=False
    )
    redemption.save()  # a concurrent twin under the same key fails here, before any lock
    history_record(
        obj=redemption,
        actor=actor,
        desc=f"Order redeemed with {', '.join(sorted(used)) or 'no promo code'}",
    )
    ids = {v.code: v.code_id for v in quote.codes if v.code in used}
    # The locks: one guarded update per code, in primary-key order.
    texts = {code_id: text for text, code_id in ids.items()}
    limits = {code_id: _take_use(code_id=code_id, text=texts[code_id]) for code_id in sorted(texts)}
    slots = _client_slots(order.client_id, list(limits))
    for text, code_id in ids.items():
        limit = limits[code_id]
        if limit is not None and len(slots[code_id]) >= limit:
            raise RedemptionRefused(f"code {text} may be used {limit} time(s) per client")
    if rules_version(order.provider_id) != quote.rules_version:
        raise _RulesMoved
    # The renewed service a code discounted, when the order names one (its first such line).
    renewed = {
        lq.code: lq.line.service_id
        for lq in reversed(quote.lines)
        if lq.code and lq.line.service_id
    }
    PromoCodeUsage.objects.bulk_create(
        PromoCodeUsage(
            promocode_id=code_id,
            client_id=order.client_id,
            redemption=redemption,
            service_id=renewed.get(text),
            client_slot=next(n for n in itertools.count(1) if n not in slots[code_id]),
        )
        for text, code_id in ids.items()
    )
    return redemption


def _take_use(*, code_id: int, text: str) -> int | None:
    """Take one use of the code, or refuse when it is used up; answers the code's per-client
    limit, read under the row lock the update has just taken (one statement for both)."""
    table = connection.ops.quote_name(PromoCode._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET use_count = use_count + 1 "
            "WHERE id = %s AND (uselimit IS NULL OR use_count < uselimit) "
            "RETURNING account_uselimit",
            [code_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise RedemptionRefused(f"code {text} has been used up")
    return row[0]


def _client_slots(client_id: int, code_ids: list[int]) -> dict[int, set[int]]:
    """The client's live uses of each code, by slot: counted after the codes' locks, so every
    use committed before is seen."""
    slots: dict[int, set[int]] = {code_id: set() for code_id in code_ids}
    if code_ids:
        for code_id, slot in PromoCodeUsage.objects.filter(
            client_id=client_id, promocode_id__in=code_ids, status=PromoCodeUsage.Status.ACTIVE
        ).values_list("promocode_id", "client_slot"):
            slots[code_id].add(slot)
    return slots


def _why_unused(quote: Quote, promotion_id: int | None) -> list[str]:
    """A valid code whose promotion does not apply at all is not the client's to use."""
    reasons = {
        v.reason
        for lq in quote.lines
        for v in lq.verdicts
        if v.promotion_id == promotion_id and not v.reason.startswith("not chosen")
    }
    return sorted(reasons)


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
