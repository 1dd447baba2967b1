"""Writes for promotions: every door (admin, func-style API, management commands) calls these."""

import dataclasses
import hashlib
import itertools
import json
import random
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from common.actors import Actor
from common.groups import group_resolve, groups_drop_empty
from common.services import history_record, model_create, model_delete_many, model_update
from common.throttle import throttle_check, throttle_fail
from promotions import codegen
from promotions.engine import Order, Quote, normalize_code, quote_order
from promotions.engine.present import quote_as_dict
from promotions.models import (
    Condition,
    ConditionGroup,
    Discount,
    PromoCode,
    PromoCodeUsage,
    Promotion,
    Redemption,
)

# Candidates drawn, checked and inserted per round of code generation.
GENERATION_BATCH = 20_000
# PostgreSQL's "deadlock detected": two generators met on the same codes; one batch retries.
DEADLOCK_SQLSTATE = "40P01"
# Below this many possible codes, a nearly full template is filled by enumerating what is left.
ENUMERATION_LIMIT = 200_000
# The most codes one call may generate; larger runs go through the management command.
MAX_CODES_PER_CALL = 1_000_000


# Promotions -------------------------------------------------------------------------------------


@transaction.atomic
def promotion_create(*, actor: Actor, **fields: Any) -> Promotion:
    return model_create(model=Promotion, data=fields, actor=actor)


@transaction.atomic
def promotion_update(*, promotion: Promotion, actor: Actor, **fields: Any) -> Promotion:
    promotion, _ = model_update(instance=promotion, data=fields, actor=actor)
    return promotion


@transaction.atomic
def promotion_archive(*, promotion: Promotion, actor: Actor) -> Promotion:
    """Move a promotion out of the active list; its codes stop applying at once."""
    if not promotion.archived:
        promotion.archived = True
        promotion.save(update_fields=["archived"])
        history_record(obj=promotion, actor=actor, desc="Promotion has been archived")
    return promotion


@transaction.atomic
def promotion_restore(*, promotion: Promotion, actor: Actor) -> Promotion:
    if promotion.archived:
        promotion.archived = False
        promotion.save(update_fields=["archived"])
        history_record(obj=promotion, actor=actor, desc="Promotion has been restored from archive")
    return promotion


@transaction.atomic
def promotion_delete_many(*, promotions: Iterable[Promotion], actor: Actor) -> int:
    """Delete all or none: a promotion whose codes were used keeps its history, so archive it."""
    promotions = list(promotions)
    used = (
        PromoCode.objects.filter(promotion__in=promotions, usages__isnull=False)
        .values_list("promotion__name", flat=True)
        .distinct()
    )
    if used:
        raise ValidationError(
            {"elid": f"Promo codes of {', '.join(sorted(used))} have been used; archive instead."}
        )
    return model_delete_many(objects=promotions, actor=actor)


# Discounts --------------------------------------------------------------------------------------


@transaction.atomic
def discount_create(*, promotion: Promotion, actor: Actor, **fields: Any) -> Discount:
    _check_discount_tariffs(promotion, fields)
    return model_create(
        model=Discount, data={"promotion": promotion, **fields}, actor=actor, root=promotion
    )


@transaction.atomic
def discount_update(*, discount: Discount, actor: Actor, **fields: Any) -> Discount:
    _check_discount_tariffs(discount.promotion, fields)
    discount, _ = model_update(instance=discount, data=fields, actor=actor, root=discount.promotion)
    return discount


def _check_discount_tariffs(promotion: Promotion, fields: dict[str, Any]) -> None:
    tariffs = fields.get("pricelist") or []
    foreign = [t.name for t in tariffs if t.provider_id != promotion.provider_id]
    if foreign:
        raise ValidationError({"pricelist": f"Not tariffs of {promotion.provider}: {foreign}"})
    if fields.get("type") == Discount.Type.PRICELIST and "pricelist" in fields and not tariffs:
        raise ValidationError({"pricelist": "Choose the tariffs the discount covers."})


@transaction.atomic
def discount_delete_many(*, discounts: Iterable[Discount], actor: Actor) -> int:
    return model_delete_many(objects=discounts, actor=actor, root_of=lambda d: d.promotion)


# Conditions -------------------------------------------------------------------------------------


def _resolve_group(promotion: Promotion, group: str | None, groupname: str | None) -> Any:
    return group_resolve(
        model=ConditionGroup, owner={"promotion": promotion}, group=group, groupname=groupname
    )


@transaction.atomic
def condition_create(
    *,
    promotion: Promotion,
    actor: Actor,
    group: str | None = None,
    groupname: str | None = None,
    **fields: Any,
) -> Condition:
    resolved = _resolve_group(promotion, group, groupname)
    return model_create(
        model=Condition,
        data={"promotion": promotion, "group": resolved, **fields},
        actor=actor,
        root=promotion,
    )


@transaction.atomic
def condition_update(
    *,
    condition: Condition,
    actor: Actor,
    group: str | None = None,
    groupname: str | None = None,
    **fields: Any,
) -> Condition:
    if group is not None:
        fields["group"] = _resolve_group(condition.promotion, group, groupname)
    old_group = condition.group
    condition, _ = model_update(
        instance=condition, data=fields, actor=actor, root=condition.promotion
    )
    _drop_if_empty([old_group])
    return condition


@transaction.atomic
def condition_delete_many(*, conditions: Iterable[Condition], actor: Actor) -> int:
    conditions = list(conditions)
    groups = [c.group for c in conditions]
    deleted = model_delete_many(objects=conditions, actor=actor, root_of=lambda c: c.promotion)
    _drop_if_empty(groups)
    return deleted


def _drop_if_empty(groups: Iterable[ConditionGroup | None]) -> None:
    groups_drop_empty(ConditionGroup, groups)


# Promo codes ------------------------------------------------------------------------------------


@transaction.atomic
def promocode_create(
    *,
    promotion: Promotion,
    actor: Actor,
    code: str,
    count: int = 1,
    onlydigit: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    **settings: Any,
) -> PromoCode | int:
    """A fixed code (no `?`) or `count` random codes from a template, all sharing `settings`.

    Returns the created code for a fixed one, else the number generated.
    """
    template = (code or "").strip().upper()
    if not template:
        raise ValidationError({"code": "Enter a promo code or a template."})
    if count < 1:
        raise ValidationError({"count": "Generate at least one code."})
    if codegen.PLACEHOLDER not in template:
        if count != 1:
            raise ValidationError({"count": 'A fixed code is one code; add "?" to generate more.'})
        return model_create(
            model=PromoCode,
            data={"promotion": promotion, "code": template, "onlydigit": onlydigit, **settings},
            actor=actor,
            root=promotion,
        )
    return promocodes_generate(
        promotion=promotion,
        template=template,
        count=count,
        digits_only=onlydigit,
        actor=actor,
        progress=progress,
        **settings,
    )


@transaction.atomic
def promocodes_generate(
    *,
    promotion: Promotion,
    template: str,
    count: int,
    digits_only: bool,
    actor: Actor,
    progress: Callable[[int], None] = lambda n: None,
    **settings: Any,
) -> int:
    """Create `count` new unique codes from `template`; refuse when the template's space is too small.

    Memory depends on the batch size, not on `count`.
    """
    template = template.strip().upper()
    length_ok = len(template) <= PromoCode._meta.get_field("code").max_length
    if not length_ok:
        raise ValidationError({"code": "The template is longer than a promo code may be."})
    # Validate the shared settings once on a sample code, so a bad value fails before any insert.
    sample = PromoCode(promotion=promotion, code=template, onlydigit=digits_only, **settings)
    sample.full_clean(exclude=["code"])

    space = codegen.template_space(template, digits_only=digits_only)
    taken = PromoCode.objects.filter(
        code__regex=codegen.template_regex(template, digits_only=digits_only)
    ).count()
    free = space - taken
    if count > free:
        raise ValidationError(
            {
                "count": ValidationError(
                    f"The template {template} can make only {free} more codes; "
                    "make it longer or ask for fewer.",
                    code="limit",
                )
            }
        )

    insert = _code_inserter(sample)
    if space <= ENUMERATION_LIMIT and count * 2 > free:
        created = _generate_by_enumeration(template, digits_only, count, insert, progress)
    else:
        created = _generate_by_drawing(template, digits_only, count, insert, progress)
    history_record(
        obj=promotion,
        actor=actor,
        desc=f'{created} promo codes have been generated from template "{template}"',
    )
    return created


def _code_inserter(sample: PromoCode) -> Callable[[list[str]], int]:
    """A function inserting codes that share `sample`'s settings; it returns how many were new.

    One statement per batch with the codes as a single array parameter, `ON CONFLICT DO NOTHING`
    and `RETURNING`, so the count is exact even when a concurrent generator holds some codes.
    """
    fields = [f for f in PromoCode._meta.concrete_fields if f.name not in ("id", "code")]
    sample.created_at = timezone.now()
    constants = [f.get_db_prep_save(f.pre_save(sample, add=True), connection) for f in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    codes_source = (
        "unnest(%s::text[]) AS c(code)"
        if connection.vendor == "postgresql"
        else "(SELECT value AS code FROM json_each(%s)) AS c"
    )
    sql = (
        f"INSERT INTO {quote(PromoCode._meta.db_table)} ({quote('code')}, {columns}) "
        f"SELECT c.code, {placeholders} FROM {codes_source} "
        "WHERE true ON CONFLICT (code) DO NOTHING RETURNING 1"
    )

    def insert(codes: list[str]) -> int:
        # Sorted, so concurrent generators take the rows' index locks in the same order.
        codes = sorted(codes)
        param = codes if connection.vendor == "postgresql" else json.dumps(codes)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [*constants, param])
                return len(cursor.fetchall())
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == DEADLOCK_SQLSTATE:
                return 0  # this batch lost a deadlock to another generator; the caller draws again
            raise

    return insert


def _generate_by_drawing(template, digits_only, count, insert, progress) -> int:
    alphabet = codegen.alphabet_for(digits_only=digits_only)
    length = template.count(codegen.PLACEHOLDER)
    created = 0
    fruitless_rounds = 0
    while created < count:
        want = min(GENERATION_BATCH, count - created)
        # No lookup of taken codes first: the insert's ON CONFLICT DO NOTHING skips them and
        # returns how many were new, so a collision only leaves a few codes for the next round.
        candidates = list(
            set(codegen.fill(template, codegen.random_fillings(alphabet, length, want)))
        )
        inserted = insert(candidates)
        created += inserted
        fruitless_rounds = 0 if inserted else fruitless_rounds + 1
        if fruitless_rounds >= 20:
            raise ValidationError(
                {
                    "count": ValidationError(
                        f"Could not find free codes for template {template}; make it longer.",
                        code="limit",
                    )
                }
            )
        progress(created)
    return created


def _generate_by_enumeration(template, digits_only, count, insert, progress) -> int:
    alphabet = codegen.alphabet_for(digits_only=digits_only)
    length = template.count(codegen.PLACEHOLDER)
    taken = set(
        PromoCode.objects.filter(
            code__regex=codegen.template_regex(template, digits_only=digits_only)
        ).values_list("code", flat=True)
    )
    every = codegen.fill(template, ("".join(p) for p in itertools.product(alphabet, repeat=length)))
    chosen = random.sample([c for c in every if c not in taken], count)
    created = 0
    for start in range(0, len(chosen), GENERATION_BATCH):
        created += insert(chosen[start : start + GENERATION_BATCH])
        progress(created)
    if created != count:
        raise ValidationError(
            {
                "count": ValidationError(
                    "Another generator took some of these codes at the same time; try again.",
                    code="limit",
                )
            }
        )
    return created


@transaction.atomic
def promocode_update(*, promocode: PromoCode, actor: Actor, **fields: Any) -> PromoCode:
    if "code" in fields and fields["code"] is not None:
        fields["code"] = fields["code"].strip().upper()
    promocode, _ = model_update(
        instance=promocode, data=fields, actor=actor, root=promocode.promotion
    )
    return promocode


@transaction.atomic
def promocode_delete_many(*, promocodes: Iterable[PromoCode], actor: Actor) -> int:
    promocodes = list(promocodes)
    used = [c.code for c in promocodes if c.usages.exists()]
    if used:
        raise ValidationError({"elid": f"These codes have been used and are kept: {used}"})
    return model_delete_many(objects=promocodes, actor=actor, root_of=lambda c: c.promotion)


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
    codes = sorted({normalize_code(c) for c in order.codes})
    payload = json.dumps([order.client_id, order.provider_id, codes, lines])
    return hashlib.sha256(payload.encode()).hexdigest()


def _guessing_keys(order: Order, actor: Actor) -> list[str]:
    return [f"client:{order.client_id}", f"ip:{actor.ip}" if actor.ip else ""]


# An order names a few codes; more would turn one request into a batch of guesses.
MAX_CODES_PER_ORDER = 10


def _guard_codes(order: Order, actor: Actor) -> None:
    """Refuse an order with codes from a client or address that has guessed too many unknown
    codes lately; this order's unknown codes are counted first, so no single order can carry
    more guesses than are left."""
    if not order.codes:
        return
    if len(set(order.codes)) > MAX_CODES_PER_ORDER:
        raise ValidationError(
            {"codes": f"An order carries at most {MAX_CODES_PER_ORDER} promo codes."}
        )
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
    wanted = {normalize_code(c) for c in order.codes}
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


# Codes in and out as CSV ----------------------------------------------------------------------

CSV_COLUMNS = [
    "code",
    "uselimit",
    "account_uselimit",
    "active_time_type",
    "fromdate",
    "todate",
    "expiretype",
    "periodtype",
    "periodlength",
]
MAX_IMPORT_ROWS = 100_000


def _csv_row_code(promotion: Promotion, row: dict[str, str]) -> PromoCode:
    values = {k: (row.get(k) or "").strip() for k in CSV_COLUMNS}
    code = PromoCode(
        promotion=promotion,
        code=values["code"].upper(),
        active_time_type=values["active_time_type"] or PromoCode.ActiveTimeType.ALWAYS,
        expiretype=values["expiretype"] or PromoCode.ExpireType.UNLIMITED,
        periodtype=values["periodtype"],
    )
    for name in ("uselimit", "account_uselimit", "fromdate", "todate", "periodlength"):
        field = PromoCode._meta.get_field(name)
        try:
            setattr(code, name, field.to_python(values[name]) if values[name] else None)
        except ValidationError as exc:
            raise ValidationError({name: exc.messages}) from None
    return code


@transaction.atomic
def promocodes_import(*, promotion: Promotion, rows: Iterable[dict[str, str]], actor: Actor) -> int:
    """Add codes read from CSV rows, all or none: every bad row is reported by its line number."""
    codes: list[PromoCode] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        if line - 1 > MAX_IMPORT_ROWS:
            raise ValidationError(f"At most {MAX_IMPORT_ROWS} codes per file.", code="limit")
        try:
            code = _csv_row_code(promotion, row)
            code.code = normalize_code(code.code)
            if codegen.PLACEHOLDER in code.code:
                raise ValidationError({"code": 'A "?" template cannot be imported.'})
            # Uniqueness is checked for the whole file at once below, and the database holds the
            # constraints: per row, only the fields and the model's own rules.
            code.full_clean(
                exclude=["promotion"], validate_unique=False, validate_constraints=False
            )
        except ValidationError as exc:
            details = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
            errors += [
                f"line {line}: {k + ': ' if k else ''}{'; '.join(v)}" for k, v in details.items()
            ]
            continue
        if code.code in seen:
            errors.append(f"line {line}: code: {code.code} repeats line {seen[code.code]}")
            continue
        seen[code.code] = line
        codes.append(code)
    wanted = list(seen)
    taken = {
        code
        for i in range(0, len(wanted), 5000)
        for code in PromoCode.objects.filter(code__in=wanted[i : i + 5000]).values_list(
            "code", flat=True
        )
    }
    errors += [f"line {seen[c]}: code: {c} exists already" for c in sorted(taken, key=seen.get)]
    if not errors and not codes:
        errors.append("The file holds no codes.")
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            PromoCode.objects.bulk_create(codes, batch_size=5000)
    except IntegrityError:
        raise ValidationError(
            "Some of the codes were taken meanwhile; nothing was imported."
        ) from None
    history_record(obj=promotion, actor=actor, desc=f"{len(codes)} promo codes have been imported")
    return len(codes)
