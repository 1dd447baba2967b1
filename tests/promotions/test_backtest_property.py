"""Property: every order a backtest replays is decided as a quote at that moment with the same
catalogue decides it (the quote reads the client's facts for that one order; the backtest reads
them for a chunk of orders at once)."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from promotions.backtest import backtest_replay
from promotions.engine import quote_order
from promotions.engine.rules import compile_rules, rules_version
from promotions.models import Condition, Discount, Promotion
from tests.factories import (
    ClientFactory,
    ClientGroupFactory,
    ExpenseFactory,
    PromoCodeFactory,
    ProviderFactory,
    ServiceFactory,
    TariffFactory,
)

NOW = datetime.datetime(2026, 6, 15, 12, 0, tzinfo=datetime.UTC)
MARCH = datetime.date(2026, 3, 1)

discounts = st.tuples(
    st.sampled_from(["5", "10", "12.5", "30"]),
    st.sampled_from(["order", "prolong", "all"]),
    st.sampled_from([[], [1], [12]]),
)
conditions = st.one_of(
    st.tuples(st.just("service_count"), st.integers(0, 2)),
    st.tuples(st.just("paid_services"), st.integers(0, 2)),
    st.tuples(st.just("has_tariff"), st.integers(1, 2)),
    st.tuples(st.just("expense_sum"), st.sampled_from([0, 50, 150])),
    st.tuples(st.just("registration"), st.integers(1, 3)),
    st.tuples(st.just("account_group"), st.just(0)),
)
promotions = st.tuples(
    st.integers(-1, 1),  # priority
    st.sampled_from(["exclusive", "combinable"]),
    st.integers(-10, 20),  # first day, from March 1
    st.one_of(st.none(), st.integers(0, 40)),  # days it lasts (None: open end)
    st.lists(discounts, min_size=1, max_size=2),
    st.lists(conditions, max_size=2),
)
services = st.tuples(
    st.integers(0, 2),  # client
    st.integers(0, 1),  # tariff
    st.sampled_from([1, 12]),  # period
    st.integers(-20, 25),  # opened, days from March 1
    st.lists(st.integers(0, 12), min_size=1, max_size=3),  # charged, days after the last charge
    st.sampled_from(["20.00", "75.50", "120.00"]),
)


def condition(promotion, spec, currency, tariff, group) -> Condition:
    kind, value = spec
    fields = {
        "service_count": {"amount": value},
        "paid_services": {"amount": value},
        "has_tariff": {"pricelist": tariff, "amount": value},
        "expense_sum": {
            "summa": Decimal(value),
            "currency": currency,
            "periodtype": "month",
            "periodlength": 1,
        },
        "registration": {"periodtype": "month", "periodlength": value},
        "account_group": {"account_group": group},
    }[kind]
    return Condition(promotion=promotion, ctype=kind, **fields)


def promotion(provider, spec, name, currency, tariff, group) -> Promotion:
    priority, combine, first, days, its_discounts, its_conditions = spec
    fromdate = MARCH + datetime.timedelta(days=first)
    made = Promotion.objects.create(
        provider=provider,
        name=name,
        priority=priority,
        combine=combine,
        fromdate=fromdate,
        todate=None if days is None else fromdate + datetime.timedelta(days=days),
    )
    for percentage, action, periods in its_discounts:
        Discount.objects.create(
            promotion=made, percentage=Decimal(percentage), actiontype=action, period=periods
        )
    for spec_ in its_conditions:
        condition(made, spec_, currency, tariff, group).save()
    return made


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tested=promotions,
    others=st.lists(promotions, max_size=2),
    history=st.lists(services, min_size=1, max_size=5),
    registered_days_ago=st.lists(st.integers(20, 150), min_size=3, max_size=3),
    grouped=st.sets(st.integers(0, 2)),
    coded=st.booleans(),
    coded_others=st.sets(st.integers(0, 1)),
)
def test_a_replayed_order_is_decided_as_a_quote_at_its_moment(
    tested, others, history, registered_days_ago, grouped, coded, coded_others
):
    note(f"{tested=}\n{others=}\n{history=}\n{registered_days_ago=}\n{grouped=}")
    note(f"{coded=} {coded_others=}")
    with transaction.atomic():
        provider = ProviderFactory()
        usd = provider.currency
        tariffs = TariffFactory.create_batch(2, provider=provider)
        group = ClientGroupFactory()
        march = datetime.datetime(2026, 3, 1, 9, tzinfo=datetime.UTC)
        clients = [
            ClientFactory(
                provider=provider, registration_date=march - datetime.timedelta(days=days)
            )
            for days in registered_days_ago
        ]
        for n in grouped:
            clients[n].groups.add(group)
        for client_n, tariff_n, period, opened, gaps, price in history:
            opened_at = march + datetime.timedelta(days=opened, hours=client_n)
            service = ServiceFactory(
                client=clients[client_n],
                tariff=tariffs[tariff_n],
                period=period,
                opened_at=opened_at,
                paid=bool(tariff_n),
            )
            charged = opened_at
            for gap in gaps:
                charged += datetime.timedelta(days=gap, minutes=7)
                ExpenseFactory(
                    client=clients[client_n],
                    service=service,
                    amount=Decimal(price),
                    currency=usd,
                    created_at=charged,
                )
        draft = promotion(provider, tested, "tested", usd, tariffs[0], group)
        if coded:
            PromoCodeFactory(promotion=draft)
        for n, spec in enumerate(others):
            live = promotion(provider, spec, f"live {n}", usd, tariffs[1], group)
            if n in coded_others:
                PromoCodeFactory(promotion=live)

        replayed = list(
            backtest_replay(promotion=draft, start=MARCH, end=datetime.date(2026, 3, 31))
        )
        version = rules_version(provider.pk)
        for r in replayed:
            rules = compile_rules(
                provider.pk, version, timezone.localdate(r.order.at), also=[draft.pk]
            ).without_codes({draft.pk})
            alone = quote_order(order=r.order, rules=rules.restricted({draft.pk})).lines[0]
            assert (alone.promotion_id == draft.pk) is r.qualified
            assert alone.discount == r.discount_alone
            if r.qualified:
                line = quote_order(order=r.order, rules=rules).lines[0]
                given = {a.promotion_id: a.discount for a in line.applied}
                assert line.promotion_id == r.first
                assert given.get(draft.pk, Decimal(0)) == r.discount
                assert (draft.pk in given) is (r.winner == draft.pk)
        transaction.set_rollback(True)
