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
from promotions.models import PromoCode, PromoCodeUsage, Redemption, RulesVersion
from promotions.services.orders import idempotency_key_clean

# Redemptions ------------------------------------------------------------------------------------


class RedemptionRefused(Exception):
    """The order cannot be redeemed as asked (a code used up, expired, not the client's...)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def redemption_caller(actor: Actor) -> str:
    """Whose idempotency keys a redemption's key is among: the signed-in user's, or the system's."""
    user = actor.user
    return f"user:{user.pk}" if user is not None and user.is_authenticated else "system"


def order_fingerprint(order: Order) -> str:
    """What makes two requests the same order; `at` is left out so a retry may omit it."""
    lines = [
        [ln.tariff_id, ln.period, str(ln.price), ln.currency, ln.kind, ln.service_id]
        for ln in order.lines
    ]
    codes = sorted(order.codes)
    payload = json.dumps([order.client_id, order.provider_id, codes, lines])
    return hashlib.sha256(payload.encode()).hexdigest()


def _guessing_brakes(order: Order, actor: Actor) -> list[tuple[str, list[str]]]:
    """The brakes an order's unknown codes count against, as (scope, keys).

    Every client has its budget. An authenticated caller is an integration naming codes for all
    its clients, often from one address: the client's budget protects the codes, and the caller
    has a larger budget of its own (THROTTLE_PROMOCODE_CALLER_FAILURES), so one client's guesses do not
    brake every other client of that checkout. A caller without an account is also counted by
    its address.
    """
    client = f"client:{order.client_id}"
    user = actor.user
    if user is not None and user.is_authenticated:
        return [("promocode", [client]), ("promocode_caller", [f"caller:{user.pk}"])]
    return [("promocode", [client, f"ip:{actor.ip}" if actor.ip else ""])]


def _guarded_quote(order: Order, actor: Actor, *, explain: bool = False) -> Quote:
    """The quote, behind the promo-code guessing brake: a client (or caller, or address) that has
    named too many codes that do not exist lately is refused (Throttled). This order's unknown
    codes are counted before it is answered, so no single order carries more guesses than are
    left; the codes are normalised first, so a code typed in lower case is the stored code, not
    a guess."""
    brakes = _guessing_brakes(order, actor) if order.codes else []
    for scope, keys in brakes:
        throttle_check(scope=scope, keys=keys)
    quote = quote_order(order=order, explain=explain)
    unknown = sum(1 for verdict in quote.codes if verdict.code_id is None)
    if unknown:
        # Outside any transaction of the caller's work, so a refused order still counts.
        for scope, keys in brakes:
            throttle_fail(scope=scope, keys=keys, count=unknown)
        for scope, keys in brakes:
            throttle_check(scope=scope, keys=keys, over=True)
    return quote


def order_quote(*, order: Order, actor: Actor, explain: bool = False) -> Quote:
    """The engine's quote, behind the promo-code guessing brake; `explain` gives every live
    promotion's verdict on every line."""
    return _guarded_quote(order, actor, explain=explain)


class _RulesMoved(Exception):
    """A rule changed between the quote and the lock: the order is quoted again."""


# Quotes made again when the rules keep moving under a redemption, before it gives up.
REQUOTES = 3


def redemption_redeem(
    *, order: Order, idempotency_key: str, actor: Actor
) -> tuple[Redemption, bool]:
    """Record the order's code usages once per key; returns the redemption and whether it is new.

    Lock-last: the order is quoted first, outside any lock. Then one short transaction writes
    the redemption, re-checks what can change meanwhile (the rules version: if it moved, the
    order is quoted again; the client's live uses, for per-client limits), writes the usages,
    and takes the codes' uses last with guarded updates in primary-key order (each update takes
    its code's row lock and returns the code's settings under it). A code's lock is held for
    its update and the commit, whatever the size of the catalogue.
    """
    idempotency_key = idempotency_key_clean(idempotency_key)
    fingerprint = order_fingerprint(order)
    # A redemption happens now: a caller's back-dated `at` must not revive an expired code.
    order = dataclasses.replace(order, at=timezone.now())
    # A key is the caller's own, per provider: another caller's or provider's equal key is
    # another order.
    keyed = Redemption.objects.filter(
        provider_id=order.provider_id,
        caller=redemption_caller(actor),
        idempotency_key=idempotency_key,
    )
    existing = keyed.first()
    gave_up = "The promotions kept changing during the redemption; try again."
    for attempt in range(REQUOTES):
        if existing is not None:
            break
        try:
            quote = _guarded_quote(order, actor) if attempt == 0 else quote_order(order=order)
            _refuse_unusable(quote)
            with transaction.atomic():
                return _redeem(order, quote, idempotency_key, fingerprint, actor), True
        except _RulesMoved:  # a rule or a code changed since the quote: quote again
            gave_up = "The promotions kept changing during the redemption; try again."
        except (IntegrityError, RedemptionRefused) as exc:
            # A request with the same key may have committed first: then its answer is ours.
            existing = keyed.first()
            if existing is None and isinstance(exc, RedemptionRefused):
                raise
            # Otherwise the client's own concurrent order took the slot counted: count again.
            gave_up = "The client's other orders kept taking the same codes; try again."
    if existing is None:
        raise RedemptionRefused(gave_up)
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
    """The redemption's writes, the codes' row locks last: everything else is written first, so
    a code's lock is held for its guarded update and the commit, whatever else the order is."""
    used = quote.used_codes()
    redemption = Redemption(
        idempotency_key=key,
        caller=redemption_caller(actor),
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
    codes = {v.code_id: v for v in quote.codes if v.code in used}
    version, slots = _version_and_slots(order.provider_id, order.client_id, list(codes))
    if version != quote.rules_version:
        raise _RulesMoved
    for code_id, verdict in codes.items():
        limit = verdict.row.account_uselimit
        if limit is not None and len(slots[code_id]) >= limit:
            raise RedemptionRefused(f"code {verdict.code} may be used {limit} time(s) per client")
    # The renewed service a code discounted, when the order names one (its first such line).
    renewed = {
        lq.code: lq.line.service_id
        for lq in reversed(quote.lines)
        if lq.code and lq.line.service_id
    }
    # A client's live uses of a code hold distinct slots (a unique index): two of the client's
    # orders counting the same uses collide here, and the later one counts again.
    PromoCodeUsage.objects.bulk_create(
        PromoCodeUsage(
            promocode_id=code_id,
            client_id=order.client_id,
            redemption=redemption,
            service_id=renewed.get(verdict.code),
            client_slot=next(n for n in itertools.count(1) if n not in slots[code_id]),
        )
        for code_id, verdict in sorted(codes.items())
    )
    # The locks, last: one guarded update per code, in primary-key order.
    for code_id, verdict in sorted(codes.items()):
        if _take_use(code_id=code_id, text=verdict.code) != _settings(verdict.row):
            raise _RulesMoved  # the code was changed since the quote read it
    return redemption


# A code's settings as the quote read them; the guarded update returns them as they are now.
SETTINGS = ("promotion_id", *PromoCode.SETTINGS)


def _settings(row) -> tuple:
    return tuple(getattr(row, name) for name in SETTINGS)


def _take_use(*, code_id: int, text: str) -> tuple:
    """Take one use of the code, or refuse when it is used up. The update takes the code's row
    lock; it answers the code's settings read under that lock (one statement for both)."""
    fields = [PromoCode._meta.get_field(name) for name in SETTINGS]
    table = connection.ops.quote_name(PromoCode._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET use_count = use_count + 1 "
            f"WHERE id = %s AND (uselimit IS NULL OR use_count < uselimit) RETURNING {columns}",
            [code_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise RedemptionRefused(f"code {text} has been used up")
    converters = connection.ops.get_db_converters
    values = []
    for field, value in zip(fields, row, strict=True):
        for convert in converters(field.get_col(PromoCode._meta.db_table)):
            value = convert(value, field, connection)
        values.append(value)
    return tuple(values)


def _version_and_slots(
    provider_id: int, client_id: int, code_ids: list[int]
) -> tuple[int, dict[int, set[int]]]:
    """The provider's rules version and the client's live uses of each code (by slot), in one
    statement."""
    slots: dict[int, set[int]] = {code_id: set() for code_id in code_ids}
    q = connection.ops.quote_name
    usages = q(PromoCodeUsage._meta.db_table)
    sql = (
        f"SELECT v.version, u.promocode_id, u.client_slot "
        f"FROM (SELECT COALESCE(MAX(version), 0) AS version FROM {q(RulesVersion._meta.db_table)} "
        f"WHERE provider_id = %s) AS v LEFT JOIN {usages} AS u ON u.client_id = %s "
        f"AND u.status = %s AND u.promocode_id IN ({', '.join(['%s'] * len(code_ids)) or 'NULL'})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [provider_id, client_id, PromoCodeUsage.Status.ACTIVE, *code_ids])
        rows = cursor.fetchall()
    for _, code_id, slot in rows:
        if code_id is not None:
            slots[code_id].add(slot)
    return rows[0][0], slots


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
