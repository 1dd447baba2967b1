"""The quote: conditions, discount rules, codes, tie-breaking and rounding, proven on billing data."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Service, Tariff
from promotions.engine import Kind, Line, Order, quote_order
from promotions.models import Condition, Discount, PromoCode
from tests.factories import (
    ClientFactory,
    ClientGroupFactory,
    ConditionFactory,
    ConditionGroupFactory,
    CurrencyFactory,
    DiscountFactory,
    ExpenseFactory,
    PromoCodeFactory,
    PromoCodeUsageFactory,
    PromotionFactory,
    ProviderFactory,
    ReferralFactory,
    ReferralProgramFactory,
    ServiceFactory,
    TariffFactory,
)

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2026, 6, 15, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def at_now():
    """The orders are quoted at NOW, with facts as of then: what the tests make, they make then."""
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def shop():
    provider = ProviderFactory()
    return {
        "provider": provider,
        "client": ClientFactory(
            provider=provider, registration_date=NOW - datetime.timedelta(days=400)
        ),
        "tariff": TariffFactory(provider=provider, price=Decimal("100")),
    }


def order_for(
    shop,
    *,
    price="100.00",
    period=1,
    kind=Kind.NEW,
    codes=(),
    tariff=None,
    lines=None,
    service=None,
):
    tariff = tariff or shop["tariff"]
    line = Line(
        tariff_id=tariff.pk,
        period=period,
        price=Decimal(price),
        currency=shop["provider"].currency.iso,
        kind=kind,
        service_id=service,
    )
    return Order(
        client_id=shop["client"].pk,
        provider_id=shop["provider"].pk,
        at=NOW,
        lines=tuple(lines or (line,)),
        codes=tuple(codes),
    )


def promotion_with(shop, percentage="10", **discount):
    promotion = PromotionFactory(
        provider=shop["provider"],
        fromdate=datetime.date(2026, 1, 1),
        todate=datetime.date(2026, 12, 31),
    )
    DiscountFactory(promotion=promotion, percentage=Decimal(percentage), **discount)
    return promotion


def only_line(shop, **order):
    return quote_order(order=order_for(shop, **order), explain=True).lines[0]


def test_a_promotion_without_conditions_discounts_every_line_of_its_provider(shop):
    # given a 10% promotion with no conditions and no codes
    promotion = promotion_with(shop)
    # when a 100.00 order is quoted
    line = only_line(shop)
    # then it takes 10.00 off and says so
    assert (line.discount, line.final_price, line.promotion_id) == (
        Decimal("10.00"),
        Decimal("90.00"),
        promotion.pk,
    )
    assert line.verdicts[0].applied and "10% off" in line.verdicts[0].reason


@pytest.mark.parametrize(
    ("fromdate", "todate", "archived", "applies"),
    [
        (
            datetime.date(2026, 6, 15),
            datetime.date(2026, 6, 15),
            False,
            True,
        ),  # inclusive both ends
        (datetime.date(2026, 6, 16), None, False, False),  # planned
        (datetime.date(2026, 1, 1), datetime.date(2026, 6, 14), False, False),  # expired
        (datetime.date(2026, 1, 1), None, True, False),  # archived
    ],
)
def test_only_promotions_live_at_the_moment_are_considered(
    shop, fromdate, todate, archived, applies
):
    # given a promotion with the window and archive flag of the case
    promotion = PromotionFactory(
        provider=shop["provider"], fromdate=fromdate, todate=todate, archived=archived
    )
    DiscountFactory(promotion=promotion)
    # when quoted on June 15th
    line = only_line(shop)
    # then it applies exactly when it is live that day
    assert (line.promotion_id == promotion.pk) is applies


@pytest.mark.parametrize(
    ("price", "percentage", "minor_units", "discount"),
    [
        ("99.99", "12.5", 2, "12.50"),  # 12.49875 rounds half up
        ("0.05", "50", 2, "0.03"),  # 0.025 rounds half up, not to even
        ("10.00", "33.3333", 2, "3.33"),
        ("1000", "15", 0, "150"),  # a currency without minor units
        ("7.777", "100", 3, "7.777"),  # never more than the price
    ],
)
def test_discounts_round_half_up_to_the_currency_minor_unit(
    shop, price, percentage, minor_units, discount
):
    # given a currency with the case's minor units
    currency = shop["provider"].currency
    currency.minor_units = minor_units
    currency.save()
    promotion_with(shop, percentage=percentage)
    # when quoted
    line = only_line(shop, price=price)
    # then the discount is rounded half up at that unit and the final price is never negative
    assert line.discount == Decimal(discount)
    assert line.final_price >= 0


def test_the_largest_discount_wins_and_the_others_say_why_not(shop):
    # given three promotions giving 10%, 30% and 20%
    small, large, middle = (promotion_with(shop, p) for p in ("10", "30", "20"))
    # when quoted
    line = only_line(shop)
    # then the 30% one wins and each loser names the winner
    assert line.promotion_id == large.pk
    reasons = {v.promotion_id: v for v in line.verdicts}
    assert reasons[large.pk].applied
    for loser in (small, middle):
        assert not reasons[loser.pk].applied
        assert f"promotion {large.pk}" in reasons[loser.pk].reason


def test_equal_discounts_go_to_the_lower_promotion_id(shop):
    # given two promotions with the same percentage, created in order
    first, second = promotion_with(shop, "15"), promotion_with(shop, "15")
    # when quoted
    line = only_line(shop)
    # then the older (lower id) one wins
    assert line.promotion_id == first.pk < second.pk


def test_a_promotion_takes_its_best_discount_for_the_line(shop):
    # given one promotion with a 5% discount for all and a 25% one for this tariff
    promotion = promotion_with(shop, "5")
    tariffed = DiscountFactory(
        promotion=promotion, percentage=Decimal("25"), type=Discount.Type.PRICELIST
    )
    tariffed.pricelist.set([shop["tariff"]])
    # when quoted
    line = only_line(shop)
    # then the line gets 25%
    assert line.discount == Decimal("25.00")


def test_a_pricelist_discount_covers_only_its_tariffs(shop):
    # given a discount for another tariff of the same provider
    other = TariffFactory(provider=shop["provider"])
    promotion = promotion_with(shop, "10", type=Discount.Type.PRICELIST)
    promotion.discounts.get().pricelist.set([other])
    # when this tariff is quoted
    line = only_line(shop)
    # then nothing applies and the verdict names the tariff
    assert line.promotion_id is None and line.discount == 0
    assert "does not cover tariff" in line.verdicts[0].reason


@pytest.mark.parametrize(
    ("actiontype", "kind", "applies"),
    [
        (Discount.ActionType.ORDER, Kind.NEW, True),
        (Discount.ActionType.ORDER, Kind.RENEWAL, False),
        (Discount.ActionType.PROLONG, Kind.NEW, False),
        (Discount.ActionType.PROLONG, Kind.RENEWAL, True),
        (Discount.ActionType.ALL, Kind.NEW, True),
        (Discount.ActionType.ALL, Kind.RENEWAL, True),
    ],
)
def test_actiontype_decides_new_orders_or_renewals(shop, actiontype, kind, applies):
    promotion_with(shop, actiontype=actiontype)
    line = only_line(shop, kind=kind)
    assert (line.discount > 0) is applies


def test_renewals_of_daily_charged_tariffs_never_get_a_discount(shop):
    # given a renewal discount and a tariff charged daily
    daily = TariffFactory(provider=shop["provider"], charge=Tariff.Charge.DAILY)
    promotion_with(shop, actiontype=Discount.ActionType.ALL)
    # when the daily tariff is renewed, or ordered new
    renewal = only_line(shop, tariff=daily, kind=Kind.RENEWAL)
    new = only_line(shop, tariff=daily, kind=Kind.NEW)
    # then only the new order gets the discount
    assert renewal.discount == 0 and "charged daily" in renewal.verdicts[0].reason
    assert new.discount == Decimal("10.00")


@pytest.mark.parametrize(("period", "applies"), [(1, False), (12, True), (24, True), (6, False)])
def test_discount_period_limits_the_order_periods(shop, period, applies):
    promotion_with(shop, period=[12, 24])
    line = only_line(shop, period=period)
    assert (line.discount > 0) is applies


@pytest.mark.parametrize(
    ("period", "validitylength", "discount"),
    [(12, 3, "2.50"), (12, 12, "10.00"), (1, 6, "10.00"), (6, 3, "5.00")],
)
def test_validity_months_covers_only_that_share_of_a_new_order(
    shop, period, validitylength, discount
):
    # given a 10% discount valid for some months from the order
    promotion_with(shop, validity=Discount.Validity.MONTHS, validitylength=validitylength)
    # when a period longer or shorter than that is ordered
    line = only_line(shop, period=period)
    # then only the valid months are discounted
    assert line.discount == Decimal(discount)


@pytest.mark.parametrize(("opened_months_ago", "applies"), [(2, True), (4, False)])
def test_validity_months_ends_renewal_discounts_after_the_order(shop, opened_months_ago, applies):
    # given a renewal of a service ordered some months ago, and a discount valid 3 months
    service = ServiceFactory(
        client=shop["client"],
        tariff=shop["tariff"],
        opened_at=NOW - datetime.timedelta(days=30 * opened_months_ago),
    )
    promotion_with(shop, validity=Discount.Validity.MONTHS, validitylength=3)
    # when the renewal is quoted
    line = only_line(shop, kind=Kind.RENEWAL, service=service.pk)
    # then it applies only within the validity
    assert (line.discount > 0) is applies


def condition_promotion(shop, **condition):
    promotion = promotion_with(shop)
    ConditionFactory(promotion=promotion, **condition)
    return promotion


def quoted_with_condition(shop, **condition):
    promotion = condition_promotion(shop, **condition)
    line = only_line(shop)
    return line.promotion_id == promotion.pk, line.verdicts[0].reason


@pytest.mark.parametrize(
    ("active", "comparison", "amount", "holds"),
    [
        (2, "ge", 2, True),
        (1, "ge", 2, False),
        (2, "lt", 2, False),
        (0, "eq", 0, True),
        (3, "gt", 2, True),
        (2, "le", 1, False),
    ],
)
def test_service_count_compares_active_services(shop, active, comparison, amount, holds):
    ServiceFactory.create_batch(active, client=shop["client"], status=Service.Status.ACTIVE)
    ServiceFactory(client=shop["client"], status=Service.Status.CLOSED)
    applied, reason = quoted_with_condition(
        shop, ctype=Condition.Type.SERVICE_COUNT, comparison=comparison, amount=amount
    )
    assert applied is holds
    if not holds:
        assert f"active services: {active}" in reason


@pytest.mark.parametrize(("paid", "holds"), [(1, False), (2, True)])
def test_paid_services_counts_paid_ones(shop, paid, holds):
    ServiceFactory.create_batch(paid, client=shop["client"], paid=True)
    ServiceFactory(client=shop["client"], paid=False)
    applied, _ = quoted_with_condition(shop, ctype=Condition.Type.PAID_SERVICES, amount=2)
    assert applied is holds


@pytest.mark.parametrize(("held", "holds"), [(0, False), (1, True)])
def test_has_tariff_counts_held_services_and_this_order(shop, held, holds):
    # given a condition "2 or more services of the tariff"; this order adds one
    ServiceFactory.create_batch(
        held, client=shop["client"], tariff=shop["tariff"], status=Service.Status.ACTIVE
    )
    ServiceFactory(client=shop["client"], tariff=shop["tariff"], status=Service.Status.CLOSED)
    applied, _ = quoted_with_condition(
        shop, ctype=Condition.Type.HAS_TARIFF, pricelist=shop["tariff"], amount=2
    )
    assert applied is holds


@pytest.mark.parametrize(("days_ago", "holds"), [(10, True), (40, False)])
def test_expense_sum_counts_the_window_and_currency_only(shop, days_ago, holds):
    # given 60.00 spent recently-or-not, 100.00 in another currency, and a condition ">= 50 in 30 days"
    currency = shop["provider"].currency
    ExpenseFactory(
        client=shop["client"],
        currency=currency,
        amount=Decimal("60"),
        created_at=NOW - datetime.timedelta(days=days_ago),
    )
    ExpenseFactory(
        client=shop["client"],
        currency=CurrencyFactory(iso="EUR", name="Euro"),
        amount=Decimal("100"),
        created_at=NOW,
    )
    ExpenseFactory(
        client=shop["client"],
        currency=currency,
        amount=Decimal("100"),
        created_at=NOW + datetime.timedelta(days=1),
    )
    applied, _reason = quoted_with_condition(
        shop,
        ctype=Condition.Type.EXPENSE_SUM,
        summa=Decimal("50"),
        currency=currency,
        periodtype="day",
        periodlength=30,
    )
    assert applied is holds, _reason


@pytest.mark.parametrize(("registered_days_ago", "holds"), [(5, True), (31, True), (40, False)])
def test_registration_within_a_period(shop, registered_days_ago, holds):
    client = shop["client"]
    client.registration_date = NOW - datetime.timedelta(days=registered_days_ago)
    client.save()
    applied, _ = quoted_with_condition(
        shop, ctype=Condition.Type.REGISTRATION, periodtype="month", periodlength=1
    )
    # May 15th to June 15th is 31 days
    assert applied is holds


@pytest.mark.parametrize("member", [True, False])
def test_account_group_membership(shop, member):
    group = ClientGroupFactory()
    if member:
        shop["client"].groups.add(group)
    applied, _ = quoted_with_condition(
        shop, ctype=Condition.Type.ACCOUNT_GROUP, account_group=group
    )
    assert applied is member


@pytest.mark.parametrize("referred_here", [True, False])
def test_affiliate_requires_a_referral_through_that_program(shop, referred_here):
    program = ReferralProgramFactory(provider=shop["provider"])
    ReferralFactory(
        program=program if referred_here else ReferralProgramFactory(provider=shop["provider"]),
        client=shop["client"],
    )
    applied, _ = quoted_with_condition(shop, ctype=Condition.Type.AFFILIATE, affiliate=program)
    assert applied is referred_here


@pytest.mark.parametrize(
    ("in_vip", "in_resellers", "active_services", "applies"),
    [
        (True, False, 1, True),
        (False, True, 1, True),
        (False, False, 1, False),
        (True, True, 0, False),
    ],
)
def test_groups_are_or_within_and_across(shop, in_vip, in_resellers, active_services, applies):
    # given (client in VIP OR client in Resellers) AND (active services >= 1)
    vip, resellers = ClientGroupFactory(), ClientGroupFactory()
    for flag, group in ((in_vip, vip), (in_resellers, resellers)):
        if flag:
            shop["client"].groups.add(group)
    ServiceFactory.create_batch(
        active_services, client=shop["client"], status=Service.Status.ACTIVE
    )
    promotion = promotion_with(shop)
    either = ConditionGroupFactory(promotion=promotion)
    for group in (vip, resellers):
        ConditionFactory(
            promotion=promotion,
            group=either,
            ctype=Condition.Type.ACCOUNT_GROUP,
            account_group=group,
        )
    ConditionFactory(promotion=promotion, ctype=Condition.Type.SERVICE_COUNT, amount=1)
    # when quoted
    line = only_line(shop)
    # then it applies only when both terms hold
    assert (line.promotion_id == promotion.pk) is applies


def test_a_failed_group_explains_each_alternative(shop):
    promotion = promotion_with(shop)
    either = ConditionGroupFactory(promotion=promotion)
    ConditionFactory(
        promotion=promotion, group=either, ctype=Condition.Type.SERVICE_COUNT, amount=5
    )
    ConditionFactory(
        promotion=promotion, group=either, ctype=Condition.Type.PAID_SERVICES, amount=3
    )
    reason = only_line(shop).verdicts[0].reason
    assert (
        "active services >= 5 fails" in reason
        and " OR " in reason
        and "paid services >= 3 fails" in reason
    )


def coded_promotion(shop, **code):
    promotion = promotion_with(shop, "20")
    return promotion, PromoCodeFactory(promotion=promotion, code="SAVE20", **code)


def test_a_promotion_with_codes_applies_only_with_one_of_them(shop):
    promotion, _ = coded_promotion(shop)
    without = only_line(shop)
    with_code = only_line(shop, codes=["save20 "])
    assert (
        without.promotion_id is None
        and "needs one of its promo codes" in without.verdicts[0].reason
    )
    assert (with_code.promotion_id, with_code.code, with_code.discount) == (
        promotion.pk,
        "SAVE20",
        Decimal("20.00"),
    )


@pytest.mark.parametrize(
    ("code", "uses", "reason"),
    [
        (
            {
                "active_time_type": PromoCode.ActiveTimeType.PERIOD,
                "fromdate": datetime.date(2026, 6, 16),
                "todate": datetime.date(2026, 7, 1),
            },
            0,
            "valid from",
        ),
        (
            {
                "active_time_type": PromoCode.ActiveTimeType.PERIOD,
                "fromdate": datetime.date(2026, 6, 1),
                "todate": datetime.date(2026, 6, 14),
            },
            0,
            "expired",
        ),
        ({"uselimit": 3, "use_count": 3}, 0, "used up"),
        ({"account_uselimit": 1}, 1, "per client"),
        (
            {"expiretype": PromoCode.ExpireType.PERIOD, "periodtype": "day", "periodlength": 7},
            1,
            "from first use",
        ),
    ],
)
def test_code_checks_refuse_with_a_reason(shop, code, uses, reason):
    # given a code failing one check (earlier uses by this client made 30 days ago)
    _, promo = coded_promotion(shop, **code)
    PromoCodeUsageFactory.create_batch(
        uses, promocode=promo, client=shop["client"], created_at=NOW - datetime.timedelta(days=30)
    )
    # when quoted with it
    quote = quote_order(order=order_for(shop, codes=["SAVE20"]), explain=True)
    # then the code is invalid, no discount applies, and both say why
    assert not quote.codes[0].valid and reason in quote.codes[0].reason
    assert quote.lines[0].discount == 0 and reason in quote.lines[0].verdicts[0].reason


@pytest.mark.parametrize(
    "code",
    [
        {
            "active_time_type": PromoCode.ActiveTimeType.PERIOD,
            "fromdate": datetime.date(2026, 6, 15),
            "todate": datetime.date(2026, 6, 15),
        },
        {"uselimit": 3, "use_count": 2},
        {"account_uselimit": 2},
    ],
)
def test_codes_within_their_window_and_limits_apply(shop, code):
    _, promo = coded_promotion(shop, **code)
    PromoCodeUsageFactory(promocode=promo, client=shop["client"], status="released")
    PromoCodeUsageFactory(promocode=promo, client=shop["client"])
    line = only_line(shop, codes=["SAVE20"])
    assert line.discount == Decimal("20.00")


def test_unknown_codes_and_codes_of_other_providers_are_reported_as_unknown(shop):
    PromoCodeFactory(code="ELSEWHERE")  # another provider's promotion
    quote = quote_order(order=order_for(shop, codes=["NOPE", "ELSEWHERE"]))
    assert [(c.code, c.valid, c.reason) for c in quote.codes] == [
        ("NOPE", False, "there is no promo code NOPE"),
        ("ELSEWHERE", False, "there is no promo code ELSEWHERE"),
    ]


def test_each_line_gets_its_own_winner(shop):
    # given 10% on everything and 40% on the second tariff only
    other = TariffFactory(provider=shop["provider"])
    everything = promotion_with(shop, "10")
    special = promotion_with(shop, "40", type=Discount.Type.PRICELIST)
    special.discounts.get().pricelist.set([other])
    currency = shop["provider"].currency.iso
    lines = (
        Line(shop["tariff"].pk, 1, Decimal("50.00"), currency),
        Line(other.pk, 1, Decimal("20.00"), currency),
    )
    quote = quote_order(order=order_for(shop, lines=lines))
    assert [(lq.promotion_id, lq.discount) for lq in quote.lines] == [
        (everything.pk, Decimal("5.00")),
        (special.pk, Decimal("8.00")),
    ]
    assert (quote.total, quote.discount_total) == (Decimal("57.00"), Decimal("13.00"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"client_id": 0}, "client"),
        ({"provider_id": 0}, "client"),
        ({"lines": ()}, "lines"),
    ],
)
def test_bad_orders_are_refused_with_the_field(shop, change, field):
    from dataclasses import replace

    from django.core.exceptions import ValidationError

    order = replace(order_for(shop), **change)
    with pytest.raises(ValidationError) as refused:
        quote_order(order=order)
    assert field in refused.value.message_dict


def test_a_tariff_of_another_provider_is_refused(shop):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="not a tariff of provider"):
        quote_order(order=order_for(shop, tariff=TariffFactory()))


def test_queries_per_quote_do_not_grow_with_promotions(shop):
    # given promotions with conditions of every kind that needs a query
    def build(n):
        for _ in range(n):
            promotion = condition_promotion(shop, ctype=Condition.Type.SERVICE_COUNT, amount=0)
            ConditionFactory(
                promotion=promotion,
                ctype=Condition.Type.EXPENSE_SUM,
                summa=0,
                currency=shop["provider"].currency,
                periodtype="day",
                periodlength=30,
            )
            PromoCodeFactory(promotion=promotion)

    def count_queries():
        with CaptureQueriesContext(connection) as ctx:
            quote_order(order=order_for(shop, codes=["ANY"]))
        return len(ctx.captured_queries)

    build(2)
    few = count_queries()
    build(20)
    # then the number of queries is the same
    assert count_queries() == few


def test_quotes_write_nothing(shop):
    _, promo = coded_promotion(shop, uselimit=5)
    with CaptureQueriesContext(connection) as ctx:
        quote_order(order=order_for(shop, codes=["SAVE20"]), explain=True)
    assert not [
        q
        for q in ctx.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    promo.refresh_from_db()
    assert promo.use_count == 0
    assert timezone.now()  # the clock is real: the quote used the order's own `at`


def test_the_default_answer_carries_the_winner_runner_up_near_misses_and_the_codes_promotions(
    shop,
):
    # given promotions of 50% (for clients with 5 services: missed), 40%, 30%, 10%, a used-up
    # code's 60% and a 70% whose code the order does not name
    missed = promotion_with(shop, "50")
    ConditionFactory(promotion=missed, ctype=Condition.Type.SERVICE_COUNT, amount=5)
    winner, runner_up, far = (promotion_with(shop, p) for p in ("40", "30", "10"))
    named, _ = coded_promotion(shop, uselimit=1, use_count=1)
    DiscountFactory(promotion=named, percentage=Decimal("60"))
    unnamed = promotion_with(shop, "70")
    PromoCodeFactory(promotion=unnamed, code="SECRET")
    order = order_for(shop, codes=["SAVE20"])
    # when quoted by default and explained
    default = quote_order(order=order)
    explained = quote_order(order=order, explain=True)
    # then both give the 40% winner
    assert default.lines[0].promotion_id == explained.lines[0].promotion_id == winner.pk
    # and the default answer names only the winner, the runner-up, the near miss and the
    # promotion of the code named, each with the explained answer's words
    shown = {v.promotion_id: v for v in default.lines[0].verdicts}
    assert set(shown) == {missed.pk, winner.pk, runner_up.pk, named.pk}
    assert all(v in explained.lines[0].verdicts for v in shown.values())
    assert "active services >= 5 fails" in shown[missed.pk].reason
    assert (
        shown[runner_up.pk].reason
        == f"not applied: promotion {winner.pk} is exclusive and goes first "
        "(it gives 40.00, this one 30.00)"
    )
    assert "used up" in shown[named.pk].reason
    assert (default.explained, explained.explained) == (False, True)
    assert {v.promotion_id for v in explained.lines[0].verdicts} == {
        missed.pk,
        winner.pk,
        runner_up.pk,
        far.pk,
        named.pk,
        unnamed.pk,
    }


def test_equal_discounts_name_the_other_as_runner_up(shop):
    first, second, _third = (promotion_with(shop, "15") for _ in range(3))
    line = quote_order(order=order_for(shop)).lines[0]
    assert line.promotion_id == first.pk
    assert [v.promotion_id for v in line.verdicts] == [first.pk, second.pk]


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("foreign client, no lines", {"client"}),
        ("no lines", {"lines"}),
        ("one of three tariffs foreign", {"lines"}),
        ("two currencies", {"lines"}),
    ],
)
def test_an_order_the_engine_cannot_read_names_what_is_wrong_first(shop, case, error):
    # given orders wrong in one way each, named in the order the engine checks them
    other = ProviderFactory()
    mine = [TariffFactory(provider=shop["provider"]) for _ in range(2)]
    line = Line(tariff_id=mine[0].pk, period=1, price=Decimal("10"), currency="USD")
    lines = {
        "foreign client, no lines": (),
        "no lines": (),
        "one of three tariffs foreign": (
            line,
            Line(tariff_id=mine[1].pk, period=1, price=Decimal("10"), currency="USD"),
            Line(
                tariff_id=TariffFactory(provider=other).pk,
                period=1,
                price=Decimal("10"),
                currency="USD",
            ),
        ),
        "two currencies": (
            line,
            Line(tariff_id=mine[1].pk, period=1, price=Decimal("10"), currency="EUR"),
        ),
    }[case]
    CurrencyFactory(iso="EUR")
    provider = other if case == "foreign client, no lines" else shop["provider"]
    order = Order(client_id=shop["client"].pk, provider_id=provider.pk, at=NOW, lines=lines)
    # when it is quoted
    with pytest.raises(ValidationError) as refused:
        quote_order(order=order)
    # then the first thing wrong is named
    assert set(refused.value.message_dict) == error
    if case == "one of three tariffs foreign":
        assert refused.value.message_dict["lines"] == [
            f"Tariff {lines[2].tariff_id} is not a tariff of provider {shop['provider'].pk}."
        ]
    if case == "two currencies":
        assert refused.value.message_dict["lines"] == ["An order is in one currency."]


def test_an_order_of_many_tariffs_and_codes_reads_each_row_once(shop):
    # given an order of 40 tariffs' lines naming 10 codes
    promotion = PromotionFactory(provider=shop["provider"], fromdate=datetime.date(2020, 1, 1))
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    codes = [PromoCodeFactory(promotion=promotion, code=f"MANY{i}").code for i in range(10)]
    tariffs = [TariffFactory(provider=shop["provider"]) for _ in range(40)]
    lines = tuple(
        Line(tariff_id=t.pk, period=1, price=Decimal("10"), currency="USD") for t in tariffs
    )
    order = Order(
        client_id=shop["client"].pk,
        provider_id=shop["provider"].pk,
        at=NOW,
        lines=lines,
        codes=tuple(codes),
    )
    # when it is quoted, its statements captured
    with CaptureQueriesContext(connection) as ctx:
        quote = quote_order(order=order)
    # then every line is answered, every code judged, and no statement read more rows than
    # the order names (the codes' rows are not multiplied by the tariffs')
    assert len(quote.lines) == 40 and all(lq.discount == Decimal("1.00") for lq in quote.lines)
    assert sorted(v.code for v in quote.codes) == sorted(codes)
    with connection.cursor() as cursor:
        for query in ctx.captured_queries:
            if query["sql"].startswith("SELECT") and "billing_client" in query["sql"]:
                cursor.execute(f"SELECT COUNT(*) FROM ({query['sql']}) AS context")
                assert cursor.fetchone()[0] <= len(codes)
