"""The compiled evaluator against a small, obviously correct reference written here: for generated
catalogues, clients and orders, both agree on every line's winner and discount, in the default
answer and the explained one, and the default answer keeps every near miss."""

import datetime
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from billing.models import Service, Tariff
from promotions.engine import Kind, Line, Order, quote_order
from promotions.models import Discount
from tests.factories import (
    ClientFactory,
    ClientGroupFactory,
    ConditionFactory,
    ConditionGroupFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
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
    kind: str  # service_count | account_group | registration
    comparison: str = "ge"
    amount: int = 0
    group: int = 0  # client group index 0-1
    days: int = 1
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
conditions = st.one_of(
    st.builds(
        ConditionSpec,
        kind=st.just("service_count"),
        comparison=st.sampled_from(sorted(COMPARE)),
        amount=st.integers(0, 3),
        or_group=st.one_of(st.none(), st.integers(0, 1)),
    ),
    st.builds(
        ConditionSpec,
        kind=st.just("account_group"),
        group=st.integers(0, 1),
        or_group=st.one_of(st.none(), st.integers(0, 1)),
    ),
    st.builds(
        ConditionSpec,
        kind=st.just("registration"),
        days=st.integers(1, 60),
        or_group=st.one_of(st.none(), st.integers(0, 1)),
    ),
)
promotions = st.builds(
    PromotionSpec,
    window=st.sampled_from(["live", "live", "live", "planned", "expired", "archived"]),
    discounts=st.lists(discounts, min_size=0, max_size=3),
    conditions=st.lists(conditions, max_size=3),
    codes=st.lists(
        st.tuples(st.one_of(st.none(), st.integers(1, 2)), st.integers(0, 2)), max_size=2
    ),
)
lines = st.tuples(
    st.integers(0, 2),
    st.sampled_from([Kind.NEW, Kind.RENEWAL]),
    st.sampled_from(PERIODS),
    st.sampled_from(PRICES),
)


@dataclass
class Client:
    active_services: int
    groups: frozenset[int]
    registered_days_ago: int


clients = st.builds(
    Client,
    active_services=st.integers(0, 3),
    groups=st.frozensets(st.integers(0, 1)),
    registered_days_ago=st.integers(0, 90),
)


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


def reference_holds(promotion: PromotionSpec, client: Client) -> bool:
    def holds(c: ConditionSpec) -> bool:
        if c.kind == "service_count":
            return COMPARE[c.comparison](client.active_services, c.amount)
        if c.kind == "account_group":
            return c.group in client.groups
        return client.registered_days_ago < c.days  # registered a day and an hour before

    terms: dict = {}
    for i, c in enumerate(promotion.conditions):
        terms.setdefault(("g", c.or_group) if c.or_group is not None else ("c", i), []).append(c)
    return all(any(holds(c) for c in term) for term in terms.values())


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
    customer = ClientFactory(
        provider=provider,
        registration_date=NOW - datetime.timedelta(days=client.registered_days_ago, hours=1),
    )
    customer.groups.set(groups[i] for i in client.groups)
    for _ in range(client.active_services):
        ServiceFactory(client=customer, tariff=tariffs[0], status=Service.Status.ACTIVE)
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
            fields = {
                "service_count": dict(comparison=c.comparison, amount=c.amount),
                "account_group": dict(account_group=groups[c.group]),
                "registration": dict(periodtype="day", periodlength=c.days),
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
    catalogue=st.lists(promotions, max_size=6),
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
    eligible = {
        n
        for n in live
        if (not catalogue[n].codes or n in valid_codes) and reference_holds(catalogue[n], client)
    }
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
        # the explained answer has every live promotion's verdict, in id order
        assert [v.promotion_id for v in got_explained.verdicts] == [ids[n] for n in live]
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
