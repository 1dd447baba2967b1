"""A provider's live promotions compiled into an immutable rule set, rebuilt only when its rules
version moves.

Every service that changes a rule draws a new version for the provider in its own transaction
(`rules_version_bump`); a quote reads the version (one indexed query) and takes the compiled set
for that version from this process, then from Django's cache, and compiles it from the database
only when neither has it. The cache is an accelerator: a version names exactly one state of the
rules, so whatever a cache holds under it is correct, and an empty cache only costs a compile.

The set indexes what the per-line loop needs: for each line shape (tariff, kind, period), every
promotion's discounts already refused or ranked, and the promotions in the order in which they can
win, split into those that need a promo code and those that do not.
"""

import datetime
import heapq
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal

from django.core.cache import cache
from django.db import connection
from django.db.models import Exists, OuterRef, Q

from common.groups import ConditionGroups
from promotions.engine.conditions import ConditionCheck, ConditionSpec, condition_check
from promotions.engine.discounts import CompiledDiscount, Shape
from promotions.models import Condition, Discount, PromoCode, Promotion, RulesVersion

logger = logging.getLogger(__name__)

# Compiled sets kept per process (providers x days x versions in use), and shapes per set.
PROCESS_SETS = 256
SHAPES_PER_SET = 4096
CACHE_TIMEOUT = 24 * 3600


@dataclass(frozen=True)
class CompiledPromotion:
    id: int
    needs_code: bool
    conditions: ConditionGroups[ConditionCheck]
    discounts: tuple[CompiledDiscount, ...]  # in id order, as refusals are reported
    priority: int = 0
    combinable: bool = False
    budget: Decimal | None = None
    client_budget: Decimal | None = None
    budget_period: str = "total"

    @property
    def budgeted(self) -> bool:
        return self.budget is not None or self.client_budget is not None

    @property
    def conditions_key(self) -> tuple:
        """Promotions whose conditions are alike hold alike: one check per quote serves them."""
        return tuple(tuple(c.signature for c in term) for term in self.conditions.terms)


# (minus priority, minus rank, promotion id, discount): a percentage discount's place on a line.
Entry = tuple[int, Decimal, int, CompiledDiscount]
# (minus priority, promotion id, discount): a fixed amount or price, placed per line by its amount.
FixedEntry = tuple[int, int, CompiledDiscount]


@dataclass(frozen=True)
class Ranked:
    """Discounts not refused for a shape, in the order they can apply: percentage discounts best
    first (one list for promotions without codes, one per promotion that needs a code), and the
    fixed amounts and prices, which a line orders by their amounts."""

    open: tuple[Entry, ...]
    coded: dict[int, tuple[Entry, ...]]
    fixed_open: tuple[FixedEntry, ...]
    fixed_coded: dict[int, tuple[FixedEntry, ...]]


@dataclass(frozen=True)
class ShapeRules:
    """What the rule set answers for one line shape, before anything about the client is known.

    `refusals[pid]`: each discount of the promotion in id order, with its refusal or None.
    `offers[pid]`: the promotion's best-ranked discount not refused, those discounts (in id
    order), the joined refusals when there is none, and whether its best discount is decided
    per line (one depends on the renewed service, or a fixed amount is among several).
    `ranked`: every promotion's discounts; `stacking`: only the combinable promotions', which
    are all a line walks once a combinable promotion applied first.
    """

    refusals: dict[int, tuple[tuple[CompiledDiscount, str | None], ...]]
    offers: dict[
        int, tuple[CompiledDiscount | None, tuple[CompiledDiscount, ...], str | None, bool]
    ]
    ranked: Ranked
    stacking: Ranked


class RuleSet:
    """A provider's promotions live on `day`, as the database held them at `version`."""

    def __init__(
        self,
        *,
        provider_id: int,
        version: int,
        day: datetime.date,
        promotions: tuple[CompiledPromotion, ...],
        price_slots: int = 0,
    ):
        self.provider_id, self.version, self.day = provider_id, version, day
        self.price_slots = price_slots
        self.promotions = {p.id: p for p in promotions}
        self.order = tuple(sorted(self.promotions))
        self.conditions_keys = {p.id: p.conditions_key for p in promotions}
        checks = [c for p in promotions for term in p.conditions.terms for c in term]
        self.needs = frozenset(f for c in checks for f in c.facts)
        self.windows = tuple(sorted({w for c in checks for w in c.windows()}))
        self.validity_discounts = any(
            d.validity_months is not None for p in promotions for d in p.discounts
        )
        self._shapes: OrderedDict[Shape, ShapeRules] = OrderedDict()
        self._lock = threading.Lock()

    def restricted(self, ids: Collection[int]) -> "RuleSet":
        """The same rules with only the promotions `ids` (a backtest asks what one promotion
        would give on its own); compiled values are shared, nothing is read again."""
        return RuleSet(
            provider_id=self.provider_id,
            version=self.version,
            day=self.day,
            promotions=tuple(self.promotions[pid] for pid in self.order if pid in ids),
            price_slots=self.price_slots,
        )

    def without_codes(self, ids: Collection[int]) -> "RuleSet":
        """The same rules where the promotions `ids` need none of their codes (a backtest asks
        who would have got a coded promotion had they entered one of its codes)."""
        return RuleSet(
            provider_id=self.provider_id,
            version=self.version,
            day=self.day,
            promotions=tuple(
                replace(p, needs_code=False) if p.id in ids else p for p in self.promotions.values()
            ),
            price_slots=self.price_slots,
        )

    def __getstate__(self) -> dict:
        # What is computed on demand stays with the process that computed it.
        state = dict(self.__dict__)
        state["_shapes"], state["_lock"] = OrderedDict(), None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def shape(self, shape: Shape) -> ShapeRules:
        found = self._shapes.get(shape)
        if found is None:
            found = self._build_shape(shape)
            with self._lock:
                self._shapes[shape] = found
                if len(self._shapes) > SHAPES_PER_SET:
                    self._shapes.popitem(last=False)
        return found

    def _build_shape(self, shape: Shape) -> ShapeRules:
        refusals, offers = {}, {}
        ranked = {False: ([], {}, [], {}), True: ([], {}, [], {})}  # by "combinable only"
        for pid in self.order:
            promotion = self.promotions[pid]
            tried = tuple((d, d.shape_refusal(shape)) for d in promotion.discounts)
            if promotion.budgeted and shape.foreign_currency:
                why = (
                    "its budget is in the provider's currency, "
                    f"the line is in {shape.foreign_currency}"
                )
                tried = tuple((d, refusal or why) for d, refusal in tried)
            refusals[pid] = tried
            usable = tuple(d for d, refusal in tried if refusal is None)
            offers[pid] = (
                min(usable, key=lambda d: (-d.rank(shape), d.id)) if usable else None,
                usable,
                None
                if usable
                else "; ".join(r for _, r in tried) or "the promotion has no discounts",
                any(d.needs_service(shape.kind) for d in usable)
                or (len(usable) > 1 and any(d.fixed for d in usable)),
            )
            entries = [(-promotion.priority, -d.rank(shape), pid, d) for d in usable if not d.fixed]
            fixed = [(-promotion.priority, pid, d) for d in usable if d.fixed]
            for combinable_only in (False, True):
                if combinable_only and not promotion.combinable:
                    continue
                open_, coded, fixed_open, fixed_coded = ranked[combinable_only]
                if promotion.needs_code:
                    coded[pid] = tuple(sorted(entries, key=_rank_key))
                    if fixed:
                        fixed_coded[pid] = tuple(fixed)
                else:
                    open_.extend(entries)
                    fixed_open.extend(fixed)
        built = {
            only: Ranked(tuple(sorted(o, key=_rank_key)), c, tuple(fo), fc)
            for only, (o, c, fo, fc) in ranked.items()
        }
        return ShapeRules(refusals, offers, built[False], built[True])

    def ranked(self, ranked: Ranked, coded: list[int]) -> Iterator[Entry]:
        """The percentage discounts of the open promotions and of the coded ones named, in
        order of priority, then rank."""
        if not coded:
            return iter(ranked.open)
        return heapq.merge(
            ranked.open, *(ranked.coded.get(pid, ()) for pid in coded), key=_rank_key
        )

    def fixed(self, ranked: Ranked, coded: list[int]) -> list[FixedEntry]:
        """The fixed amounts and prices of the open promotions and of the coded ones named."""
        if not ranked.fixed_coded or not coded:
            return list(ranked.fixed_open)
        named = (e for pid in coded for e in ranked.fixed_coded.get(pid, ()))
        return [*ranked.fixed_open, *named]


def _rank_key(entry: Entry) -> tuple[int, Decimal, int, int]:
    return entry[0], entry[1], entry[2], entry[3].id


# Versions ---------------------------------------------------------------------------------------


def rules_version(provider_id: int) -> int:
    """The provider's current rules version (0 before its first rule)."""
    found = RulesVersion.objects.filter(provider_id=provider_id).values_list("version", flat=True)
    return next(iter(found), 0)


def rules_version_bump(*, provider_id: int) -> int:
    """Draw a new rules version for the provider, in the caller's transaction: call it from every
    write that changes a rule (a promotion, its discounts, conditions or codes)."""
    version = secrets.randbits(62) + 1
    table = connection.ops.quote_name(RulesVersion._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (provider_id, version) VALUES (%s, %s) "
            "ON CONFLICT (provider_id) DO UPDATE SET version = EXCLUDED.version",
            [provider_id, version],
        )
    return version


# Compiling --------------------------------------------------------------------------------------


def _compiled_discount(
    row: tuple, tariffs: dict[int, frozenset[int]], slots: dict[tuple, int]
) -> CompiledDiscount:
    pk, pid, kind, action, periods, percentage, validity, months, valuetype, amount = row
    months = months if validity == Discount.Validity.MONTHS else None
    broken = None
    if not isinstance(periods, list) or not all(isinstance(p, int) and p >= 1 for p in periods):
        broken, periods = "its order periods are not months", []
    elif kind not in Discount.Type.values or action not in Discount.ActionType.values:
        broken = "its type is unknown"
    value = percentage if valuetype == Discount.ValueType.PERCENT else amount
    if valuetype not in Discount.ValueType.values or value is None or value < 0:
        broken, valuetype, value = "its value is not set", Discount.ValueType.PERCENT, Decimal(0)
    return CompiledDiscount(
        id=pk,
        promotion_id=pid,
        tariffs=None if kind == Discount.Type.ALL else tariffs.get(pk, frozenset()),
        action=action if action in Discount.ActionType.values else Discount.ActionType.ALL,
        periods=tuple(periods),
        percentage=value,
        validity_months=months,
        broken=broken,
        valuetype=valuetype,
        slot_new=slots.setdefault(("new", valuetype, value, months), len(slots)),
        slot_renewal=slots.setdefault(("renewal", valuetype, value), len(slots)),
    )


def compile_rules(
    provider_id: int, version: int, day: datetime.date, *, also: Collection[int] = ()
) -> RuleSet:
    """The provider's promotions live on `day`, read from the database in four queries; with
    `also`, those promotions too whatever their dates or archiving (a backtest adds a draft to
    a past day's rules; such a set is never cached under the version)."""
    chosen = Promotion.objects.status_q(Promotion.Status.ACTIVE, day)
    if also:
        chosen |= Q(pk__in=list(also))
    live = list(
        Promotion.objects.filter(chosen)
        .filter(provider_id=provider_id)
        .annotate(needs_code=Exists(PromoCode.objects.filter(promotion=OuterRef("pk"))))
        .values_list(
            "id",
            "needs_code",
            "priority",
            "combine",
            "budget",
            "client_budget",
            "budget_period",
        )
    )
    ids = [pid for pid, *_ in live]
    discounts = list(
        Discount.objects.filter(promotion_id__in=ids)
        .order_by("id")
        .values_list(
            "id",
            "promotion_id",
            "type",
            "actiontype",
            "period",
            "percentage",
            "validity",
            "validitylength",
            "valuetype",
            "amount",
        )
    )
    covered: dict[int, set[int]] = {}
    for discount_id, tariff_id in Discount.pricelist.through.objects.filter(
        discount__promotion_id__in=ids, discount__type=Discount.Type.PRICELIST
    ).values_list("discount_id", "tariff_id"):
        covered.setdefault(discount_id, set()).add(tariff_id)
    tariffs = {k: frozenset(v) for k, v in covered.items()}
    conditions: dict[int, list[ConditionCheck]] = {}
    for row in (
        Condition.objects.filter(promotion_id__in=ids)
        .order_by("id")
        .values_list("promotion_id", *ConditionSpec.COLUMNS)
    ):
        spec = ConditionSpec.from_row(row[1:])
        conditions.setdefault(row[0], []).append(condition_check(spec, provider_id=provider_id))
    by_promotion: dict[int, list[CompiledDiscount]] = {}
    slots: dict[tuple, int] = {}
    for row in discounts:
        by_promotion.setdefault(row[1], []).append(_compiled_discount(row, tariffs, slots))
    promotions = tuple(
        CompiledPromotion(
            id=pid,
            needs_code=needs_code,
            conditions=ConditionGroups.of(
                conditions.get(pid, ()),
                group_of=lambda c: c.spec.group_id,
                key_of=lambda c: c.spec.id,
            ),
            discounts=tuple(by_promotion.get(pid, ())),
            priority=priority,
            combinable=combine == Promotion.Combine.COMBINABLE,
            budget=budget,
            client_budget=client_budget,
            budget_period=budget_period,
        )
        for pid, needs_code, priority, combine, budget, client_budget, budget_period in live
    )
    return RuleSet(
        provider_id=provider_id,
        version=version,
        day=day,
        promotions=promotions,
        price_slots=len(slots),
    )


# Caches -----------------------------------------------------------------------------------------

_process_sets: OrderedDict[tuple[int, int, datetime.date], RuleSet] = OrderedDict()
_process_lock = threading.Lock()


def _cache_key(provider_id: int, version: int, day: datetime.date) -> str:
    return f"promotions:rules:2:{provider_id}:{version}:{day.isoformat()}"


def _remember(key: tuple[int, int, datetime.date], rules: RuleSet) -> None:
    with _process_lock:
        _process_sets[key] = rules
        _process_sets.move_to_end(key)
        while len(_process_sets) > PROCESS_SETS:
            _process_sets.popitem(last=False)


def rules_for(provider_id: int, day: datetime.date, *, version: int | None = None) -> RuleSet:
    """The provider's compiled rules for orders placed on `day`, at the current version (or at
    `version`, the current one as the caller has just read it)."""
    if version is None:
        version = rules_version(provider_id)
    key = (provider_id, version, day)
    found = _process_sets.get(key)
    if found is not None:
        return found
    try:
        found = cache.get(_cache_key(*key))
    except Exception:  # the cache is an accelerator: without it the database answers
        logger.warning("rules cache unavailable", exc_info=True)
    if found is None:
        found = compile_rules(provider_id, version, day)
        # Stored only when no rule changed while it was read, so a version names one state.
        if rules_version(provider_id) != version:
            return found
        try:
            cache.set(_cache_key(*key), found, CACHE_TIMEOUT)
        except Exception:
            logger.warning("rules cache unavailable", exc_info=True)
    _remember(key, found)
    return found


def rules_forget() -> None:
    """Drop this process's compiled sets (tests; a process that wants a cold start)."""
    with _process_lock:
        _process_sets.clear()
