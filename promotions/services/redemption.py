"""Quotes behind the guessing brake, redemptions of an order's codes, and their release."""

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
from decimal import ROUND_DOWN, Decimal

from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from common.actors import Actor
from common.models import History
from common.money import money_round
from common.rawsql import (
    Columns,
    database,
    deferred_instance,
    insert,
    insert_select_params,
    insert_select_sql,
    inserted,
)
from common.services import history_line, history_record
from common.throttle import Throttled, brakes_check, brakes_refuse, brakes_spent, throttle_fail
from promotions.engine import Order, Quote, order_context, quote_order
from promotions.engine.present import quote_as_dict
from promotions.engine.types import BudgetView, CodeVerdict
from promotions.models import (
    BudgetCharge,
    BudgetSpend,
    ClientBudgetSpend,
    PromoCode,
    PromoCodeUsage,
    Promotion,
    Redemption,
    RulesVersion,
)
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
    scoped = [(scope, key) for scope, keys in brakes for key in keys]
    # The brakes are read with the order's context, in its statement; a refusal answers before
    # anything of the order is.
    spent = brakes_spent(keys=scoped)
    context = order_context(order, read_with=[(check.sql, check.params) for check in spent])
    brakes_refuse(spent, context.read_with)
    quote = quote_order(order=order, explain=explain, context=context)
    unknown = sum(1 for verdict in quote.codes if verdict.code_id is None)
    if unknown:
        # Outside any transaction of the caller's work, so a refused order still counts.
        for scope, keys in brakes:
            throttle_fail(scope=scope, keys=keys, count=unknown)
        brakes_check(keys=scoped, over=True)
    return quote


def order_quote(*, order: Order, actor: Actor, explain: bool = False) -> Quote:
    """The engine's quote, behind the promo-code guessing brake; `explain` gives every live
    promotion's verdict on every line."""
    return _guarded_quote(order, actor, explain=explain)


class _RulesMoved(Exception):
    """A rule changed between the quote and the lock: the order is quoted again."""


class _BudgetShort(Exception):
    """A promotion's budget could not cover what the order needs of it, under its lock."""

    def __init__(self, promotion_id: int, reason: str):
        super().__init__(reason)
        self.promotion_id, self.reason = promotion_id, reason


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

    On PostgreSQL the common order is written by one statement instead (`_redeem_in_one_statement`).

    Budgets: the discount each budgeted promotion gives the order is reserved last, in the same
    transaction, by a guarded update of the period's budget row (`spent + x <= budget`; the same
    statement makes the row for a period's first redemption), and the client's row likewise, in
    promotion order after the codes. A budget found short leaves the
    promotion out: the order is quoted again without it (no partial discounts), and an order
    that named its code is refused with the budget's reason.
    """
    idempotency_key = idempotency_key_clean(idempotency_key)
    fingerprint = order_fingerprint(order)
    # A redemption happens now: a caller's back-dated `at` must not revive an expired code.
    order = dataclasses.replace(order, at=timezone.now())
    # A key is the caller's own, per provider: another caller's or provider's equal key is
    # another order.

    def committed() -> Redemption | None:
        return Redemption.objects.filter(
            provider_id=order.provider_id,
            caller=redemption_caller(actor),
            idempotency_key=idempotency_key,
        ).first()

    # A new key is the common case: it is not looked up first. The redemption's insert is the
    # transaction's first write, so a retry of a committed key fails there on the key's unique
    # index, before any lock; a retry refused earlier (its codes now used up by itself, a brake,
    # a client gone) looks its key up too, and answers what was committed.
    existing = None
    gave_up = "The promotions kept changing during the redemption; try again."
    short: dict[int, str] = {}  # budgets found short under their lock: left out of the quote
    attempt = 0
    while attempt < REQUOTES:
        try:
            if attempt == 0 and not short:
                quote = _guarded_quote(order, actor)
            else:
                quote = quote_order(order=order, budget_refusals=short)
            _refuse_unusable(quote)
            return _write(order, quote, idempotency_key, fingerprint, actor), True
        except _BudgetShort as exc:  # not an attempt: each one leaves a promotion out
            short[exc.promotion_id] = exc.reason
            continue
        except _RulesMoved:  # a rule or a code changed since the quote: quote again
            gave_up = "The promotions kept changing during the redemption; try again."
        except (
            IntegrityError,
            OperationalError,
            RedemptionRefused,
            ValidationError,
            Throttled,
        ) as exc:
            if isinstance(exc, OperationalError) and not _deadlocked(exc):
                raise
            # A request with the same key may have committed first: then its answer is ours.
            existing = committed()
            if existing is not None:
                break
            if not isinstance(exc, IntegrityError | OperationalError):
                raise
            # Otherwise the client's own concurrent order took the slot counted (or deadlocked
            # with this one): count again.
            gave_up = "The client's other orders kept taking the same codes; try again."
        attempt += 1
    if existing is None:
        existing = committed()  # a retry whose requotes kept finding the rules moved
    if existing is None:
        raise RedemptionRefused(gave_up)
    if existing.fingerprint != fingerprint:
        raise RedemptionRefused(
            f"Idempotency key {idempotency_key!r} was used for a different order."
        )
    return existing, False


# PostgreSQL's "deadlock detected". Both writers take the key's and slot's index entries, then
# the code's row, then the budgets'; but the one statement checks its foreign keys (share locks
# on the rows it names) at its end, after the code's lock, where `_redeem` checks each insert's
# at once. Should the same client's two orders meet there, PostgreSQL aborts one, which counts
# again like a collision.
DEADLOCK_SQLSTATE = "40P01"


def _deadlocked(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == DEADLOCK_SQLSTATE


def _refuse_unusable(quote: Quote) -> None:
    """An order redeems only codes it can use: an invalid code, or a valid one that gives no
    discount, refuses the whole order with the reasons."""
    refused = [c.reason for c in quote.codes if not c.valid]
    used = set(quote.used_codes())
    for verdict in quote.codes:
        if verdict.valid and verdict.code not in used:
            applied_with = quote.applied_with(verdict.promotion_id)
            if applied_with:
                refused.append(
                    f"code {verdict.code} is not needed: promotion {verdict.promotion_id} "
                    f"applies with code {applied_with}"
                )
            else:
                refused.extend(_why_unused(quote, verdict.promotion_id))
    if refused:
        raise RedemptionRefused("; ".join(refused))


@dataclasses.dataclass
class _Writes:
    """What a redemption writes, prepared alike for either writer."""

    redemption: Redemption
    history: History
    codes: dict[int, CodeVerdict]  # the codes the quote used, by id
    renewed: dict[str, int]  # code -> the renewed service it discounted


def _prepare(order: Order, quote: Quote, key: str, fingerprint: str, actor: Actor) -> _Writes:
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
    # The quote is the engine's answer in JSON's own types (quote_as_dict): checking that it
    # encodes would encode it once more than the insert does.
    redemption.full_clean(
        exclude=["client", "provider", "quote"], validate_unique=False, validate_constraints=False
    )
    return _Writes(
        redemption=redemption,
        history=history_line(
            obj=redemption,
            actor=actor,
            desc=f"Order redeemed with {', '.join(sorted(used)) or 'no promo code'}",
        ),
        codes={v.code_id: v for v in quote.codes if v.code in used},
        # The renewed service a code discounted, when the order names one (its first such line).
        renewed={
            part.code: lq.line.service_id
            for lq in reversed(quote.lines)
            for part in lq.applied
            if part.code and lq.line.service_id
        },
    )


def _write(order: Order, quote: Quote, key: str, fingerprint: str, actor: Actor) -> Redemption:
    writes = _prepare(order, quote, key, fingerprint, actor)
    if _fits_one_statement(quote, writes):
        return _redeem_in_one_statement(order, quote, writes)
    with transaction.atomic():
        return _redeem(order, quote, writes)


def _redeem(order: Order, quote: Quote, writes: _Writes) -> Redemption:
    """The redemption's writes, the codes' row locks last: everything else is written first, so
    a code's lock is held for its guarded update and the commit, whatever else the order is."""
    redemption, codes = writes.redemption, writes.codes
    insert([redemption])  # a concurrent twin under the same key fails here, before any lock
    writes.history.object_id = redemption.pk
    insert([writes.history])
    version, slots = _version_and_slots(order.provider_id, order.client_id, list(codes))
    if version != quote.rules_version:
        raise _RulesMoved
    for code_id, verdict in codes.items():
        limit = verdict.row.account_uselimit
        if limit is not None and len(slots[code_id]) >= limit:
            raise RedemptionRefused(f"code {verdict.code} may be used {limit} time(s) per client")
    # A client's live uses of a code hold distinct slots (a unique index): two of the client's
    # orders counting the same uses collide here, and the later one counts again.
    usages = [
        PromoCodeUsage(
            promocode_id=code_id,
            client_id=order.client_id,
            redemption=redemption,
            service_id=writes.renewed.get(verdict.code),
            client_slot=next(n for n in itertools.count(1) if n not in slots[code_id]),
        )
        for code_id, verdict in sorted(codes.items())
    ]
    insert(usages)
    _carry(redemption, usages, codes)
    budgets = _needed(quote)
    charges = [
        BudgetCharge(
            redemption=redemption,
            promotion_id=b.promotion_id,
            period=b.period,
            amount=b.needs,
            budgeted=b.left is not None,
            client_budgeted=b.client_left is not None,
        )
        for b in budgets
    ]
    insert(charges)
    # The locks, last: one guarded update per code, in primary-key order, then the budgets'
    # (each promotion's row, then its client row), in promotion order.
    for code_id, verdict in sorted(codes.items()):
        if _take_use(code_id=code_id, text=verdict.code) != _settings(verdict.row):
            raise _RulesMoved  # the code was changed since the quote read it
    for budget in budgets:
        _reserve(budget, client_id=order.client_id)
    return redemption


def _carry(redemption: Redemption, usages: list[PromoCodeUsage], codes: dict) -> None:
    """The answer shows the usages with their codes: they are known here, not read back."""
    for usage in usages:
        verdict = codes[usage.promocode_id]
        usage.promocode = deferred_instance(
            PromoCode, id=verdict.code_id, promotion_id=verdict.promotion_id, code=verdict.code
        )
    # Not Django's prefetch cache: building the related queryset it holds cost 3% of a
    # redemption's CPU (bench/http_load.py, side by side).
    redemption.written_usages = usages


# One statement --------------------------------------------------------------------------------


def _fits_one_statement(quote: Quote, writes: _Writes) -> bool:
    """The common order, on PostgreSQL: one code without a per-client limit, and at most one
    budgeted promotion."""
    if connection.vendor != "postgresql" or len(writes.codes) != 1:
        return False
    (verdict,) = writes.codes.values()
    return verdict.row.account_uselimit is None and len(_needed(quote)) <= 1


def _needed(quote: Quote) -> list:
    """The budgets the order takes from, in promotion order (the order their rows are locked)."""
    return sorted((b for b in quote.budgets if b.needs > 0), key=lambda b: b.promotion_id)


def _redeem_in_one_statement(order: Order, quote: Quote, writes: _Writes) -> Redemption:
    """The same writes as `_redeem`, for an order that fits, as one statement, in `_redeem`'s
    order: the redemption, its history line, its usage and its budget charge, then the code's
    guarded update (which also requires the code's settings and the rules version the quote
    read), then the budget's guarded takes; when a guard refuses, the statement fails as a whole
    (its last line divides by the guarded rows' count) and `_why_not_taken` says why. Measured
    need: the seven round trips of `_redeem` (with BEGIN and COMMIT) were 40% of a redemption's
    CPU in the app server and the database (bench/http_load.py). Locks are taken in `_redeem`'s
    order (the key's and the slot's unique entries, the code's row, the budgets' rows), the
    code's last but the budgets', and held to the statement's end.

    The usage takes the client's lowest free slot of the code, as `_redeem` gives it; a
    concurrent twin under the same key, or the client's concurrent order taking the same slot,
    fails the whole statement on the unique index (IntegrityError), as in `_redeem`."""
    ((code_id, verdict),) = writes.codes.items()
    (budget,) = _needed(quote) or (None,)
    kinds = _budget_kinds(budget)
    usage = PromoCodeUsage(
        promocode_id=code_id,
        client_id=order.client_id,
        service_id=writes.renewed.get(verdict.code),
    )
    db = database()
    live = [code_id, order.client_id, PromoCodeUsage.Status.ACTIVE]  # the slot's subqueries'
    params = [
        *insert_select_params(writes.redemption, {}),
        *insert_select_params(writes.history, {"object_id": []}),
        *insert_select_params(usage, {"redemption_id": [], "client_slot": live * 2}),
    ]
    if budget is not None:
        charge = BudgetCharge(
            promotion_id=budget.promotion_id,
            period=budget.period,
            amount=budget.needs,
            budgeted=budget.left is not None,
            client_budgeted=budget.client_left is not None,
        )
        params += insert_select_params(charge, {"redemption_id": []})
    params += [
        code_id,
        *(
            field.get_db_prep_value(value, db)
            for field, value in zip(_SETTINGS.fields, _settings(verdict.row), strict=True)
        ),
        order.provider_id,
        quote.rules_version,
    ]
    for kind in kinds:
        params += _budget_take_params(
            kind,
            promotion_id=budget.promotion_id,
            period=budget.period,
            amount=budget.needs,
            client_id=order.client_id,
        )
    sql = _one_statement_sql(db.vendor, tuple(kinds), charged=budget is not None)
    try:
        # Its own atomicity: one statement (a savepoint only inside a caller's transaction).
        alone = transaction.atomic() if db.in_atomic_block else contextlib.nullcontext()
        with alone, db.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    except DataError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != DIVISION_BY_ZERO_SQLSTATE:
            raise
        _why_not_taken(order, quote, code_id, verdict, budget)
    redemption_id, history_id, usage_id, usage.client_slot, _ = row
    inserted(writes.redemption, redemption_id)
    inserted(writes.history, history_id)
    writes.history.object_id = redemption_id
    usage.redemption = writes.redemption
    inserted(usage, usage_id)
    _carry(writes.redemption, [usage], writes.codes)
    return writes.redemption


@functools.lru_cache(maxsize=16)
def _one_statement_sql(vendor: str, kinds: tuple[str, ...], *, charged: bool) -> str:
    """`_redeem_in_one_statement`'s statement for an order taking from these budget rows (and
    charging a budget or not), built once per shape; its parameters are in the order the
    function lists them."""
    q = connection.ops.quote_name
    codes = _SETTINGS.table
    usages = q(PromoCodeUsage._meta.db_table)
    same_settings = " AND ".join(
        f"{q(field.column)} IS NOT DISTINCT FROM %s" for field in _SETTINGS.fields
    )
    live = f"FROM {usages} WHERE promocode_id = %s AND client_id = %s AND status = %s"
    lowest_free_slot = (
        f"(SELECT MIN(s) FROM generate_series(1, (SELECT COUNT(*) {live}) + 1) AS s "
        f"WHERE s NOT IN (SELECT client_slot {live}))"
    )
    redemption_sql = insert_select_sql(Redemption, {})
    history_sql = insert_select_sql(History, {"object_id": "r.id"})
    usage_sql = insert_select_sql(
        PromoCodeUsage, {"redemption_id": "r.id", "client_slot": lowest_free_slot}
    )
    charge_sql = ""
    if charged:
        charge_sql = insert_select_sql(BudgetCharge, {"redemption_id": "r.id"})
        charge_sql = f", c AS ({charge_sql} FROM r RETURNING id)"
    # The budget rows the order takes from (the promotion's, then the client's), each take
    # after the code's, as `_redeem` takes them.
    takes, after = [], "taken"
    for kind in kinds:
        take_sql = _budget_take_sql(vendor, kind, after=after)
        after = f"take_{kind}"
        takes.append(f", {after} AS ({take_sql})")
    return (
        f"WITH r AS ({redemption_sql} RETURNING id), "
        f"h AS ({history_sql} FROM r RETURNING id), "
        f"u AS ({usage_sql} FROM r RETURNING id, client_slot){charge_sql}, "
        # FROM u: the code's row is locked after the rows before it are written.
        f"taken AS (UPDATE {codes} SET use_count = use_count + 1 FROM u "
        f"WHERE {codes}.id = %s AND (uselimit IS NULL OR use_count < uselimit) "
        f"AND {same_settings} "
        f"AND {_version_sql()} = %s "
        f"RETURNING {codes}.id AS taken_id)"
        f"{''.join(takes)} "
        # A guard refused (no row taken): 1/0 fails the statement, so nothing of it is kept.
        f"SELECT (SELECT id FROM r), (SELECT id FROM h), (SELECT id FROM u), "
        f"(SELECT client_slot FROM u), 1 / (SELECT COUNT(*) FROM {after})"
    )


# The one-statement redemption's abort (see its last line).
DIVISION_BY_ZERO_SQLSTATE = "22012"


def _why_not_taken(
    order: Order, quote: Quote, code_id: int, verdict: CodeVerdict, budget: BudgetView | None
) -> None:
    """The one statement wrote nothing: raise what `_redeem` would have, in its order."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT use_count, {_SETTINGS.sql(qualified=False)}, {_version_sql()} "
            f"FROM {_SETTINGS.table} WHERE id = %s",
            [order.provider_id, code_id],
        )
        row = cursor.fetchone()
    if row is None or row[-1] != quote.rules_version:
        raise _RulesMoved
    use_count, settings = row[0], tuple(_SETTINGS.convert(row[1:-1]))
    uselimit = settings[SETTINGS.index("uselimit")]
    if uselimit is not None and use_count >= uselimit:
        raise RedemptionRefused(f"code {verdict.code} has been used up")
    if settings != _settings(verdict.row):
        raise _RulesMoved  # its settings changed since the quote read them
    for kind in _budget_kinds(budget):
        if _budget_left(kind, budget, order.client_id) < budget.needs:
            raise _BudgetShort(budget.promotion_id, _short_reason(kind, budget, order.client_id))
    raise _RulesMoved  # what refused has changed since: quote again


# Budgets ----------------------------------------------------------------------------------------

# (table, limit column on the promotion, the row's extra key column) for each kind of budget row.
_BUDGET_ROWS = {
    "budget": (BudgetSpend, "budget", None),
    "client_budget": (ClientBudgetSpend, "client_budget", "client_id"),
}


def _budget_move(
    kind: str, *, promotion_id: int, period: str, amount, client_id: int, give_back: bool
) -> bool:
    """One guarded update of a budget row: take `amount` while `spent + amount <= limit` (the
    promotion's current limit, read by the same statement), or give it back. False: no room."""
    model, _, extra = _BUDGET_ROWS[kind]
    table = connection.ops.quote_name(model._meta.db_table)
    where = "promotion_id = %s AND period = %s" + (f" AND {extra} = %s" if extra else "")
    params = [promotion_id, period, *([client_id] if extra else [])]
    if give_back:
        sql = (
            f"UPDATE {table} SET spent = ROUND(spent - %s, 4) "
            f"WHERE {where} AND ROUND(spent - %s, 4) >= 0 RETURNING id"
        )
        params = [amount, *params, amount]
    else:
        sql = _budget_take_sql(connection.vendor, kind)
        params = _budget_take_params(
            kind, promotion_id=promotion_id, period=period, amount=amount, client_id=client_id
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


@functools.lru_cache(maxsize=16)
def _budget_take_sql(vendor: str, kind: str, *, after: str = "") -> str:
    """The guarded take of an amount from a budget row (its parameters: `_budget_take_params`);
    `after` names a row source (a WITH query) the take waits for, in the one-statement
    redemption.

    One statement: the period's row is made with the amount when the limit allows it, or moved
    by the amount only while `spent + amount <= limit` (a concurrent first insert of the row
    waits on the unique index, then takes the update). ROUND: SQLite keeps decimals as binary
    floats, and sums of cents must compare exactly."""
    model, limit, extra = _BUDGET_ROWS[kind]
    q = connection.ops.quote_name
    table = q(model._meta.db_table)
    promotions = q(model._meta.get_field("promotion").related_model._meta.db_table)
    keys = ["promotion_id", *([extra] if extra else []), "period"]
    key_values = ["CAST(%s AS INTEGER)"] * (len(keys) - 1) + ["CAST(%s AS VARCHAR(10))"]
    cap = f"(SELECT {q(limit)} FROM {promotions} WHERE id = {table}.promotion_id)"
    return (
        f"INSERT INTO {table} ({', '.join(keys)}, spent) "
        f"SELECT {', '.join(key_values)}, CAST(%s AS NUMERIC(20, 4)) "
        f"{f'FROM {after} ' if after else ''}"
        f"WHERE CAST(%s AS NUMERIC(20, 4)) <= (SELECT {q(limit)} FROM {promotions} WHERE id = %s) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE "
        f"SET spent = ROUND({table}.spent + excluded.spent, 4) "
        f"WHERE ROUND({table}.spent + excluded.spent, 4) <= {cap} RETURNING id"
    )


def _budget_take_params(
    kind: str, *, promotion_id: int, period: str, amount, client_id: int
) -> list:
    """`_budget_take_sql`'s parameters: take `amount` from the row of this promotion's period
    (and client, for a client budget)."""
    extra = _BUDGET_ROWS[kind][2]
    return [promotion_id, *([client_id] if extra else []), period, amount, amount, promotion_id]


def _budget_kinds(budget: BudgetView | None) -> list[str]:
    """The rows an order takes a budgeted promotion's discount from, in their lock order: the
    promotion's (when it has a budget), then the client's (when it has a client budget)."""
    if budget is None:
        return []
    limits = (("budget", budget.left), ("client_budget", budget.client_left))
    return [kind for kind, limit in limits if limit is not None]


def _reserve(budget, *, client_id: int) -> None:
    """Take what the order needs from the promotion's budget and the client's, or refuse with
    what is left (read after the guarded update found no room)."""
    for kind in _budget_kinds(budget):
        moved = _budget_move(
            kind,
            promotion_id=budget.promotion_id,
            period=budget.period,
            amount=budget.needs,
            client_id=client_id,
            give_back=False,
        )
        if not moved:
            raise _BudgetShort(budget.promotion_id, _short_reason(kind, budget, client_id))


def _short_reason(kind: str, budget, client_id: int) -> str:
    left = _budget_left(kind, budget, client_id)
    views = {
        "budget": BudgetView(budget.promotion_id, budget.period, budget.needs, left, None),
        "client_budget": BudgetView(budget.promotion_id, budget.period, budget.needs, None, left),
    }
    return views[kind].refusal() or f"budget: {left} left, this order needs {budget.needs}"


def _budget_left(kind: str, budget, client_id: int) -> Decimal:
    """What is left of a budget row now, in the order's minor units, rounded down."""
    model, limit, extra = _BUDGET_ROWS[kind]
    rows = model.objects.filter(promotion_id=budget.promotion_id, period=budget.period)
    if extra:
        rows = rows.filter(client_id=client_id)
    spent = rows.values_list("spent", flat=True).first() or Decimal(0)
    cap = Promotion.objects.filter(pk=budget.promotion_id).values_list(limit, flat=True).first()
    minor_units = max(-budget.needs.as_tuple().exponent, 0)
    return money_round(
        max((cap or Decimal(0)) - spent, Decimal(0)), minor_units=minor_units, rounding=ROUND_DOWN
    )


def _version_sql() -> str:
    """The provider's current rules version (0 before its first rule) as a scalar subquery of
    one parameter, the provider."""
    versions = connection.ops.quote_name(RulesVersion._meta.db_table)
    return f"(SELECT COALESCE(MAX(version), 0) FROM {versions} WHERE provider_id = %s)"


# A code's settings as the quote read them; the guarded update returns them as they are now.
SETTINGS = ("promotion_id", *PromoCode.SETTINGS)


def _settings(row) -> tuple:
    return tuple(getattr(row, name) for name in SETTINGS)


_SETTINGS = Columns(PromoCode, *SETTINGS)


def _take_use(*, code_id: int, text: str) -> tuple:
    """Take one use of the code, or refuse when it is used up. The update takes the code's row
    lock; it answers the code's settings read under that lock (one statement for both)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_SETTINGS.table} SET use_count = use_count + 1 "
            f"WHERE id = %s AND (uselimit IS NULL OR use_count < uselimit) "
            f"RETURNING {_SETTINGS.sql(qualified=False)}",
            [code_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise RedemptionRefused(f"code {text} has been used up")
    return tuple(_SETTINGS.convert(row))


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
        f"FROM (SELECT {_version_sql()} AS version) AS v LEFT JOIN {usages} AS u ON u.client_id = %s "
        f"AND u.status = %s AND u.promocode_id IN ({', '.join(['%s'] * len(code_ids)) or 'NULL'})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [provider_id, client_id, PromoCodeUsage.Status.ACTIVE, *code_ids])
        rows = cursor.fetchall()
    for _, code_id, slot in rows:
        if code_id is not None:
            slots[code_id].add(slot)
    return rows[0][0], slots


# A promotion that lost its lines to others by the ordering rule: its code is not refused.
OUTRANKED = ("not applied: promotion ", "not applied: below promotion ")


def _why_unused(quote: Quote, promotion_id: int | None) -> list[str]:
    """A valid code whose promotion does not apply at all is not the client's to use."""
    reasons = {
        v.reason
        for lq in quote.lines
        for v in lq.verdicts
        if v.promotion_id == promotion_id and not v.reason.startswith(OUTRANKED)
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
    # Each charge goes back to the period it was taken from, after the codes (the lock order
    # of a redemption).
    for charge in redemption.budget_charges.order_by("promotion_id"):
        for kind, charged in (
            ("budget", charge.budgeted),
            ("client_budget", charge.client_budgeted),
        ):
            if charged:
                _budget_move(
                    kind,
                    promotion_id=charge.promotion_id,
                    period=charge.period,
                    amount=charge.amount,
                    client_id=redemption.client_id,
                    give_back=True,
                )
    redemption.status = Redemption.Status.RELEASED
    redemption.released_at = timezone.now()
    redemption.full_clean(validate_unique=False)
    redemption.save(update_fields=["status", "released_at"])
    history_record(obj=redemption, actor=actor, desc="Redemption released; its code uses are free")
    return redemption
