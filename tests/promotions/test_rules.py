"""Compiled rule sets: every rule-changing service moves the provider's rules version, a quote
compiles once per version, every process sees a change at its next quote, and nothing correct
depends on the cache."""

import datetime
import os
import time
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.actors import Actor
from promotions import services
from promotions.engine import Line, Order, quote_order
from promotions.engine import rules as compiled
from promotions.engine.present import quote_as_dict
from promotions.engine.rules import rules_forget, rules_version
from promotions.models import Condition, Discount, Promotion, RulesVersion
from tests.factories import (
    ClientFactory,
    ConditionFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    TariffFactory,
)

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


@pytest.fixture
def shop():
    provider = ProviderFactory()
    promotion = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    discount = DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    tariff = TariffFactory(provider=provider)
    client = ClientFactory(provider=provider)
    order = Order(
        client_id=client.pk,
        provider_id=provider.pk,
        at=datetime.datetime.now(datetime.UTC),
        lines=(Line(tariff.pk, 1, Decimal("100.00"), "USD"),),
    )
    return {
        "provider": provider,
        "promotion": promotion,
        "discount": discount,
        "tariff": tariff,
        "order": order,
    }


def discount_of(shop) -> Decimal:
    return quote_order(order=shop["order"]).lines[0].discount


def reads_rules(ctx: CaptureQueriesContext) -> bool:
    table = Promotion._meta.db_table
    return any(table in q["sql"] and "FROM" in q["sql"] for q in ctx.captured_queries)


CHANGES = {
    "promotion_create": lambda s: services.promotion_create(
        actor=ACTOR, name="New", provider=s["provider"], fromdate=datetime.date(2020, 1, 1)
    ),
    "promotion_update": lambda s: services.promotion_update(
        promotion=s["promotion"], actor=ACTOR, name="Renamed"
    ),
    "promotion_archive": lambda s: services.promotion_archive(
        promotion=s["promotion"], actor=ACTOR
    ),
    "promotion_delete_many": lambda s: services.promotion_delete_many(
        promotions=[s["promotion"]], actor=ACTOR
    ),
    "discount_create": lambda s: services.discount_create(
        promotion=s["promotion"], actor=ACTOR, percentage=Decimal("30")
    ),
    "discount_update": lambda s: services.discount_update(
        discount=s["discount"], actor=ACTOR, percentage=Decimal("20")
    ),
    "discount_delete_many": lambda s: services.discount_delete_many(
        discounts=[s["discount"]], actor=ACTOR
    ),
    "condition_create": lambda s: services.condition_create(
        promotion=s["promotion"], actor=ACTOR, ctype=Condition.Type.SERVICE_COUNT, amount=1
    ),
    "promocode_create": lambda s: services.promocode_create(
        promotion=s["promotion"], actor=ACTOR, code="NEEDED"
    ),
    "promocodes_generate": lambda s: services.promocodes_generate(
        promotion=s["promotion"], actor=ACTOR, template="GEN-????", count=3
    ),
    "promocodes_import": lambda s: services.promocodes_import(
        promotion=s["promotion"], actor=ACTOR, rows=[{"code": "IMPORTED"}]
    ),
}


def explained(shop) -> dict:
    return quote_as_dict(quote_order(order=shop["order"], explain=True))


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_every_rule_changing_service_moves_the_version_and_the_next_quote_sees_it(shop, change):
    # given a quote made, so the provider's rules are compiled in this process and the cache
    before = explained(shop)
    version = rules_version(shop["provider"].pk)
    # when a service changes one of the provider's rules
    change(shop)
    # then the version moved, and the next quote answers what a cold start answers
    assert rules_version(shop["provider"].pk) != version
    warm = explained(shop)
    rules_forget()
    cache.clear()
    assert warm == explained(shop)
    if change is not CHANGES["promotion_update"]:  # a new name changes no answer
        assert warm != before


@pytest.mark.parametrize(
    "change",
    [CHANGES["condition_create"], CHANGES["condition_create"]],
    ids=["then update", "then delete"],
)
def test_condition_updates_and_deletions_move_the_version(shop, change, request):
    condition = change(shop)
    version = rules_version(shop["provider"].pk)
    if request.node.callspec.id == "then update":
        services.condition_update(condition=condition, actor=ACTOR, amount=0)
    else:
        services.condition_delete_many(conditions=[condition], actor=ACTOR)
    assert rules_version(shop["provider"].pk) != version
    assert discount_of(shop) == Decimal("10.00")


def test_code_updates_and_deletions_move_the_version(shop):
    code = services.promocode_create(promotion=shop["promotion"], actor=ACTOR, code="ONE")
    assert discount_of(shop) == 0  # the promotion needs its code now
    version = rules_version(shop["provider"].pk)
    services.promocode_update(promocode=code, actor=ACTOR, uselimit=5)
    assert rules_version(shop["provider"].pk) != version
    services.promocode_delete_many(promocodes=[code], actor=ACTOR)
    # without codes the promotion applies to every order again, at the next quote
    assert discount_of(shop) == Decimal("10.00")


def test_a_quote_compiles_the_rules_once_per_version(shop):
    # given a first quote, which compiles the provider's rules
    with CaptureQueriesContext(connection) as first:
        discount_of(shop)
    # when the same order is quoted again
    with CaptureQueriesContext(connection) as again:
        discount_of(shop)
    # then the rules are not read again: one version read and the client's facts only
    assert reads_rules(first) and not reads_rules(again)
    assert len(again.captured_queries) < len(first.captured_queries)
    # when a rule changes, the next quote compiles again and sees it
    services.discount_update(discount=shop["discount"], actor=ACTOR, percentage=Decimal("25"))
    with CaptureQueriesContext(connection) as changed:
        assert discount_of(shop) == Decimal("25.00")
    assert reads_rules(changed)


def test_another_process_takes_the_compiled_rules_from_the_cache(shop):
    # given rules compiled by one process
    discount_of(shop)
    # when another process (its own memory empty) quotes
    rules_forget()
    with CaptureQueriesContext(connection) as ctx:
        assert discount_of(shop) == Decimal("10.00")
    # then it read them from Django's cache, not from the database
    assert not reads_rules(ctx)


@pytest.fixture
def redis_cache(settings):
    """Django's cache on the machine's Redis (as with REDIS_URL), under a key prefix of this test's
    own, cleared after; skipped without a Redis, except in CI."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"needs Redis at {url}")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"promo-test-{os.getpid()}-{time.monotonic_ns()}",
        }
    }
    rules_forget()
    yield
    cache.clear()


def test_app_servers_share_compiled_rules_through_redis_and_see_a_change_at_once(shop, redis_cache):
    # given rules compiled by one app server, which put them in Redis
    discount_of(shop)
    # when another server (its own memory empty) quotes, then it takes them from Redis
    rules_forget()
    with CaptureQueriesContext(connection) as shared:
        assert discount_of(shop) == Decimal("10.00")
    assert not reads_rules(shared)
    # when a rule changes through one server, then the other's next quote compiles the new rules
    services.discount_update(discount=shop["discount"], actor=ACTOR, percentage=Decimal("25"))
    rules_forget()
    with CaptureQueriesContext(connection) as changed:
        assert discount_of(shop) == Decimal("25.00")
    assert reads_rules(changed)


def test_quotes_are_right_without_a_cache(shop, settings):
    # given no cache at all (and nothing in this process)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    rules_forget()
    assert discount_of(shop) == Decimal("10.00")
    # when a rule changes, then the next quote sees it
    services.discount_update(discount=shop["discount"], actor=ACTOR, percentage=Decimal("40"))
    rules_forget()
    assert discount_of(shop) == Decimal("40.00")


def test_a_cache_that_fails_does_not_fail_the_quote(shop, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(compiled.cache, "get", down)
    monkeypatch.setattr(compiled.cache, "set", down)
    rules_forget()
    assert discount_of(shop) == Decimal("10.00")


def test_rules_read_while_they_change_are_not_kept_under_the_old_version(shop, monkeypatch):
    # given a rule change that commits while a quote compiles the rules of version 1
    real = compiled.compile_rules
    provider_id = shop["provider"].pk
    RulesVersion.objects.filter(provider_id=provider_id).update(version=1)

    def change_then_compile(provider_id, version, day):
        # the change commits after the quote read version 1, before it read the rules
        Discount.objects.filter(pk=shop["discount"].pk).update(percentage=Decimal("50"))
        RulesVersion.objects.filter(provider_id=provider_id).update(version=2)
        return real(provider_id, version, day)

    monkeypatch.setattr(compiled, "compile_rules", change_then_compile)
    rules_forget()
    cache.clear()
    discount_of(shop)
    monkeypatch.setattr(compiled, "compile_rules", real)
    # when the database comes back to version 1 (a restored backup)
    Discount.objects.filter(pk=shop["discount"].pk).update(percentage=Decimal("10"))
    RulesVersion.objects.filter(provider_id=provider_id).update(version=1)
    # then version 1 answers as version 1: what was read while it moved was kept nowhere
    assert discount_of(shop) == Decimal("10.00")
    rules_forget()
    assert discount_of(shop) == Decimal("10.00")


def test_promotions_of_other_providers_and_days_are_compiled_apart(shop):
    other = PromotionFactory(fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=other, percentage=Decimal("90"))
    tomorrow_only = PromotionFactory(
        provider=shop["provider"],
        fromdate=datetime.date.today() + datetime.timedelta(days=1),
        todate=None,
    )
    DiscountFactory(promotion=tomorrow_only, percentage=Decimal("60"))
    assert discount_of(shop) == Decimal("10.00")
    later = shop["order"].__class__(
        **{**shop["order"].__dict__, "at": shop["order"].at + datetime.timedelta(days=1)}
    )
    assert quote_order(order=later).lines[0].discount == Decimal("60.00")


def test_a_quote_names_the_version_it_was_made_at(shop):
    quote = quote_order(order=shop["order"])
    assert quote.rules_version == rules_version(shop["provider"].pk) != 0


def test_codes_are_read_per_quote_not_compiled(shop):
    # given a code whose counter moves without any rule changing
    code = PromoCodeFactory(promotion=shop["promotion"], code="LIVE", uselimit=1)
    order = shop["order"].__class__(**{**shop["order"].__dict__, "codes": ("LIVE",)})
    assert quote_order(order=order).codes[0].valid
    type(code).objects.filter(pk=code.pk).update(use_count=1)
    # then the next quote sees it used up
    assert "used up" in quote_order(order=order).codes[0].reason


def test_a_condition_written_around_the_services_is_seen_after_a_version_move(shop):
    ConditionFactory(promotion=shop["promotion"], ctype=Condition.Type.SERVICE_COUNT, amount=5)
    assert discount_of(shop) == 0
