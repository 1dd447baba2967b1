"""promotions.services: redeeming an order's promo codes once per idempotency key, and releasing them."""

import datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.actors import Actor
from common.selectors import history_of
from promotions import services
from promotions.engine import Line, Order
from promotions.models import Condition, PromoCode, PromoCodeUsage, Redemption
from promotions.services import redemption as redemption_services
from tests.conftest import run_in_threads
from tests.factories import (
    ClientFactory,
    ConditionFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    ServiceFactory,
    TariffFactory,
)

NOW = datetime.datetime(2026, 5, 15, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def actor(operator) -> Actor:
    return Actor(user=operator, ip="10.0.0.7", action="test.redeem")


@pytest.fixture
def shop(db) -> SimpleNamespace:
    """A provider billing in USD, one tariff, and an open-ended promotion giving 10% off."""
    provider = ProviderFactory()
    promotion = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    return SimpleNamespace(
        provider=provider, tariff=TariffFactory(provider=provider), promotion=promotion
    )


def order_for(shop, client, *codes: str, price: str = "10.00", period: int = 1) -> Order:
    return Order(
        client_id=client.pk,
        provider_id=shop.provider.pk,
        at=datetime.datetime.now(datetime.UTC),
        lines=(
            Line(tariff_id=shop.tariff.pk, period=period, price=Decimal(price), currency="USD"),
        ),
        codes=codes,
    )


def redeem(order: Order, key: str, actor: Actor | None = None) -> tuple[Redemption, bool]:
    return services.redemption_redeem(
        order=order, idempotency_key=key, actor=actor or Actor.system("test.redeem")
    )


def refusal(order: Order, key: str) -> str:
    with pytest.raises(services.RedemptionRefused) as exc:
        redeem(order, key)
    return exc.value.reason


def live_usages(code: PromoCode) -> int:
    return PromoCodeUsage.objects.filter(
        promocode=code, status=PromoCodeUsage.Status.ACTIVE
    ).count()


def use_count(code: PromoCode) -> int:
    return PromoCode.objects.get(pk=code.pk).use_count


# Redeem -----------------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_redeem_records_one_use_of_the_code_and_stores_the_discounted_quote(shop, actor):
    # given a client and a code of the promotion used twice before
    client = ClientFactory(provider=shop.provider)
    code = PromoCodeFactory(promotion=shop.promotion, code="SPRING", uselimit=5, use_count=2)
    # when the client's order is redeemed with the code, typed in lower case
    redemption, created = redeem(order_for(shop, client, " spring "), "order-1", actor)
    # then one active redemption holds the quote with the discount ...
    assert created is True
    stored = Redemption.objects.get()
    assert stored == redemption
    assert (stored.client, stored.provider, stored.status, stored.idempotency_key) == (
        client,
        shop.provider,
        Redemption.Status.ACTIVE,
        "order-1",
    )
    assert stored.created_at == NOW
    line = stored.quote["lines"][0]
    assert (line["price"], line["discount"], line["final_price"]) == ("10.00", "1.00", "9.00")
    assert (line["promotion"], line["code"]) == (shop.promotion.pk, "SPRING")
    assert (stored.quote["total"], stored.quote["discount_total"]) == ("9.00", "1.00")
    # ... one live usage in the client's first slot, and the code's counter went up by one
    usage = PromoCodeUsage.objects.get()
    assert (usage.promocode, usage.client, usage.redemption) == (code, client, stored)
    assert (usage.status, usage.client_slot) == (PromoCodeUsage.Status.ACTIVE, 1)
    assert use_count(code) == 3
    # and the redemption's history tells which code was used and by whom
    entry = history_of(obj=stored).get()
    assert (entry.desc, entry.username, entry.ip, entry.action) == (
        "Order redeemed with SPRING",
        "operator",
        "10.0.0.7",
        "test.redeem",
    )


def test_redeeming_the_same_key_twice_returns_the_first_redemption_and_uses_nothing_more(shop):
    # given an order redeemed once under a key
    client = ClientFactory(provider=shop.provider)
    code = PromoCodeFactory(promotion=shop.promotion, code="TWICE")
    order = order_for(shop, client, "TWICE")
    first, _ = redeem(order, "retry-me")
    # when the same order is sent again under the same key (a retry), codes in another case
    again, created = redeem(order_for(shop, client, "twice"), "retry-me")
    # then the first redemption is the answer and nothing more is used
    assert (again, created) == (first, False)
    assert Redemption.objects.count() == 1
    assert PromoCodeUsage.objects.count() == 1
    assert use_count(code) == 1
    assert history_of(obj=first).count() == 1


@pytest.mark.parametrize(
    ("price", "period", "codes"),
    [
        pytest.param("20.00", 1, ("KEYED",), id="other price"),
        pytest.param("10.00", 12, ("KEYED",), id="other period"),
        pytest.param("10.00", 1, ("KEYED", "OTHER"), id="another code"),
        pytest.param("10.00", 1, (), id="no code"),
    ],
)
def test_reusing_a_key_for_a_different_order_is_refused(shop, price, period, codes):
    # given an order redeemed under a key, and a second valid code
    client = ClientFactory(provider=shop.provider)
    keyed = PromoCodeFactory(promotion=shop.promotion, code="KEYED")
    other = PromoCodeFactory(promotion=PromotionFactory(provider=shop.provider), code="OTHER")
    DiscountFactory(promotion=other.promotion, percentage=Decimal("50"))
    redeem(order_for(shop, client, "KEYED"), "key-1")
    # when another order comes under the same key
    with pytest.raises(services.RedemptionRefused) as exc:
        redeem(order_for(shop, client, *codes, price=price, period=period), "key-1")
    # then it is refused, naming the key, and nothing more is used
    assert exc.value.reason == "Idempotency key 'key-1' was used for a different order."
    assert Redemption.objects.count() == 1
    assert (use_count(keyed), use_count(other)) == (1, 0)


def test_reusing_a_key_for_another_client_is_refused(shop):
    # given an order redeemed under a key
    code = PromoCodeFactory(promotion=shop.promotion, code="MINE")
    redeem(order_for(shop, ClientFactory(provider=shop.provider), "MINE"), "key-1")
    # when another client's identical order comes under that key
    reason = refusal(order_for(shop, ClientFactory(provider=shop.provider), "MINE"), "key-1")
    # then it is refused rather than answered with the first client's redemption
    assert "used for a different order" in reason
    assert use_count(code) == 1


def test_an_exhausted_code_is_refused_and_nothing_is_saved(shop):
    # given a code used as often as its limit allows
    code = PromoCodeFactory(promotion=shop.promotion, code="GONE", uselimit=3, use_count=3)
    # when a client redeems it
    reason = refusal(order_for(shop, ClientFactory(provider=shop.provider), "GONE"), "k")
    # then the reason says it is used up and nothing is recorded
    assert reason == "code GONE has been used up (3 of 3)"
    assert not Redemption.objects.exists()
    assert not PromoCodeUsage.objects.exists()
    assert use_count(code) == 3


def test_the_last_use_of_a_code_goes_to_the_first_client_only(shop):
    # given a code with one use left
    code = PromoCodeFactory(promotion=shop.promotion, code="LAST", uselimit=2, use_count=1)
    # when two clients redeem it one after the other
    redeem(order_for(shop, ClientFactory(provider=shop.provider), "LAST"), "a")
    reason = refusal(order_for(shop, ClientFactory(provider=shop.provider), "LAST"), "b")
    # then the second is refused and the counter stops at the limit
    assert "used up" in reason
    assert use_count(code) == 2
    assert Redemption.objects.count() == 1


def test_a_code_limited_to_one_use_per_client_refuses_that_client_a_second_time(shop):
    # given a code each client may use once, already redeemed by one client
    code = PromoCodeFactory(promotion=shop.promotion, code="ONCE", account_uselimit=1)
    client = ClientFactory(provider=shop.provider)
    redeem(order_for(shop, client, "ONCE"), "first")
    # when the same client redeems it again under another key
    reason = refusal(order_for(shop, client, "ONCE"), "second")
    # then it is refused and the code is still used once
    assert reason == "code ONCE may be used 1 time(s) per client"
    assert use_count(code) == 1
    # when another client redeems it
    other = ClientFactory(provider=shop.provider)
    redemption, created = redeem(order_for(shop, other, "ONCE"), "third")
    # then that client gets it, in its own first slot
    assert created is True
    assert list(redemption.usages.values_list("client_id", "client_slot")) == [(other.pk, 1)]
    assert use_count(code) == 2


def test_a_clients_uses_of_a_code_take_the_lowest_free_slots(shop, actor):
    # given a code each client may use twice, used twice by one client
    code = PromoCodeFactory(promotion=shop.promotion, code="DUO", account_uselimit=2)
    client = ClientFactory(provider=shop.provider)
    first, _ = redeem(order_for(shop, client, "DUO"), "first")
    second, _ = redeem(order_for(shop, client, "DUO"), "second")
    # when the first use is released and the client redeems the code again
    services.redemption_release(redemption=first, actor=actor)
    third, _ = redeem(order_for(shop, client, "DUO"), "third")
    # then the uses sit in slots 1 and 2, the new one in the freed slot 1
    assert list(
        PromoCodeUsage.objects.filter(status=PromoCodeUsage.Status.ACTIVE)
        .order_by("client_slot")
        .values_list("client_slot", "redemption_id")
    ) == [(1, third.pk), (2, second.pk)]
    assert use_count(code) == 2


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("fromdate", "todate", "expected"),
    [
        pytest.param(
            datetime.date(2026, 5, 16),
            datetime.date(2026, 6, 30),
            "code WINDOW is valid from 2026-05-16",
            id="not yet",
        ),
        pytest.param(
            datetime.date(2026, 4, 1),
            datetime.date(2026, 5, 14),
            "code WINDOW expired on 2026-05-14",
            id="ended",
        ),
    ],
)
def test_a_code_outside_its_dates_is_refused(shop, fromdate, todate, expected):
    # given a code valid only between two dates that do not include today
    code = PromoCodeFactory(
        promotion=shop.promotion,
        code="WINDOW",
        active_time_type=PromoCode.ActiveTimeType.PERIOD,
        fromdate=fromdate,
        todate=todate,
    )
    # when a client redeems it today
    reason = refusal(order_for(shop, ClientFactory(provider=shop.provider), "WINDOW"), "k")
    # then the reason names the window and nothing is used
    assert reason == expected
    assert use_count(code) == 0
    assert not Redemption.objects.exists()


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    "day", [datetime.date(2026, 5, 15), datetime.date(2026, 5, 20)], ids=["first", "last"]
)
def test_a_code_is_redeemable_on_the_first_and_the_last_day_of_its_dates(shop, day):
    # given a code whose dates start or end today
    code = PromoCodeFactory(
        promotion=shop.promotion,
        code="EDGE",
        active_time_type=PromoCode.ActiveTimeType.PERIOD,
        fromdate=min(day, datetime.date(2026, 5, 15)),
        todate=max(day, datetime.date(2026, 5, 15)),
    )
    # when a client redeems it today
    _, created = redeem(order_for(shop, ClientFactory(provider=shop.provider), "EDGE"), "k")
    # then it is used
    assert created is True
    assert use_count(code) == 1


def test_an_unknown_code_is_refused(shop):
    # given a code of another provider only
    PromoCodeFactory(code="FOREIGN")
    # when a client redeems a code nobody has and the foreign one
    client = ClientFactory(provider=shop.provider)
    reasons = [refusal(order_for(shop, client, text), text) for text in ("NOPE", "FOREIGN")]
    # then both are refused as unknown
    assert reasons == ["there is no promo code NOPE", "there is no promo code FOREIGN"]
    assert not Redemption.objects.exists()


def test_a_valid_code_whose_promotion_conditions_fail_is_refused_with_the_condition(shop):
    # given a code of a promotion only for clients with an active service, and a client with none
    code = PromoCodeFactory(promotion=shop.promotion, code="LOYAL")
    ConditionFactory(promotion=shop.promotion, ctype=Condition.Type.SERVICE_COUNT, amount=1)
    # when the client redeems it
    reason = refusal(order_for(shop, ClientFactory(provider=shop.provider), "LOYAL"), "k")
    # then the reason is the failed condition and nothing is used
    assert reason == "condition not met: active services >= 1 fails: active services: 0"
    assert use_count(code) == 0
    assert not Redemption.objects.exists()


def test_a_code_of_an_archived_promotion_is_refused(shop):
    # given a code whose promotion has been archived
    code = PromoCodeFactory(promotion=shop.promotion, code="OLD")
    shop.promotion.archived = True
    shop.promotion.save()
    # when a client redeems it
    reason = refusal(order_for(shop, ClientFactory(provider=shop.provider), "OLD"), "k")
    # then it is refused as not active
    assert reason == f"code OLD belongs to promotion {shop.promotion.pk}, which is not active now"
    assert use_count(code) == 0


# Release ----------------------------------------------------------------------------------------


def test_release_returns_the_uses_to_the_codes(shop, actor):
    # given a redemption that used two codes of two promotions on two lines, made at NOW
    client = ClientFactory(provider=shop.provider)
    first = PromoCodeFactory(promotion=shop.promotion, code="ONE", uselimit=5, use_count=2)
    other_tariff = TariffFactory(provider=shop.provider)
    second_promotion = PromotionFactory(
        provider=shop.provider, fromdate=datetime.date(2020, 1, 1), todate=None
    )
    discount = DiscountFactory(
        promotion=second_promotion, percentage=Decimal("50"), type="pricelist"
    )
    discount.pricelist.set([other_tariff])
    second = PromoCodeFactory(promotion=second_promotion, code="TWO")
    order = Order(
        client_id=client.pk,
        provider_id=shop.provider.pk,
        at=NOW,
        lines=(
            Line(tariff_id=shop.tariff.pk, period=1, price=Decimal("10"), currency="USD"),
            Line(tariff_id=other_tariff.pk, period=1, price=Decimal("10"), currency="USD"),
        ),
        codes=("ONE", "TWO"),
    )
    with time_machine.travel(NOW, tick=False):
        redemption, _ = redeem(order, "k")
    assert (use_count(first), use_count(second)) == (3, 1)
    # when it is released two hours later
    later = NOW + datetime.timedelta(hours=2)
    with time_machine.travel(later, tick=False):
        released = services.redemption_release(redemption=redemption, actor=actor)
    # then the codes' counters go back, the usages and the redemption are released, when it happened
    assert (use_count(first), use_count(second)) == (2, 0)
    assert set(PromoCodeUsage.objects.values_list("status", flat=True)) == {"released"}
    stored = Redemption.objects.get()
    assert (stored.status, stored.created_at, stored.released_at) == ("released", NOW, later)
    assert (released.status, released.released_at) == ("released", later)
    assert history_of(obj=stored).first().desc == "Redemption released; its code uses are free"


def test_releasing_twice_gives_the_uses_back_once(shop, actor):
    # given a released redemption of a code used by someone else too
    code = PromoCodeFactory(promotion=shop.promotion, code="TWICE")
    redeem(order_for(shop, ClientFactory(provider=shop.provider), "TWICE"), "other")
    redemption, _ = redeem(order_for(shop, ClientFactory(provider=shop.provider), "TWICE"), "k")
    with time_machine.travel(NOW, tick=False):
        services.redemption_release(redemption=redemption, actor=actor)
    # when it is released again a day later, from a stale copy that still says active
    assert redemption.status == Redemption.Status.ACTIVE
    with time_machine.travel(NOW + datetime.timedelta(days=1), tick=False):
        again = services.redemption_release(redemption=redemption, actor=actor)
    # then the counter went down once only, the release keeps its first time, one line says so
    assert (again.status, again.released_at) == ("released", NOW)
    assert Redemption.objects.get(pk=redemption.pk).released_at == NOW
    assert use_count(code) == 1
    assert live_usages(code) == 1
    descs = list(history_of(obj=redemption).values_list("desc", flat=True))
    assert descs.count("Redemption released; its code uses are free") == 1


def test_after_release_the_client_may_use_a_once_per_client_code_again(shop, actor):
    # given a once-per-client code the client redeemed and then released
    code = PromoCodeFactory(promotion=shop.promotion, code="ONCE", account_uselimit=1)
    client = ClientFactory(provider=shop.provider)
    first, _ = redeem(order_for(shop, client, "ONCE"), "first")
    services.redemption_release(redemption=first, actor=actor)
    # when the client redeems it again under a new key
    second, created = redeem(order_for(shop, client, "ONCE"), "second")
    # then the client's freed first slot is taken again
    assert created is True
    assert list(
        PromoCodeUsage.objects.order_by("id").values_list("redemption_id", "status", "client_slot")
    ) == [(first.pk, "released", 1), (second.pk, "active", 1)]
    assert use_count(code) == 1
    # and a third use is refused again
    assert "1 time(s) per client" in refusal(order_for(shop, client, "ONCE"), "third")


def test_releasing_a_code_at_its_limit_lets_another_client_take_the_use(shop, actor):
    # given a code whose only use has been taken
    code = PromoCodeFactory(promotion=shop.promotion, code="SOLO", uselimit=1)
    taken, _ = redeem(order_for(shop, ClientFactory(provider=shop.provider), "SOLO"), "a")
    waiting = ClientFactory(provider=shop.provider)
    assert "used up" in refusal(order_for(shop, waiting, "SOLO"), "b")
    # when the redemption is released
    services.redemption_release(redemption=taken, actor=actor)
    # then the other client may redeem it under the key it was refused with
    _, created = redeem(order_for(shop, waiting, "SOLO"), "b")
    assert created is True
    assert use_count(code) == 1


def test_a_released_use_does_not_start_the_codes_discount_period(shop, actor):
    # given a code that discounts for one month from the client's first use, redeemed in
    # January and released (the order was cancelled)
    PromoCodeFactory(
        promotion=shop.promotion,
        code="MONTH",
        expiretype=PromoCode.ExpireType.PERIOD,
        periodtype="month",
        periodlength=1,
    )
    client = ClientFactory(provider=shop.provider)
    with time_machine.travel("2026-01-10 10:00:00+00:00", tick=False):
        cancelled, _ = redeem(order_for(shop, client, "MONTH"), "cancelled")
        services.redemption_release(redemption=cancelled, actor=actor)
    # when the client first really uses the code in March
    with time_machine.travel("2026-03-10 10:00:00+00:00", tick=False):
        redemption, created = redeem(order_for(shop, client, "MONTH"), "real")
    # then the month starts now: the cancelled order never gave the client its discount
    assert created is True
    assert redemption.quote["discount_total"] == "1.00"


def test_a_second_code_of_the_same_promotion_is_refused_naming_that_code(shop):
    # given two codes of the same promotion
    first = PromoCodeFactory(promotion=shop.promotion, code="FIRST10")
    second = PromoCodeFactory(promotion=shop.promotion, code="SECOND10")
    # when an order names both
    reason = refusal(
        order_for(shop, ClientFactory(provider=shop.provider), *["FIRST10", "SECOND10"]), "k"
    )
    # then the refusal says why SECOND10 cannot be used, not that the promotion applied
    assert "SECOND10" in reason
    assert "applied:" not in reason
    assert (use_count(first), use_count(second)) == (0, 0)


# Concurrency (PostgreSQL) -----------------------------------------------------------------------


def attempt(order: Order, key: str) -> Redemption | services.RedemptionRefused:
    """Redeem, answering a refusal instead of raising it, so a thread's outcome can be counted."""
    try:
        return redeem(order, key)[0]
    except services.RedemptionRefused as exc:
        return exc


def split(outcomes) -> tuple[list[Redemption], list[str]]:
    done = [o for o in outcomes if isinstance(o, Redemption)]
    refused = [o.reason for o in outcomes if isinstance(o, services.RedemptionRefused)]
    assert len(done) + len(refused) == len(outcomes)
    return done, refused


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_clients_take_exactly_the_uses_a_code_has(shop):
    # given a code usable 5 times and 16 clients
    code = PromoCodeFactory(promotion=shop.promotion, code="RUSH", uselimit=5)
    clients = ClientFactory.create_batch(16, provider=shop.provider)
    # when all of them redeem it at once, each under its own key
    outcomes = run_in_threads(
        lambda c: attempt(order_for(shop, c, "RUSH"), f"rush-{c.pk}"), clients
    )
    # then exactly 5 succeed, the others are told it is used up, and the counter matches the rows
    done, refused = split(outcomes)
    assert len(done) == 5
    assert len(refused) == 11
    assert all("used up" in reason for reason in refused)
    assert use_count(code) == live_usages(code) == Redemption.objects.count() == 5
    assert len({r.client_id for r in done}) == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_client_in_parallel_gets_no_more_than_its_per_client_limit(shop):
    # given a code each client may use twice, and one client
    code = PromoCodeFactory(promotion=shop.promotion, code="PAIR", account_uselimit=2)
    client = ClientFactory(provider=shop.provider)
    # when the client sends 8 orders with it at once, under 8 keys
    outcomes = run_in_threads(
        lambda n: attempt(order_for(shop, client, "PAIR"), f"pair-{n}"), list(range(8))
    )
    # then exactly 2 succeed, in slots 1 and 2, and the rest are refused for the per-client limit
    done, refused = split(outcomes)
    assert len(done) == 2
    assert all("2 time(s) per client" in reason for reason in refused)
    assert use_count(code) == live_usages(code) == 2
    assert sorted(PromoCodeUsage.objects.values_list("client_slot", flat=True)) == [1, 2]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("account_uselimit", [None, 1], ids=["unlimited", "once per client"])
def test_parallel_retries_of_one_key_make_one_redemption(shop, account_uselimit):
    # given a code and one client's order
    code = PromoCodeFactory(
        promotion=shop.promotion, code="RETRY", account_uselimit=account_uselimit
    )
    order = order_for(shop, ClientFactory(provider=shop.provider), "RETRY")
    # when 8 threads send that order under the same key at once
    outcomes = run_in_threads(lambda n: attempt(order, "same-key"), list(range(8)))
    # then every thread is answered with the one redemption, which used the code once
    done, refused = split(outcomes)
    assert refused == []
    assert len({r.pk for r in done}) == 1
    assert Redemption.objects.get().pk == done[0].pk
    assert use_count(code) == PromoCodeUsage.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_releases_and_redemptions_keep_the_counter_equal_to_the_live_usages(shop):
    # given a code usable 10 times, used up by 10 clients
    code = PromoCodeFactory(promotion=shop.promotion, code="MIX", uselimit=10)
    holders = ClientFactory.create_batch(10, provider=shop.provider)
    taken = [redeem(order_for(shop, c, "MIX"), f"first-{c.pk}")[0] for c in holders]
    assert use_count(code) == 10
    newcomers = ClientFactory.create_batch(5, provider=shop.provider)
    jobs = [("release", r) for r in taken[:5]] + [("redeem", c) for c in newcomers]

    def run(job):
        what, target = job
        if what == "release":
            return services.redemption_release(redemption=target, actor=Actor.system("t"))
        return attempt(order_for(shop, target, "MIX"), f"new-{target.pk}")

    # when 5 of them are released while 5 new clients redeem it, all at once
    outcomes = run_in_threads(run, jobs)
    # then the 5 releases happened, each newcomer got a freed use or was told it is used up,
    # and the counter equals the live usages, within the limit
    released = outcomes[:5]
    assert [r.status for r in released] == [Redemption.Status.RELEASED] * 5
    done, refused = split(outcomes[5:])
    assert all("used up" in reason for reason in refused)
    assert use_count(code) == live_usages(code) == 5 + len(done)
    assert use_count(code) <= 10


# Lock-last ----------------------------------------------------------------------------------------


def test_the_code_is_locked_last_and_held_only_for_the_commit(shop):
    # given a code of the promotion with a per-client limit
    code = PromoCodeFactory(promotion=shop.promotion, code="LATE", account_uselimit=2)
    order = order_for(shop, ClientFactory(provider=shop.provider), "LATE")
    # when the order is redeemed
    with CaptureQueriesContext(connection) as ctx:
        redeem(order, "late")
    statements = [
        q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(("RELEASE", "SAVEPOINT"))
    ]
    # then the code's row is locked by its guarded update, the last statement before the commit
    taken = next(i for i, sql in enumerate(statements) if sql.startswith("UPDATE"))
    assert PromoCode._meta.db_table in statements[taken] and "use_count" in statements[taken]
    assert statements[taken + 1 :] == []
    # after the quote's reads, the redemption, the rules version with the client's uses and
    # the usage row were written or read without any lock of the code
    before = statements[:taken]
    assert any("rulesversion" in sql and PromoCodeUsage._meta.db_table in sql for sql in before)
    assert before[-1].startswith("INSERT") and PromoCodeUsage._meta.db_table in before[-1]
    assert any(Redemption._meta.db_table in sql and sql.startswith("INSERT") for sql in before)
    assert use_count(code) == 1


def test_a_redemption_quotes_again_when_a_rule_changes_under_it(shop, monkeypatch):
    # given a code, and an operator who raises the promotion's discount to 50% right after the
    # redemption's first quote (before its transaction takes the code)
    PromoCodeFactory(promotion=shop.promotion, code="MOVING")
    discount = shop.promotion.discounts.get()
    real_quote = redemption_services.quote_order
    quotes = []

    def quote_then_change(**kwargs):
        quote = real_quote(**kwargs)
        quotes.append(quote)
        if len(quotes) == 1:
            services.discount_update(
                discount=discount, actor=Actor.system("t"), percentage=Decimal("50")
            )
        return quote

    monkeypatch.setattr(redemption_services, "quote_order", quote_then_change)
    # when the order is redeemed
    redemption, created = redeem(
        order_for(shop, ClientFactory(provider=shop.provider), "MOVING"), "m"
    )
    # then the first quote was dropped, and the redemption holds the quote at the new rules
    assert created and len(quotes) == 2
    assert quotes[0].lines[0].discount == Decimal("1.00")
    assert redemption.quote["discount_total"] == "5.00"
    assert Redemption.objects.get().quote["discount_total"] == "5.00"
    assert PromoCodeUsage.objects.count() == 1


def test_rules_that_keep_moving_refuse_the_redemption_and_use_nothing(shop, monkeypatch):
    code = PromoCodeFactory(promotion=shop.promotion, code="RESTLESS")
    real_quote = redemption_services.quote_order
    quotes = []

    def quote_then_change(**kwargs):
        quotes.append(real_quote(**kwargs))
        services.promotion_update(
            promotion=shop.promotion, actor=Actor.system("t"), name=f"Renamed {len(quotes)}"
        )
        return quotes[-1]

    monkeypatch.setattr(redemption_services, "quote_order", quote_then_change)
    reason = refusal(order_for(shop, ClientFactory(provider=shop.provider), "RESTLESS"), "r")
    assert reason == "The promotions kept changing during the redemption; try again."
    assert len(quotes) == 3
    assert use_count(code) == 0 and not Redemption.objects.exists()


def test_a_usage_names_the_renewed_service_its_code_discounted(shop):
    # given a client's service and a code
    client = ClientFactory(provider=shop.provider)
    service = ServiceFactory(client=client, tariff=shop.tariff)
    PromoCodeFactory(promotion=shop.promotion, code="RENEW")
    order = Order(
        client_id=client.pk,
        provider_id=shop.provider.pk,
        at=datetime.datetime.now(datetime.UTC),
        lines=(
            Line(shop.tariff.pk, 1, Decimal("10"), "USD", kind="renewal", service_id=service.pk),
        ),
        codes=("RENEW",),
    )
    # when the renewal is redeemed with the code, then its usage names the service
    redeem(order, "renew")
    assert PromoCodeUsage.objects.get().service == service
