"""The redemption's two writers: the common order on PostgreSQL in one statement, every other
order (and every order on SQLite) statement by statement. Both must write the same rows and
refuse alike; the tests run each order through both."""

import datetime
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from common.actors import Actor
from common.models import History
from promotions import services
from promotions.engine import Kind, Line, Order
from promotions.models import (
    BudgetCharge,
    BudgetSpend,
    ClientBudgetSpend,
    PromoCode,
    PromoCodeUsage,
    Redemption,
)
from promotions.selectors import redemption_usages
from promotions.services import redemption as redemption_services
from tests.factories import (
    ClientFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromoCodeUsageFactory,
    PromotionFactory,
    ProviderFactory,
    ServiceFactory,
    TariffFactory,
    UserFactory,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

WRITERS = ["one statement", "statement by statement"]


@pytest.fixture(params=WRITERS)
def writer(request, monkeypatch) -> str:
    if request.param != "one statement":
        monkeypatch.setattr(redemption_services, "_fits_one_statement", lambda *a: False)
    return request.param


@pytest.fixture
def shop(db):
    promotion = PromotionFactory(fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    return promotion


def order_of(promotion, code: str) -> Order:
    """A new client's order of one line worth 10.00, naming `code`."""
    return Order(
        client_id=ClientFactory(provider=promotion.provider).pk,
        provider_id=promotion.provider_id,
        at=datetime.datetime.now(datetime.UTC),
        lines=(
            Line(
                tariff_id=TariffFactory(provider=promotion.provider).pk,
                period=1,
                price=Decimal("10.00"),
                currency="USD",
            ),
        ),
        codes=(code,),
    )


def renewal(promotion, client, service, *codes: str) -> Order:
    return Order(
        client_id=client.pk,
        provider_id=promotion.provider_id,
        at=datetime.datetime.now(datetime.UTC),
        lines=(
            Line(
                tariff_id=service.tariff_id,
                period=1,
                price=Decimal("10.00"),
                currency="USD",
                kind=Kind.RENEWAL,
                service_id=service.pk,
            ),
        ),
        codes=codes,
    )


def test_both_writers_write_the_same_rows(shop, writer):
    # given a code without a per-client limit, which the client holds live in slots 1 and 3
    # (slot 2's use was released), and a renewal of the client's service
    code = PromoCodeFactory(promotion=shop, code="SAME", use_count=5)
    client = ClientFactory(provider=shop.provider)
    for slot, status in ((1, "active"), (2, "released"), (3, "active")):
        PromoCodeUsageFactory(promocode=code, client=client, client_slot=slot, status=status)
    service = ServiceFactory(client=client, tariff=TariffFactory(provider=shop.provider))
    actor = Actor(user=UserFactory(username="till"), ip="10.0.0.9", action="api.redeem")
    # when the order is redeemed, its statements captured
    with CaptureQueriesContext(connection) as ctx:
        redemption, created = services.redemption_redeem(
            order=renewal(shop, client, service, "same"), idempotency_key="k1", actor=actor
        )
    # then the redemption stores the quote it answered, with its one usage
    stored = Redemption.objects.get()
    assert created and stored.pk == redemption.pk
    assert stored.quote == redemption.quote and stored.quote["discount_total"] == "1.00"
    assert (stored.idempotency_key, stored.caller, stored.status) == (
        "k1",
        f"user:{actor.user.pk}",
        "active",
    )
    # and the usage takes the lowest free slot, names the renewed service, and is the answer's
    usage = PromoCodeUsage.objects.get(redemption=stored)
    assert (usage.promocode_id, usage.client_id, usage.client_slot, usage.service_id) == (
        code.pk,
        client.pk,
        2,
        service.pk,
    )
    assert [(u.pk, u.promocode.code) for u in redemption.usages.all()] == [(usage.pk, "SAME")]
    # and the answer shows that usage as written, without reading it back
    with CaptureQueriesContext(connection) as answered:
        shown = redemption_usages(redemption=redemption)
    assert answered.captured_queries == []
    assert [(u.pk, u.promocode.code, u.promocode.promotion_id) for u in shown] == [
        (usage.pk, "SAME", shop.pk)
    ]
    # and a redemption loaded later reads the same
    loaded = redemption_usages(redemption=Redemption.objects.get(pk=redemption.pk))
    assert [(u.pk, u.promocode.code, u.status) for u in loaded] == [(usage.pk, "SAME", "active")]
    # and the code's use is taken once, with one history line of who redeemed it
    assert PromoCode.objects.get(pk=code.pk).use_count == 6
    line = History.objects.get(object_id=stored.pk, content_type__model="redemption")
    assert (line.desc, line.user_id, line.username, line.ip, line.action) == (
        "Order redeemed with SAME",
        actor.user.pk,
        "till",
        "10.0.0.9",
        "api.redeem",
    )
    # and the one-statement writer wrote it all in one statement, after the quote's reads
    writes = [q["sql"] for q in ctx.captured_queries if not q["sql"].startswith("SELECT")]
    writes = [sql for sql in writes if not sql.startswith(("SAVEPOINT", "RELEASE"))]
    assert len(writes) == (1 if writer == "one statement" else 4)


def test_both_writers_refuse_a_code_used_up_after_the_quote_and_write_nothing(
    shop, writer, monkeypatch
):
    # given a code with one use left, taken by another order right after this order's quote
    code = PromoCodeFactory(promotion=shop, code="LAST", uselimit=1)
    real_quote = redemption_services.quote_order

    def quote_then_use_up(**kwargs):
        quote = real_quote(**kwargs)
        PromoCode.objects.filter(pk=code.pk).update(use_count=1)
        return quote

    monkeypatch.setattr(redemption_services, "quote_order", quote_then_use_up)
    monkeypatch.setattr(
        redemption_services, "_guarded_quote", lambda order, actor: quote_then_use_up(order=order)
    )
    order = order_of(shop, "LAST")
    # when the order is redeemed
    with pytest.raises(services.RedemptionRefused) as refused:
        services.redemption_redeem(order=order, idempotency_key="k", actor=Actor.system("t"))
    # then it is refused as used up, and nothing of it is written
    assert refused.value.reason == "code LAST has been used up"
    assert not Redemption.objects.exists() and not PromoCodeUsage.objects.exists()
    assert not History.objects.filter(content_type__model="redemption").exists()
    assert PromoCode.objects.get(pk=code.pk).use_count == 1


def test_both_writers_quote_again_when_the_code_changes_after_the_quote(shop, writer, monkeypatch):
    # given a code whose dates an operator changes right after the order's first quote
    code = PromoCodeFactory(promotion=shop, code="SHIFT")
    real_quote = redemption_services.quote_order
    quotes = []

    def quote_then_change(**kwargs):
        quotes.append(real_quote(**kwargs))
        if len(quotes) == 1:
            services.promocode_update(promocode=code, actor=Actor.system("t"), uselimit=50)
        return quotes[-1]

    monkeypatch.setattr(redemption_services, "quote_order", quote_then_change)
    order = order_of(shop, "SHIFT")
    # when the order is redeemed
    redemption, created = services.redemption_redeem(
        order=order, idempotency_key="k", actor=Actor.system("t")
    )
    # then the first quote was dropped, and the code's use taken once under its new settings
    assert created and len(quotes) == 2
    assert PromoCode.objects.get(pk=code.pk).use_count == 1
    assert PromoCodeUsage.objects.filter(redemption=redemption).count() == 1
    assert Redemption.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_orders_of_one_client_written_by_different_writers_both_commit(monkeypatch):
    # given a client's two orders sharing code ONE: A names two codes (written statement by
    # statement: its usage first, ONE's lock last), B names ONE alone (one statement: ONE's
    # lock first), and A pauses between its usage and ONE's lock while B runs
    provider = ProviderFactory()
    first = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=first, percentage=Decimal("10"))
    second = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    second_tariff = TariffFactory(provider=provider)
    DiscountFactory(promotion=second, percentage=Decimal("50"), type="pricelist").pricelist.set(
        [second_tariff]
    )
    one = PromoCodeFactory(promotion=first, code="ONE")
    PromoCodeFactory(promotion=second, code="TWO")
    client = ClientFactory(provider=provider)
    now = datetime.datetime.now(datetime.UTC)
    line = Line(
        tariff_id=TariffFactory(provider=provider).pk, period=1, price=Decimal("10"), currency="USD"
    )
    other_line = Line(tariff_id=second_tariff.pk, period=1, price=Decimal("10"), currency="USD")
    orders = {
        "A": Order(
            client_id=client.pk,
            provider_id=provider.pk,
            at=now,
            lines=(line, other_line),
            codes=("ONE", "TWO"),
        ),
        "B": Order(
            client_id=client.pk, provider_id=provider.pk, at=now, lines=(line,), codes=("ONE",)
        ),
    }
    a_wrote_its_usages = threading.Event()
    real_carry = redemption_services._carry

    def carry_then_pause(redemption, usages, codes):
        real_carry(redemption, usages, codes)
        if threading.current_thread().name == "A":
            a_wrote_its_usages.set()
            time.sleep(1.0)

    monkeypatch.setattr(redemption_services, "_carry", carry_then_pause)
    results = {}

    def redeem(name):
        try:
            if name == "B":
                a_wrote_its_usages.wait(10)
            results[name] = services.redemption_redeem(
                order=orders[name], idempotency_key=name, actor=Actor.system("t")
            )
        except Exception as exc:  # the test reports what either order raised
            results[name] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=redeem, args=(name,), name=name) for name in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then both orders are redeemed (the one that met the other in the opposite lock order
    # counted again), and ONE's two uses hold two slots
    assert all(isinstance(r, tuple) and r[1] for r in results.values()), results
    assert PromoCode.objects.get(pk=one.pk).use_count == 2
    assert sorted(
        PromoCodeUsage.objects.filter(promocode=one).values_list("client_slot", flat=True)
    ) == [1, 2]


def test_a_retry_of_a_committed_key_answers_it_even_while_the_rules_keep_moving(
    shop, writer, monkeypatch
):
    # given a committed redemption of a code
    PromoCodeFactory(promotion=shop, code="AGAIN")
    order = order_of(shop, "AGAIN")
    committed, _ = services.redemption_redeem(
        order=order, idempotency_key="same", actor=Actor.system("t")
    )
    # and an operator renaming the promotion after every quote of the retry
    real_quote = redemption_services.quote_order
    renames = iter(range(100))

    def quote_then_change(**kwargs):
        quote = real_quote(**kwargs)
        services.promotion_update(
            promotion=shop, actor=Actor.system("t"), name=f"Renamed {next(renames)}"
        )
        return quote

    monkeypatch.setattr(redemption_services, "quote_order", quote_then_change)
    # when the same order is retried under its key
    answer, created = services.redemption_redeem(
        order=order, idempotency_key="same", actor=Actor.system("t")
    )
    # then the committed redemption answers, and nothing more is written
    assert (answer.pk, created) == (committed.pk, False)
    assert Redemption.objects.count() == 1 and PromoCodeUsage.objects.count() == 1


def test_both_writers_take_the_budget_and_refuse_when_it_ran_short_after_the_quote(
    shop, writer, monkeypatch
):
    # given a code of a promotion with a budget of 30.00 and a client budget of 12.00
    services.promotion_update(
        promotion=shop, actor=Actor.system("t"), budget=Decimal("30"), client_budget=Decimal("12")
    )
    PromoCodeFactory(promotion=shop, code="FUND")
    client = ClientFactory(provider=shop.provider)
    tariff = TariffFactory(provider=shop.provider)

    def order() -> Order:
        line = Line(tariff_id=tariff.pk, period=1, price=Decimal("100.00"), currency="USD")
        return Order(
            client_id=client.pk,
            provider_id=shop.provider_id,
            at=datetime.datetime.now(datetime.UTC),
            lines=(line,),
            codes=("FUND",),
        )

    # when the client redeems an order worth 10.00 of both budgets
    first, _ = services.redemption_redeem(
        order=order(), idempotency_key="a", actor=Actor.system("t")
    )
    # then both rows hold 10.00 and one charge names both
    assert BudgetSpend.objects.get(promotion=shop).spent == Decimal("10.00")
    assert ClientBudgetSpend.objects.get(promotion=shop, client=client).spent == Decimal("10.00")
    assert list(
        BudgetCharge.objects.values_list("redemption_id", "amount", "budgeted", "client_budgeted")
    ) == [(first.pk, Decimal("10.00"), True, True)]
    # when, without the client budget, another order's quote finds 20.00 left, but other
    # orders spend it before the write
    real_quote = redemption_services.quote_order
    spent_after_quote = []

    def quote_then_spend(**kwargs):
        quote = real_quote(**kwargs)
        if not spent_after_quote:
            spent_after_quote.append(True)
            BudgetSpend.objects.filter(promotion=shop).update(spent=Decimal("30.00"))
        return quote

    monkeypatch.setattr(redemption_services, "quote_order", quote_then_spend)
    monkeypatch.setattr(
        redemption_services, "_guarded_quote", lambda order, actor: quote_then_spend(order=order)
    )
    services.promotion_update(promotion=shop, actor=Actor.system("t"), client_budget=None)
    with pytest.raises(services.RedemptionRefused) as refused:
        services.redemption_redeem(order=order(), idempotency_key="b", actor=Actor.system("t"))
    # then it is refused with what is left, and nothing of it is kept
    assert refused.value.reason == "budget: 0.00 left, this order needs 10.00"
    assert Redemption.objects.count() == 1 and PromoCodeUsage.objects.count() == 1
    assert PromoCode.objects.get(code="FUND").use_count == 1
    assert BudgetSpend.objects.get(promotion=shop).spent == Decimal("30.00")
