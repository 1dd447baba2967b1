"""Money budgets (issue 16): a redemption reserves a promotion's discount against its budget by a
guarded update in its own short transaction, or the promotion does not apply (no partial
discounts); a quote shows what is left and reserves nothing; a release gives the amount back to
the period it was taken from. The races are proven on PostgreSQL with real parallel connections."""

import datetime
import zoneinfo
from decimal import Decimal
from types import SimpleNamespace

import pytest
import time_machine
from django.db.models import Sum

from common.actors import Actor
from promotions import services
from promotions.engine import Line, Order, quote_order
from promotions.models import BudgetCharge, BudgetSpend, ClientBudgetSpend, Promotion, Redemption
from tests.conftest import run_in_threads
from tests.factories import (
    ClientFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    TariffFactory,
)

ACTOR = Actor.system("test.budget")


@pytest.fixture
def shop(db) -> SimpleNamespace:
    """A promotion giving 10% with code SAVE (no use limit) and a budget of 100.00 in total."""
    provider = ProviderFactory()
    promotion = PromotionFactory(
        provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None, budget=Decimal("100")
    )
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    PromoCodeFactory(promotion=promotion, code="SAVE")
    return SimpleNamespace(
        provider=provider, promotion=promotion, tariff=TariffFactory(provider=provider)
    )


def order_for(shop, client, *codes: str, price: str = "100.00") -> Order:
    return Order(
        client_id=client.pk,
        provider_id=shop.provider.pk,
        at=datetime.datetime.now(datetime.UTC),
        lines=(Line(shop.tariff.pk, 1, Decimal(price), "USD"),),
        codes=codes,
    )


def redeem(order: Order, key: str) -> Redemption:
    return services.redemption_redeem(order=order, idempotency_key=key, actor=ACTOR)[0]


def attempt(order: Order, key: str) -> Redemption | str:
    try:
        return redeem(order, key)
    except services.RedemptionRefused as exc:
        return exc.reason


def spent(promotion: Promotion, period: str = "total") -> Decimal:
    row = BudgetSpend.objects.filter(promotion=promotion, period=period).first()
    return row.spent if row else Decimal(0)


def live_charges(promotion: Promotion) -> Decimal:
    return BudgetCharge.objects.filter(
        promotion=promotion, redemption__status=Redemption.Status.ACTIVE
    ).aggregate(s=Sum("amount"))["s"] or Decimal(0)


def set_budget(promotion: Promotion, **fields) -> None:
    services.promotion_update(promotion=promotion, actor=ACTOR, **fields)


# One at a time ----------------------------------------------------------------------------------


def test_a_quote_shows_what_is_left_and_reserves_nothing(shop):
    client = ClientFactory(provider=shop.provider)
    # when an order worth 10.00 of the budget is quoted twice
    for _ in range(2):
        quote = quote_order(order=order_for(shop, client, "SAVE"))
        # then it shows 100.00 left and what the order needs, and nothing is spent
        [view] = quote.budgets
        assert (view.period, view.needs, view.left, view.client_left) == (
            "total",
            Decimal("10.00"),
            Decimal("100.00"),
            None,
        )
    assert spent(shop.promotion) == 0


def test_a_redemption_reserves_its_discount_and_the_next_quote_shows_less(shop):
    client = ClientFactory(provider=shop.provider)
    # when an order is redeemed
    redemption = redeem(order_for(shop, client, "SAVE"), "k1")
    # then its 10.00 is spent and charged to the total period, and a quote shows 90.00 left
    assert spent(shop.promotion) == Decimal("10.00")
    assert list(redemption.budget_charges.values_list("period", "amount")) == [
        ("total", Decimal("10.00"))
    ]
    assert quote_order(order=order_for(shop, client, "SAVE")).budgets[0].left == Decimal("90.00")


def test_an_order_needing_more_than_is_left_gets_no_discount_from_the_promotion(shop):
    # given 88.00 of the 100.00 spent
    client = ClientFactory(provider=shop.provider)
    redeem(order_for(shop, client, "SAVE", price="880.00"), "big")
    assert spent(shop.promotion) == Decimal("88.00")
    # when an order needing 15.00 is quoted without the code, and redeemed with it
    quote = quote_order(order=order_for(shop, client, "SAVE", price="150.00"))
    reason = attempt(order_for(shop, client, "SAVE", price="150.00"), "over")
    # then the quote gives no discount, saying why, and the redemption is refused the same way
    assert quote.lines[0].discount == 0
    assert [v.reason for v in quote.lines[0].verdicts] == [
        "budget: 12.00 left, this order needs 15.00"
    ]
    assert reason == "budget: 12.00 left, this order needs 15.00"
    assert spent(shop.promotion) == Decimal("88.00")
    # and an order that fits still takes the rest, to the cent
    redeem(order_for(shop, client, "SAVE", price="120.00"), "fits")
    assert spent(shop.promotion) == Decimal("100.00")


def test_without_the_budget_the_next_promotion_applies_instead(shop):
    # given the budgeted promotion open to every order, its budget used up, and a 5% promotion
    # without a budget
    services.promocode_delete_many(promocodes=shop.promotion.promocodes.all(), actor=ACTOR)
    client = ClientFactory(provider=shop.provider)
    redeem(order_for(shop, client, price="1000.00"), "all")
    other = PromotionFactory(
        provider=shop.provider, fromdate=datetime.date(2020, 1, 1), todate=None
    )
    DiscountFactory(promotion=other, percentage=Decimal("5"))
    # when an order is redeemed without a code
    redemption = redeem(order_for(shop, client), "next")
    # then the 5% applies, and the budgeted promotion says why it did not
    line = redemption.quote["lines"][0]
    assert (line["promotion"], line["discount"]) == (other.pk, "5.00")
    reasons = {v["promotion"]: v["reason"] for v in line["verdicts"]}
    assert reasons[shop.promotion.pk] == "budget: 0.00 left, this order needs 10.00"
    assert spent(shop.promotion) == Decimal("100.00")


def test_a_client_budget_limits_each_client_per_period(shop):
    set_budget(shop.promotion, budget=None, client_budget=Decimal("25"))
    first, second = ClientFactory.create_batch(2, provider=shop.provider)
    # when the first client redeems three orders worth 10.00 each, and the second one
    outcomes = [attempt(order_for(shop, first, "SAVE"), f"f{n}") for n in range(3)]
    other = attempt(order_for(shop, second, "SAVE"), "s0")
    # then the first gets two, the third is refused with the client's budget, the second gets one
    assert [isinstance(o, Redemption) for o in outcomes] == [True, True, False]
    assert outcomes[2] == "client budget: 5.00 left, this order needs 10.00"
    assert isinstance(other, Redemption)
    assert {
        c.client_id: c.spent for c in ClientBudgetSpend.objects.filter(promotion=shop.promotion)
    } == {first.pk: Decimal("20.00"), second.pk: Decimal("10.00")}


def test_a_release_gives_the_amount_back_to_the_period_it_was_taken_from(shop):
    set_budget(
        shop.promotion, budget_period=Promotion.BudgetPeriod.DAY, client_budget=Decimal("50")
    )
    client = ClientFactory(provider=shop.provider)
    # given a redemption on 1 March
    with time_machine.travel(datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC), tick=False):
        redemption = redeem(order_for(shop, client, "SAVE"), "march")
    # when it is released on 2 March, after a redemption of that day
    with time_machine.travel(datetime.datetime(2026, 3, 2, 12, tzinfo=datetime.UTC), tick=False):
        redeem(order_for(shop, client, "SAVE"), "next-day")
        services.redemption_release(redemption=redemption, actor=ACTOR)
        services.redemption_release(redemption=redemption, actor=ACTOR)  # twice: once
    # then 1 March is given its 10.00 back, and 2 March keeps its own
    assert spent(shop.promotion, "2026-03-01") == 0
    assert spent(shop.promotion, "2026-03-02") == Decimal("10.00")
    client_rows = ClientBudgetSpend.objects.filter(promotion=shop.promotion)
    assert dict(client_rows.values_list("period", "spent")) == {
        "2026-03-01": Decimal("0"),
        "2026-03-02": Decimal("10.00"),
    }


@pytest.mark.parametrize(
    "zone, before, after",
    [
        ("UTC", "2026-03-01T23:59:59+00:00", "2026-03-02T00:00:00+00:00"),
        # Midnight in Moscow (UTC+3) is 21:00 UTC: the day budget renews then, not at 00:00 UTC.
        ("Europe/Moscow", "2026-03-01T20:59:59+00:00", "2026-03-01T21:00:00+00:00"),
    ],
)
def test_a_day_budget_renews_at_midnight_in_the_servers_zone(shop, settings, zone, before, after):
    settings.TIME_ZONE = zone
    set_budget(shop.promotion, budget=Decimal("10"), budget_period=Promotion.BudgetPeriod.DAY)
    client = ClientFactory(provider=shop.provider)
    # given the day's budget used up a second before local midnight
    with time_machine.travel(datetime.datetime.fromisoformat(before), tick=False):
        redeem(order_for(shop, client, "SAVE"), "day-1")
        refused = attempt(order_for(shop, client, "SAVE"), "day-1-again")
    # when the next order comes at local midnight
    with time_machine.travel(datetime.datetime.fromisoformat(after), tick=False):
        renewed = attempt(order_for(shop, client, "SAVE"), "day-2")
    # then the first day refused it and the new day gives the whole budget again
    assert refused == "budget: 0.00 left, this order needs 10.00"
    assert isinstance(renewed, Redemption)
    local = zoneinfo.ZoneInfo(zone)
    days = [datetime.datetime.fromisoformat(t).astimezone(local).date() for t in (before, after)]
    assert dict(BudgetSpend.objects.values_list("period", "spent")) == {
        days[0].isoformat(): Decimal("10.00"),
        days[1].isoformat(): Decimal("10.00"),
    }


def test_a_budgeted_promotion_gives_nothing_to_a_line_in_another_currency(shop):
    from tests.factories import CurrencyFactory

    CurrencyFactory(iso="EUR")
    client = ClientFactory(provider=shop.provider)
    order = Order(
        client_id=client.pk,
        provider_id=shop.provider.pk,
        at=datetime.datetime.now(datetime.UTC),
        lines=(Line(shop.tariff.pk, 1, Decimal("100.00"), "EUR"),),
        codes=("SAVE",),
    )
    quote = quote_order(order=order, explain=True)
    assert quote.lines[0].discount == 0
    assert "its budget is in the provider's currency, the line is in EUR" in (
        quote.lines[0].verdicts[0].reason
    )


# Races, on PostgreSQL with real parallel connections -------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_32_redeemers_worth_10_against_a_budget_of_100_make_exactly_10(shop):
    clients = ClientFactory.create_batch(32, provider=shop.provider)
    # when 32 clients redeem an order worth 10.00 of the budget at once
    outcomes = run_in_threads(lambda c: attempt(order_for(shop, c, "SAVE"), f"r-{c.pk}"), clients)
    # then exactly 10 are redeemed, the others refused with the budget, and 100.00 is spent
    done = [o for o in outcomes if isinstance(o, Redemption)]
    refused = [o for o in outcomes if isinstance(o, str)]
    assert len(done) == 10 and Redemption.objects.count() == 10
    assert all(r.startswith("budget: ") and "this order needs 10.00" in r for r in refused)
    assert spent(shop.promotion) == Decimal("100.00") == live_charges(shop.promotion)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_client_budget_holds_under_parallel_orders_of_one_client(shop):
    set_budget(shop.promotion, budget=None, client_budget=Decimal("30"))
    client = ClientFactory(provider=shop.provider)
    # when one client sends 16 orders worth 10.00 at once
    outcomes = run_in_threads(
        lambda n: attempt(order_for(shop, client, "SAVE"), f"c-{n}"), list(range(16))
    )
    # then exactly 3 are redeemed and the client's row says 30.00
    assert sum(isinstance(o, Redemption) for o in outcomes) == 3
    row = ClientBudgetSpend.objects.get(promotion=shop.promotion, client=client)
    assert row.spent == Decimal("30.00") == live_charges(shop.promotion)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_releases_racing_redemptions_keep_spent_equal_to_the_live_charges(shop):
    # given the budget used up by 10 redemptions
    holders = ClientFactory.create_batch(10, provider=shop.provider)
    taken = [redeem(order_for(shop, c, "SAVE"), f"first-{c.pk}") for c in holders]
    assert spent(shop.promotion) == Decimal("100.00")
    newcomers = ClientFactory.create_batch(12, provider=shop.provider)
    jobs = [("release", r) for r in taken[:6]] + [("redeem", c) for c in newcomers]

    def run(job):
        what, target = job
        if what == "release":
            return services.redemption_release(redemption=target, actor=ACTOR)
        return attempt(order_for(shop, target, "SAVE"), f"new-{target.pk}")

    # when 6 are released while 12 new clients redeem, all at once
    outcomes = run_in_threads(run, jobs)
    # then spent equals the live redemptions' charges, within the budget
    done = [o for o in outcomes[6:] if isinstance(o, Redemption)]
    assert spent(shop.promotion) == live_charges(shop.promotion)
    assert spent(shop.promotion) == Decimal("10.00") * (4 + len(done))
    assert spent(shop.promotion) <= Decimal("100.00")
    assert all("budget: " in o for o in outcomes[6:] if isinstance(o, str))


def test_a_stacked_codes_usage_charges_the_lines_it_discounted(shop):
    # given the budgeted 10% made combinable, and a combinable 5.00 off with its own code below it
    from promotions.selectors import usage_charge

    services.promotion_update(promotion=shop.promotion, actor=ACTOR, combine="combinable")
    extra = PromotionFactory(
        provider=shop.provider,
        fromdate=datetime.date(2020, 1, 1),
        todate=None,
        combine="combinable",
    )
    DiscountFactory(promotion=extra, valuetype="amount", percentage=None, amount=Decimal("5"))
    PromoCodeFactory(promotion=extra, code="FIVE")
    # when an order names both codes
    redemption = redeem(order_for(shop, ClientFactory(provider=shop.provider), "SAVE", "FIVE"), "k")
    # then both codes are used, and each usage shows the line's charge after both discounts
    usages = {u.promocode.code: u for u in redemption.usages.select_related("promocode")}
    assert set(usages) == {"SAVE", "FIVE"}
    assert usage_charge(usages["FIVE"]) == usage_charge(usages["SAVE"]) == "85.00 USD"
    assert spent(shop.promotion) == Decimal("10.00")
