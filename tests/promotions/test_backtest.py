"""The backtest: past charges replayed as orders through the engine with one promotion added."""

import datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
import time_machine
from django.core.exceptions import ValidationError

from common.actors import Actor
from common.jobs import job_run
from common.models import Job
from promotions.backtest import backtest_replay, backtest_window_clean
from promotions.engine import Kind
from promotions.jobs import backtest_start
from promotions.models import BacktestOrder, Condition
from tests.factories import (
    ClientFactory,
    ConditionFactory,
    DiscountFactory,
    ExpenseFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    ServiceFactory,
    TariffFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 6, 15, 12, 0, tzinfo=datetime.UTC)
MARCH = datetime.date(2026, 3, 1), datetime.date(2026, 3, 31)


@pytest.fixture(autouse=True)
def at_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def shop() -> SimpleNamespace:
    provider = ProviderFactory()
    return SimpleNamespace(
        provider=provider,
        usd=provider.currency,
        tariff=TariffFactory(provider=provider, name="VPS S"),
        client=ClientFactory(provider=provider, registration_date=moment(2025, 1, 1)),
    )


def moment(year: int, month: int, day: int, hour: int = 12) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, tzinfo=datetime.UTC)


def draft(shop, percentage="10", **discount):
    """A promotion not started yet (it starts next month): what an operator backtests."""
    promotion = PromotionFactory(
        provider=shop.provider,
        fromdate=datetime.date(2026, 7, 1),
        todate=datetime.date(2026, 7, 31),
        name="Draft",
    )
    DiscountFactory(promotion=promotion, percentage=Decimal(percentage), **discount)
    return promotion


def live(shop, percentage, name="Live"):
    """A promotion live all year, without conditions."""
    promotion = PromotionFactory(
        provider=shop.provider,
        fromdate=datetime.date(2026, 1, 1),
        todate=datetime.date(2026, 12, 31),
        name=name,
    )
    DiscountFactory(promotion=promotion, percentage=Decimal(percentage))
    return promotion


def charge(shop, service, when, amount="100.00", client=None):
    return ExpenseFactory(
        client=client or shop.client,
        service=service,
        amount=Decimal(amount),
        currency=shop.usd,
        created_at=when,
    )


def service_of(shop, opened, client=None, tariff=None, period=1):
    return ServiceFactory(
        client=client or shop.client, tariff=tariff or shop.tariff, opened_at=opened, period=period
    )


@pytest.fixture
def run_inline(django_capture_on_commit_callbacks):
    """Start a backtest as a door does, then run its job as a worker would."""

    def run(promotion, window=MARCH) -> Job:
        with django_capture_on_commit_callbacks(execute=False):
            job = backtest_start(
                promotion=promotion, start=window[0], end=window[1], actor=Actor.system("test")
            )
        return job_run(job.pk)

    return run


def replay(promotion, window=MARCH):
    return list(backtest_replay(promotion=promotion, start=window[0], end=window[1]))


def test_a_services_first_charge_is_a_new_order_and_later_ones_renewals(shop):
    # given a service opened in February, charged then and twice in March, and one opened in March
    old = service_of(shop, moment(2026, 2, 10))
    charge(shop, old, moment(2026, 2, 10))
    charge(shop, old, moment(2026, 3, 10))
    fresh = service_of(shop, moment(2026, 3, 5))
    charge(shop, fresh, moment(2026, 3, 5))
    charge(shop, fresh, moment(2026, 3, 20))
    # when March is replayed
    replayed = replay(draft(shop))
    # then the March charges are replayed in time order, each the order it paid for
    assert [(r.line.service_id, r.line.kind) for r in replayed] == [
        (None, Kind.NEW),
        (old.pk, Kind.RENEWAL),
        (fresh.pk, Kind.RENEWAL),
    ]
    assert [r.order.at for r in replayed] == [
        moment(2026, 3, 5) - datetime.timedelta(microseconds=1),
        moment(2026, 3, 10) - datetime.timedelta(microseconds=1),
        moment(2026, 3, 20) - datetime.timedelta(microseconds=1),
    ]


def test_refunds_charges_without_a_service_and_charges_outside_the_window_are_not_orders(shop):
    # given, beside one March order: a refund of it, a charge with no service, and an April charge
    service = service_of(shop, moment(2026, 3, 1))
    paid = charge(shop, service, moment(2026, 3, 2))
    ExpenseFactory(
        client=shop.client,
        service=service,
        amount=Decimal("-100.00"),
        currency=shop.usd,
        refunds=paid,
        created_at=moment(2026, 3, 3),
    )
    charge(shop, None, moment(2026, 3, 4))
    charge(shop, service, moment(2026, 4, 1, 0))
    # when March is replayed
    replayed = replay(draft(shop))
    # then only the charge of the service is an order
    assert [r.expense_id for r in replayed] == [paid.pk]


def test_a_draft_qualifies_where_nothing_else_applies_and_gives_its_discount(shop, run_inline):
    # given a 10% draft and two 100.00 charges in March, none for other providers counted
    promotion = draft(shop, "10")
    service = service_of(shop, moment(2026, 3, 1))
    charge(shop, service, moment(2026, 3, 1))
    charge(shop, service, moment(2026, 3, 15), amount="50.00")
    other = ClientFactory()  # another provider's client and charge
    charge(shop, ServiceFactory(client=other), moment(2026, 3, 2), client=other)
    # when the backtest runs as a job
    job = run_inline(promotion)
    # then it would have given 10.00 + 5.00, all to one client, winning both orders
    result = job.result
    assert job.status == Job.Status.DONE
    assert (result["orders"], result["orders_qualified"], result["clients_qualified"]) == (2, 2, 1)
    assert result["discount_total"] == {shop.usd.iso: "15.00"}
    assert (result["won"], result["lost"]) == (2, 0)
    assert result["per_month"]["2026-03"]["discount"] == {shop.usd.iso: "15.00"}
    assert result["per_tariff"][0] | {"discount": None} == {
        "tariff": shop.tariff.pk,
        "name": "VPS S",
        "orders_qualified": 2,
        "won": 2,
        "discount": None,
    }
    rows = list(BacktestOrder.objects.filter(run=job.params["run"]).order_by("charged_at"))
    assert [(r.kind, r.price, r.discount, r.winner_id) for r in rows] == [
        ("new", Decimal("100.0000"), Decimal("10.0000"), promotion.pk),
        ("renewal", Decimal("50.0000"), Decimal("5.0000"), promotion.pk),
    ]


@pytest.mark.parametrize(
    ("live_percentage", "won", "lost", "given"),
    [("5", 1, 0, "10.00"), ("20", 0, 1, "0")],
)
def test_it_wins_or_loses_against_the_promotions_live_then(
    shop, run_inline, live_percentage, won, lost, given
):
    # given a promotion live in March giving `live_percentage`, and a 10% draft
    rival = live(shop, live_percentage, name="Spring")
    promotion = draft(shop, "10")
    charge(shop, service_of(shop, moment(2026, 3, 1)), moment(2026, 3, 2))
    # when March is backtested
    result = run_inline(promotion).result
    # then it wins against the smaller one and loses to the larger one, naming it
    assert (result["won"], result["lost"]) == (won, lost)
    assert result["discount_total"] == ({shop.usd.iso: given} if won else {})
    against = result["won_against"] if won else result["lost_to"]
    assert against == [{"promotion": rival.pk, "name": "Spring", "orders": 1}]
    assert result["discount_if_alone"] == {shop.usd.iso: "10.00"}


def test_the_reasons_it_did_not_apply_are_counted_without_each_clients_detail(shop, run_inline):
    # given a draft for clients registered within the last month, and three older clients' orders
    promotion = draft(shop)
    ConditionFactory(
        promotion=promotion,
        ctype=Condition.Type.REGISTRATION,
        periodtype="month",
        periodlength=1,
    )
    for registered in (moment(2025, 1, 1), moment(2025, 6, 1), moment(2025, 9, 9)):
        client = ClientFactory(provider=shop.provider, registration_date=registered)
        charge(
            shop,
            service_of(shop, moment(2026, 3, 1), client=client),
            moment(2026, 3, 2),
            client=client,
        )
    # when March is backtested
    result = run_inline(promotion).result
    # then one reason is counted three times
    assert result["orders_qualified"] == 0
    assert result["not_applied"] == [
        {"reason": "condition not met: registered within the last 1 month(s) fails", "orders": 3}
    ]


def test_the_clients_facts_are_as_of_each_orders_moment(shop):
    # given a draft for clients who spent at least 150.00 in the last month (the order's own
    # charge not counted), and a client charged 100.00 on March 1, 10 and 20
    promotion = draft(shop)
    ConditionFactory(
        promotion=promotion,
        ctype=Condition.Type.EXPENSE_SUM,
        summa=Decimal("150"),
        currency=shop.usd,
        periodtype="month",
        periodlength=1,
    )
    service = service_of(shop, moment(2026, 3, 1))
    for day in (1, 10, 20):
        charge(shop, service, moment(2026, 3, day))
    # when March is replayed
    replayed = replay(promotion)
    # then only the third order qualifies: 200.00 spent before it
    assert [r.qualified for r in replayed] == [False, False, True]


@pytest.mark.parametrize(
    ("start", "end", "field", "text"),
    [
        (datetime.date(2026, 3, 2), datetime.date(2026, 3, 1), "to", "ends before it starts"),
        (datetime.date(2025, 1, 1), datetime.date(2026, 3, 1), "to", "at most 366"),
        (datetime.date(2026, 7, 1), datetime.date(2026, 7, 2), "from", "in the future"),
    ],
)
def test_a_window_must_be_past_days_in_order_and_not_too_long(start, end, field, text):
    with pytest.raises(ValidationError) as caught:
        backtest_window_clean(start=start, end=end)
    assert list(caught.value.message_dict) == [field]
    assert text in caught.value.message_dict[field][0]


def test_the_rules_set_of_a_past_day_leaves_the_live_rules_cache_alone(shop):
    # given a draft backtested over March
    from promotions.engine.rules import _process_sets

    promotion = draft(shop)
    charge(shop, service_of(shop, moment(2026, 3, 1)), moment(2026, 3, 2))
    before = dict(_process_sets)
    # when it is replayed
    replay(promotion)
    # then no compiled set was remembered for live quotes
    assert dict(_process_sets) == before


def test_a_coded_promotion_is_tested_as_if_its_code_were_entered(shop):
    # given a draft with a promo code, and a live promotion with a code no past order named
    promotion = draft(shop, "10")
    PromoCodeFactory(promotion=promotion)
    PromoCodeFactory(promotion=live(shop, "50"))
    charge(shop, service_of(shop, moment(2026, 3, 1)), moment(2026, 3, 2))
    # when March is replayed
    (replayed,) = replay(promotion)
    # then the draft applies, and the live coded one does not take the order from it
    assert (replayed.qualified, replayed.winner, replayed.discount) == (
        True,
        promotion.pk,
        Decimal("10.00"),
    )


def test_a_new_order_is_replayed_before_its_service_was_the_clients(shop):
    # given a draft for clients holding at least one service of the tariff, counting the order
    promotion = draft(shop)
    ConditionFactory(
        promotion=promotion,
        ctype=Condition.Type.HAS_TARIFF,
        pricelist=shop.tariff,
        comparison="ge",
        amount=2,
    )
    # and a client's first service, opened an hour before its first charge, then a second one
    first = service_of(shop, moment(2026, 3, 1, 11))
    charge(shop, first, moment(2026, 3, 1, 12))
    second = service_of(shop, moment(2026, 3, 5, 11))
    charge(shop, second, moment(2026, 3, 5, 12))
    # when March is replayed
    replayed = replay(promotion)
    # then the first order counts itself only (1 < 2), the second the first service and itself
    assert [r.qualified for r in replayed] == [False, True]
    assert replayed[0].order.at == moment(2026, 3, 1, 11) - datetime.timedelta(microseconds=1)


def test_a_budget_is_spent_in_time_order_and_its_exhaustion_dated(shop, run_inline):
    # given a 10% draft with 15.00 to give in total, and 100.00 orders on March 1, 10 and 20
    promotion = draft(shop, "10")
    promotion.budget = Decimal("15.00")
    promotion.save()
    service = service_of(shop, moment(2026, 3, 1))
    for day in (1, 10, 20):
        charge(shop, service, moment(2026, 3, day))
    # when March is backtested
    result = run_inline(promotion).result
    # then the first order takes 10.00, the second finds 5.00 left and goes without it
    assert (result["orders_qualified"], result["won"]) == (1, 1)
    assert result["discount_total"] == {shop.usd.iso: "10.00"}
    assert result["budget_exhausted_on"] == "2026-03-10"
    assert result["budget"] | {"spent": None} == {
        "amount": "15.0000",
        "per_client": None,
        "period": "total",
        "spent": None,
        "exhausted_on": "2026-03-10",
        "orders_refused": 2,
    }
    assert result["budget"]["spent"] == {"total": "10.00"}
    assert result["not_applied"] == [{"reason": "budget too short", "orders": 2}]


def test_stacked_below_a_live_combinable_promotion_it_wins_combined(shop):
    # given a live combinable 20% promotion of higher priority, and a combinable 10% draft
    rival = live(shop, "20", name="Spring")
    rival.priority, rival.combine = 5, "combinable"
    rival.save()
    promotion = draft(shop, "10")
    promotion.combine = "combinable"
    promotion.save()
    charge(shop, service_of(shop, moment(2026, 3, 1)), moment(2026, 3, 2))
    # when March is replayed
    (replayed,) = replay(promotion)
    # then it applies on what the first left: 10% of 80.00
    assert (replayed.winner, replayed.first, replayed.discount) == (
        promotion.pk,
        rival.pk,
        Decimal("8.00"),
    )


def test_a_client_budget_holds_each_client_back_without_exhausting_the_promotion(shop, run_inline):
    # given a 10% draft giving a client at most 15.00 a month, and two clients' two March orders
    promotion = draft(shop, "10")
    promotion.client_budget, promotion.budget_period = Decimal("15.00"), "month"
    promotion.save()
    for n in range(2):
        client = ClientFactory(provider=shop.provider, registration_date=moment(2025, 1, 1))
        service = service_of(shop, moment(2026, 3, 1 + n), client=client)
        for day in (1, 10):
            charge(shop, service, moment(2026, 3, day + n), client=client)
    # when March is backtested
    result = run_inline(promotion).result
    # then each client gets the first 10.00 and goes without it the second time
    assert (result["won"], result["clients_qualified"]) == (2, 2)
    assert result["discount_total"] == {shop.usd.iso: "20.00"}
    assert result["not_applied"] == [{"reason": "client budget too short", "orders": 2}]
    assert result["budget"]["spent"] == {"2026-03": "20.00"}
    assert (result["budget"]["orders_refused"], result["budget_exhausted_on"]) == (2, None)
