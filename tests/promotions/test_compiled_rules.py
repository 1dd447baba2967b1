"""The compiled evaluator against a small, obviously correct reference written here: for generated
catalogues (every condition type), clients (services, expenses and refunds, groups, registration,
referral) and orders, both agree on every line's winner and discount, in the default answer and
the explained one, and the default answer keeps every near miss."""

import datetime
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from billing.models import Service, Tariff
from promotions.engine import Kind, Line, Order, quote_order
from promotions.models import Discount
from tests.factories import (
    ClientFactory,
    ClientGroupFactory,
    ConditionFactory,
    ConditionGroupFactory,
    CurrencyFactory,
    DiscountFactory,
    ExpenseFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    ReferralFactory,
    ReferralProgramFactory,
    ServiceFactory,
    TariffFactory,
)

NOW = datetime.datetime(2026, 6, 15, 12, 0, tzinfo=datetime.UTC)
TODAY = NOW.date()
PERCENTAGES = [Decimal(p) for p in ("0", "5", "10", "12.5", "33.3333", "50", "99.9999", "100")]
PERIODS = (1, 3, 12)
PRICES = [Decimal(p) for p in ("0", "0.05", "9.99", "10", "100", "120.01")]
COMPARE = {
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "ge": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
}
MICROSECOND = datetime.timedelta(microseconds=1)
# The windows conditions look back over, with the first moment each counts (a window ends at NOW
# and holds both its ends). Months and years are read off the calendar by hand.
WINDOW_STARTS = {
    ("day", 1): NOW - datetime.timedelta(days=1),
    ("day", 7): NOW - datetime.timedelta(days=7),
    ("day", 30): NOW - datetime.timedelta(days=30),
    ("day", 365): NOW - datetime.timedelta(days=365),
    ("month", 1): datetime.datetime(2026, 5, 15, 12, 0, tzinfo=datetime.UTC),
    ("month", 4): datetime.datetime(2026, 2, 15, 12, 0, tzinfo=datetime.UTC),
    ("month", 12): datetime.datetime(2025, 6, 15, 12, 0, tzinfo=datetime.UTC),
    ("year", 1): datetime.datetime(2025, 6, 15, 12, 0, tzinfo=datetime.UTC),
}
CHARGES = [Decimal(a) for a in ("0.01", "5", "10", "50")]
SUMS = [Decimal(a) for a in ("0", "5", "10", "15", "60")]
STATUSES = [s.value for s in Service.Status]


# What is generated: plain descriptions, built into the database by factories -------------------


@dataclass
class DiscountSpec:
    tariffs: frozenset[int] | None  # tariff indexes 0-2, None = every tariff
    action: str
    periods: tuple[int, ...]
    percentage: Decimal
    validity: int | None


@dataclass
class ConditionSpec:
    kind: str  # a Condition.Type value
    comparison: str = "ge"
    amount: int = 0
    group: int = 0  # client group index 0-1
    window: tuple[str, int] = ("day", 1)  # a key of WINDOW_STARTS
    tariff: int = 0  # tariff index 0-2
    periods: tuple[int, ...] = ()  # order periods counted, () = every period
    currency: int = 0  # 0 = the provider's (USD), 1 = EUR
    summa: Decimal = Decimal(0)
    program: int = 0  # referral program index 0-1
    or_group: int | None = None  # conditions sharing a number are OR-ed


@dataclass
class PromotionSpec:
    window: str  # live | planned | expired | archived
    discounts: list[DiscountSpec]
    conditions: list[ConditionSpec]
    codes: list[tuple[int | None, int]] = field(default_factory=list)  # (uselimit, use_count)


discounts = st.builds(
    DiscountSpec,
    tariffs=st.one_of(st.none(), st.frozensets(st.integers(0, 2), min_size=1)),
    action=st.sampled_from(["order", "prolong", "all"]),
    periods=st.lists(st.sampled_from(PERIODS), unique=True, max_size=2).map(tuple),
    percentage=st.sampled_from(PERCENTAGES),
    validity=st.one_of(st.none(), st.integers(1, 24)),
)
or_groups = st.one_of(st.none(), st.integers(0, 1))
comparisons = st.sampled_from(sorted(COMPARE))
# An example's conditions look back over one or two windows, so that its expenses and its
# client's registration fall on those windows' edges often.
example_windows = st.shared(
    st.lists(st.sampled_from(sorted(WINDOW_STARTS)), min_size=1, max_size=2, unique=True),
    key="windows",
)
windows = example_windows.flatmap(st.sampled_from)


def counted(kind: str):
    """A condition on how many of the client's services count (of any tariff)."""
    return st.builds(
        ConditionSpec,
        kind=st.just(kind),
        comparison=comparisons,
        amount=st.integers(0, 3),
        or_group=or_groups,
    )


conditions = st.one_of(
    counted("service_count"),
    counted("paid_services"),
    st.builds(
        ConditionSpec,
        kind=st.just("has_tariff"),
        comparison=comparisons,
        amount=st.integers(0, 3),
        tariff=st.integers(0, 2),
        periods=st.lists(st.sampled_from(PERIODS), unique=True, max_size=2).map(tuple),
        or_group=or_groups,
    ),
    st.builds(
        ConditionSpec,
        kind=st.just("expense_sum"),
        comparison=comparisons,
        window=windows,
        currency=st.integers(0, 1),
        summa=st.sampled_from(SUMS),
        or_group=or_groups,
    ),
    st.builds(
        ConditionSpec,
        kind=st.just("account_group"),
        group=st.integers(0, 1),
        or_group=or_groups,
    ),
    st.builds(ConditionSpec, kind=st.just("registration"), window=windows, or_group=or_groups),
    st.builds(
        ConditionSpec, kind=st.just("affiliate"), program=st.integers(0, 1), or_group=or_groups
    ),
)
promotions = st.builds(
    PromotionSpec,
    window=st.sampled_from(["live"] * 5 + ["planned", "expired", "archived"]),
    discounts=st.lists(discounts, min_size=0, max_size=3),
    # most promotions are live, have conditions and need no code: their conditions alone decide
    conditions=st.one_of(st.lists(conditions, min_size=1, max_size=3), st.just([])),
    codes=st.one_of(
        st.just([]),
        st.lists(
            st.tuples(st.one_of(st.none(), st.integers(1, 2)), st.integers(0, 2)),
            min_size=1,
            max_size=2,
        ),
    ),
)
lines = st.tuples(
    st.integers(0, 2),
    st.sampled_from([Kind.NEW, Kind.RENEWAL]),
    st.sampled_from(PERIODS),
    st.sampled_from(PRICES),
)


# Moments: NOW or the first moment of one of the example's windows, or a microsecond either side
# (NOW and a microsecond later: not yet counted), or any hour in the last 400 days or the next 2.
moments = st.one_of(
    st.builds(
        lambda start, jitter: start + jitter * MICROSECOND,
        example_windows.flatmap(lambda ws: st.sampled_from([NOW, *map(WINDOW_STARTS.get, ws)])),
        st.integers(-1, 1),
    ),
    st.integers(-48, 400 * 24).map(lambda hours: NOW - datetime.timedelta(hours=hours)),
)


def edges_of(window: tuple[str, int]) -> st.SearchStrategy[datetime.datetime]:
    """Only the moments a condition over `window` can get wrong: its first moment and NOW, each
    with a microsecond either side, and a day ahead (the future counts for nothing)."""
    return st.sampled_from(
        [
            *(WINDOW_STARTS[window] + jitter * MICROSECOND for jitter in (-1, 0, 1)),
            *(NOW + jitter * MICROSECOND for jitter in (-1, 0, 1)),
            NOW + datetime.timedelta(days=1),
        ]
    )


@dataclass
class ServiceSpec:
    tariff: int
    period: int
    status: str
    paid: bool


@dataclass
class ExpenseSpec:
    currency: int  # 0 = USD, 1 = EUR
    amount: Decimal
    at: datetime.datetime
    refund: tuple[Decimal, datetime.datetime] | None  # a later refund: how much, when


services = st.builds(
    ServiceSpec,
    tariff=st.integers(0, 2),
    period=st.sampled_from(PERIODS),
    status=st.sampled_from(STATUSES),
    paid=st.booleans(),
)


@st.composite
def expenses(draw, at: st.SearchStrategy[datetime.datetime] = moments) -> ExpenseSpec:
    charged, refunded = sorted([draw(at), draw(at)])
    amount = draw(st.sampled_from(CHARGES))
    refund = draw(st.sampled_from([None, Decimal("0.01"), amount]))
    return ExpenseSpec(
        currency=draw(st.integers(0, 1)),
        amount=amount,
        at=charged,
        refund=None if refund is None else (refund, refunded),
    )


@dataclass
class Client:
    groups: frozenset[int]
    registered_at: datetime.datetime
    services: list[ServiceSpec]
    expenses: list[ExpenseSpec]
    referred_through: int | None  # referral program index 0-1


def clients_at(
    at: st.SearchStrategy[datetime.datetime], min_services: int = 0
) -> st.SearchStrategy[Client]:
    """Clients whose registration and expenses fall on the moments `at` draws."""
    return st.builds(
        Client,
        groups=st.frozensets(st.integers(0, 1)),
        registered_at=at,
        services=st.lists(services, min_size=min_services, max_size=4),
        expenses=st.lists(expenses(at), max_size=4),
        referred_through=st.one_of(st.none(), st.integers(0, 1)),
    )


clients = clients_at(moments)


# The reference --------------------------------------------------------------------------------


def reference_offer(promotion: PromotionSpec, line, daily: set[int]) -> Decimal | None:
    """The promotion's best discount on the line, or None when none of its discounts covers it."""
    tariff, kind, period, price = line
    amounts = []
    for d in promotion.discounts:
        if d.tariffs is not None and tariff not in d.tariffs:
            continue
        if kind not in {"order": {Kind.NEW}, "prolong": {Kind.RENEWAL}}.get(d.action, {kind}):
            continue
        if kind == Kind.RENEWAL and tariff in daily:
            continue
        if d.periods and period not in d.periods:
            continue
        if kind == Kind.RENEWAL and d.validity is not None:
            continue  # the order names no renewed service
        share = Decimal(1)
        if kind == Kind.NEW and d.validity is not None:
            share = Decimal(min(period, d.validity)) / Decimal(period)
        amount = (price * d.percentage / 100 * share).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
        amounts.append(min(amount, price))
    return max(amounts) if amounts else None


def reference_spent(client: Client, currency: int, since: datetime.datetime) -> Decimal:
    """What the client spent in the currency from `since` to NOW: charges less refunds, each
    counted when it was made."""
    moves = [(e.currency, e.amount, e.at) for e in client.expenses]
    moves += [(e.currency, -e.refund[0], e.refund[1]) for e in client.expenses if e.refund]
    return sum((a for c, a, at in moves if c == currency and since <= at <= NOW), Decimal(0))


def reference_condition(c: ConditionSpec, client: Client, order_lines) -> bool:
    match c.kind:
        case "service_count":
            active = sum(s.status == "active" for s in client.services)
            return COMPARE[c.comparison](active, c.amount)
        case "paid_services":
            return COMPARE[c.comparison](sum(s.paid for s in client.services), c.amount)
        case "has_tariff":
            held = [
                s.period for s in client.services if s.tariff == c.tariff and s.status != "closed"
            ]
            added = [p for t, kind, p, _ in order_lines if t == c.tariff and kind == Kind.NEW]
            counted = [p for p in held + added if not c.periods or p in c.periods]
            return COMPARE[c.comparison](len(counted), c.amount)
        case "expense_sum":
            spent = reference_spent(client, c.currency, WINDOW_STARTS[c.window])
            return COMPARE[c.comparison](spent, c.summa)
        case "account_group":
            return c.group in client.groups
        case "registration":
            return WINDOW_STARTS[c.window] <= client.registered_at <= NOW
        case "affiliate":
            return client.referred_through == c.program
    raise AssertionError(c.kind)


def reference_holds(promotion: PromotionSpec, client: Client, order_lines) -> bool:
    terms: dict = {}
    for i, c in enumerate(promotion.conditions):
        terms.setdefault(("g", c.or_group) if c.or_group is not None else ("c", i), []).append(c)
    return all(
        any(reference_condition(c, client, order_lines) for c in term) for term in terms.values()
    )


def reference_code_valid(code: tuple[int | None, int]) -> bool:
    uselimit, use_count = code
    return uselimit is None or use_count < uselimit


# The test -------------------------------------------------------------------------------------

WINDOWS = {
    "live": dict(fromdate=TODAY, todate=None),
    "planned": dict(fromdate=TODAY + datetime.timedelta(days=1), todate=None),
    "expired": dict(
        fromdate=TODAY - datetime.timedelta(days=9), todate=TODAY - datetime.timedelta(days=1)
    ),
    "archived": dict(fromdate=TODAY, todate=None, archived=True),
}


def build(catalogue: list[PromotionSpec], client: Client, daily: set[int]):
    provider = ProviderFactory()
    tariffs = [
        TariffFactory(
            provider=provider,
            charge=Tariff.Charge.DAILY if i in daily else Tariff.Charge.MONTHLY,
        )
        for i in range(3)
    ]
    groups = [ClientGroupFactory() for _ in range(2)]
    currencies = [provider.currency, CurrencyFactory(iso="EUR", name="Euro")]
    programs = [ReferralProgramFactory(provider=provider) for _ in range(2)]
    customer = ClientFactory(provider=provider, registration_date=client.registered_at)
    customer.groups.set(groups[i] for i in client.groups)
    for s in client.services:
        ServiceFactory(
            client=customer, tariff=tariffs[s.tariff], period=s.period, status=s.status, paid=s.paid
        )
    for e in client.expenses:
        charge = ExpenseFactory(
            client=customer,
            currency=currencies[e.currency],
            amount=e.amount,
            created_at=e.at,
            refunded=e.refund[0] if e.refund else Decimal(0),
        )
        if e.refund:
            amount, at = e.refund
            ExpenseFactory(
                client=customer,
                currency=charge.currency,
                amount=-amount,
                created_at=at,
                refunds=charge,
            )
    if client.referred_through is not None:
        ReferralFactory(program=programs[client.referred_through], client=customer)
    ids, codes = [], {}
    for n, spec in enumerate(catalogue):
        promotion = PromotionFactory(provider=provider, **WINDOWS[spec.window])
        ids.append(promotion.pk)
        for d in spec.discounts:
            discount = DiscountFactory(
                promotion=promotion,
                type=Discount.Type.ALL if d.tariffs is None else Discount.Type.PRICELIST,
                actiontype=d.action,
                period=list(d.periods),
                percentage=d.percentage,
                validity="unlimited" if d.validity is None else "months",
                validitylength=d.validity,
            )
            if d.tariffs is not None:
                discount.pricelist.set(tariffs[i] for i in d.tariffs)
        or_groups = {}
        for c in spec.conditions:
            group = None
            if c.or_group is not None:
                if c.or_group not in or_groups:
                    or_groups[c.or_group] = ConditionGroupFactory(promotion=promotion)
                group = or_groups[c.or_group]
            periodtype, periodlength = c.window
            fields = {
                "service_count": dict(comparison=c.comparison, amount=c.amount),
                "paid_services": dict(comparison=c.comparison, amount=c.amount),
                "has_tariff": dict(
                    comparison=c.comparison,
                    amount=c.amount,
                    pricelist=tariffs[c.tariff],
                    period=list(c.periods),
                ),
                "expense_sum": dict(
                    comparison=c.comparison,
                    currency=currencies[c.currency],
                    summa=c.summa,
                    periodtype=periodtype,
                    periodlength=periodlength,
                ),
                "account_group": dict(account_group=groups[c.group]),
                "registration": dict(periodtype=periodtype, periodlength=periodlength),
                "affiliate": dict(affiliate=programs[c.program]),
            }[c.kind]
            ConditionFactory(promotion=promotion, ctype=c.kind, group=group, **fields)
        for k, (uselimit, use_count) in enumerate(spec.codes):
            text = f"P{n}C{k}"
            PromoCodeFactory(
                promotion=promotion,
                code=text,
                uselimit=uselimit,
                use_count=min(use_count, uselimit) if uselimit else use_count,
            )
            codes[text] = (n, (uselimit, min(use_count, uselimit) if uselimit else use_count))
    return provider, tariffs, customer, ids, codes


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    catalogue=st.lists(promotions, min_size=1, max_size=6),
    client=clients,
    order_lines=st.lists(lines, min_size=1, max_size=3),
    daily=st.sets(st.integers(0, 2), max_size=1),
    named=st.lists(st.integers(0, 11), max_size=3, unique=True),
)
def test_the_compiled_evaluator_agrees_with_the_reference(
    catalogue, client, order_lines, daily, named
):
    note(f"{catalogue=}\n{client=}\n{order_lines=}\n{daily=}\n{named=}")
    with transaction.atomic():
        provider, tariffs, customer, ids, codes = build(catalogue, client, daily)
        texts = sorted(codes)
        order_codes = [texts[i] for i in named if i < len(texts)] + ["NOSUCH"]
        order = Order(
            client_id=customer.pk,
            provider_id=provider.pk,
            at=NOW,
            lines=tuple(
                Line(tariffs[t].pk, period, price, "USD", kind)
                for t, kind, period, price in order_lines
            ),
            codes=tuple(order_codes),
        )
        explained = quote_order(order=order, explain=True)
        default = quote_order(order=order)
        transaction.set_rollback(True)

    # the reference: which promotions may apply at all, and each line's winner
    live = [n for n, p in enumerate(catalogue) if p.window == "live"]
    valid_codes = {
        n
        for text in order_codes
        if text in codes
        for n in [codes[text][0]]
        if reference_code_valid(codes[text][1])
    }
    coded_or_open = {n for n in live if not catalogue[n].codes or n in valid_codes}
    eligible = {n for n in coded_or_open if reference_holds(catalogue[n], client, order_lines)}
    for promotion in catalogue:
        for c in promotion.conditions:
            holds = reference_condition(c, client, order_lines)
            event(f"{c.kind} {'holds' if holds else 'fails'}")
    for line, got_explained, got_default in zip(
        order_lines, explained.lines, default.lines, strict=True
    ):
        offers = {n: reference_offer(catalogue[n], line, daily) for n in eligible}
        priced = {n: a for n, a in offers.items() if a is not None and a > 0}
        winner = min(priced, key=lambda n: (-priced[n], n)) if priced else None
        expected = (ids[winner] if winner is not None else None, priced.get(winner, Decimal(0)))
        # both answers agree with the reference on the winner and the discount
        for got in (got_explained, got_default):
            assert (got.promotion_id, got.discount) == expected
            assert [v.promotion_id for v in got.verdicts if v.applied] == (
                [expected[0]] if winner is not None else []
            )
        # the explained answer has every live promotion's verdict, in id order, and refuses for
        # its conditions exactly the promotions whose code (if any) passed and conditions did not:
        # every condition's outcome shows, whether or not it changes the winner
        assert [v.promotion_id for v in got_explained.verdicts] == [ids[n] for n in live]
        assert [
            n
            for n, v in zip(live, got_explained.verdicts, strict=True)
            if v.reason.startswith("condition not met")
        ] == [n for n in live if n in coded_or_open and n not in eligible]
        # the default answer is a part of it, word for word, and keeps every near miss: an
        # open promotion that would have given more than the winner but missed a condition
        reasons = {v.promotion_id: v for v in got_explained.verdicts}
        assert all(reasons[v.promotion_id] == v for v in got_default.verdicts)
        shown = {v.promotion_id for v in got_default.verdicts}
        for n in live:
            best = reference_offer(catalogue[n], line, daily)
            missed = n not in eligible and not catalogue[n].codes
            if missed and best and best > expected[1]:
                assert ids[n] in shown
    # the codes' verdicts agree too
    for verdict in explained.codes:
        known = verdict.code in codes
        n = codes[verdict.code][0] if known else None
        assert verdict.valid == (
            known and n in live and reference_code_valid(codes[verdict.code][1])
        )


# One condition alone decides -------------------------------------------------------------------
# Above, a condition shows only when it decides a promotion, so a fault at one condition's edge
# rarely does. Here one live promotion gives 10% on the line under exactly one condition, and its
# client's registration and expenses fall on that condition's edges.

LINE = (0, Kind.NEW, 1, Decimal(100))
TEN_PERCENT = DiscountSpec(
    tariffs=None, action="all", periods=(), percentage=Decimal(10), validity=None
)


@st.composite
def a_condition_and_a_client(draw) -> tuple[ConditionSpec, Client]:
    condition = draw(conditions)
    # at least two services, so a closed or unpaid one is often among them
    return condition, draw(clients_at(edges_of(condition.window), min_services=2))


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=a_condition_and_a_client())
def test_a_single_condition_gives_the_discount_exactly_when_the_reference_says_it_holds(drawn):
    condition, client = drawn
    note(f"{condition=}\n{client=}")
    holds = reference_condition(condition, client, [LINE])
    event(f"{condition.kind} {'holds' if holds else 'fails'}")
    promotion = PromotionSpec(window="live", discounts=[TEN_PERCENT], conditions=[condition])
    with transaction.atomic():
        provider, tariffs, customer, _, _ = build([promotion], client, daily=set())
        tariff, kind, period, price = LINE
        order = Order(
            client_id=customer.pk,
            provider_id=provider.pk,
            at=NOW,
            lines=(Line(tariffs[tariff].pk, period, price, "USD", kind),),
            codes=(),
        )
        (line,) = quote_order(order=order).lines
        transaction.set_rollback(True)

    assert line.discount == (Decimal("10.00") if holds else Decimal(0))
