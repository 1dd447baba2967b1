"""The ordering rule of overlapping promotions (issue 16): priority, then discount, then id; the
first applies, an exclusive first stops, combinable ones stack on the price left, exclusive ones
below are skipped, and the line's discount stays within its price and the provider's cap."""

import datetime
from decimal import Decimal
from typing import NamedTuple

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from common.money import money_round
from promotions.engine import Line, Order, quote_order
from promotions.models import Discount, Promotion
from tests.factories import (
    ClientFactory,
    CurrencyFactory,
    DiscountFactory,
    PromotionFactory,
    ProviderFactory,
    TariffFactory,
)

NOW = datetime.datetime(2026, 6, 15, 12, 0, tzinfo=datetime.UTC)
EX, CO = Promotion.Combine.EXCLUSIVE, Promotion.Combine.COMBINABLE


class Spec(NamedTuple):
    priority: int
    combine: str
    value: str
    valuetype: str = "percent"


def build(specs: list[Spec], *, max_discount: str = "100"):
    provider = ProviderFactory(max_discount=Decimal(max_discount))
    client = ClientFactory(provider=provider)
    tariff = TariffFactory(provider=provider)
    ids = []
    for spec in specs:
        promotion = PromotionFactory(
            provider=provider,
            priority=spec.priority,
            combine=spec.combine,
            fromdate=datetime.date(2026, 1, 1),
            todate=None,
        )
        value = Decimal(spec.value)
        DiscountFactory(
            promotion=promotion,
            valuetype=spec.valuetype,
            percentage=value if spec.valuetype == "percent" else None,
            amount=None if spec.valuetype == "percent" else value,
        )
        ids.append(promotion.pk)
    return provider, client, tariff, ids


def quote_line(provider, client, tariff, price: str, *, explain: bool = True, currency=None):
    order = Order(
        client_id=client.pk,
        provider_id=provider.pk,
        at=NOW,
        lines=(Line(tariff.pk, 1, Decimal(price), currency or provider.currency.iso),),
    )
    return quote_order(order=order, explain=explain).lines[0]


# (promotions, max_discount, price, expected: per promotion (amount or None, reason start))
CASES = {
    "exclusive first stops the rest": (
        [Spec(1, EX, "10"), Spec(0, CO, "20")],
        "100",
        [("10.00", "applied: 10% off (10.00)"), (None, "not applied: promotion {0} is exclusive")],
    ),
    "combinable first: combinables stack on the price left, exclusive below skipped": (
        [Spec(1, CO, "10"), Spec(0, CO, "20"), Spec(0, EX, "50")],
        "100",
        [
            ("10.00", "applied: 10% off (10.00)"),
            ("18.00", "combined with promotion {0}: 20% off (18.00)"),
            (None, "not applied: below promotion {0} in priority"),
        ],
    ),
    "a larger discount goes first at equal priority": (
        [Spec(0, EX, "10"), Spec(0, EX, "30")],
        "100",
        [(None, "not applied: promotion {1} is exclusive"), ("30.00", "applied: 30% off")],
    ),
    "priority beats a larger discount": (
        [Spec(0, EX, "50"), Spec(5, EX, "5")],
        "100",
        [(None, "not applied: promotion {1} is exclusive"), ("5.00", "applied: 5% off")],
    ),
    "a tie goes to the lower id": (
        [Spec(0, EX, "10"), Spec(0, EX, "10")],
        "100",
        [("10.00", "applied"), (None, "not applied: promotion {0} is exclusive")],
    ),
    "tied combinables stack in id order": (
        [Spec(0, CO, "10"), Spec(0, CO, "10")],
        "100",
        [("10.00", "applied"), ("9.00", "combined with promotion {0}")],
    ),
    "three combinables name those before them": (
        [Spec(0, CO, "50"), Spec(0, CO, "20"), Spec(0, CO, "10")],
        "100",
        [
            ("50.00", "applied"),
            ("10.00", "combined with promotion {0}:"),
            ("4.00", "combined with promotions {0}, {1}:"),
        ],
    ),
    "the provider's cap cuts the stack": (
        [Spec(0, CO, "20"), Spec(0, CO, "10")],
        "25",
        [
            ("20.00", "applied: 20% off (20.00)"),
            (
                "5.00",
                "combined with promotion {0}: 10% off (5.00); capped at the provider's maximum of 25%",
            ),
        ],
    ),
    "the cap leaves nothing for the last": (
        [Spec(0, CO, "20"), Spec(0, CO, "10")],
        "20",
        [("20.00", "applied"), (None, "not applied: the line's discount is capped at 20%")],
    ),
    "a cap of nothing leaves every promotion out": (
        [Spec(0, CO, "10"), Spec(0, EX, "40")],
        "0",
        [
            (None, "not applied: promotion {1} is exclusive and goes first"),
            (None, "not applied: the line's discount is capped at 0%"),
        ],
    ),
    "the cap cuts an exclusive first": (
        [Spec(0, EX, "40")],
        "15",
        [("15.00", "applied: 40% off (15.00); capped")],
    ),
    "a fixed amount ranks by its amount on the line": (
        [Spec(0, CO, "10"), Spec(0, CO, "30", "amount")],
        "100",
        [
            ("7.00", "combined with promotion {1}: 10% off (7.00)"),
            ("30.00", "applied: 30 off (30.00)"),
        ],
    ),
    "a final price takes off the difference": (
        [Spec(0, EX, "10"), Spec(0, EX, "75", "price")],
        "100",
        [(None, "not applied: promotion {1} is exclusive"), ("25.00", "applied: price 75 (25.00)")],
    ),
    "an amount never takes more than the price": (
        [Spec(0, EX, "150", "amount")],
        "100",
        [("100.00", "applied: 150 off (100.00)")],
    ),
    "a final price above the line's price gives nothing": (
        [Spec(0, EX, "120", "price")],
        "100",
        [(None, "its discount comes to nothing on this line")],
    ),
    "a stacked final price applies to the price left": (
        [Spec(1, CO, "10"), Spec(0, CO, "80", "price")],
        "100",
        [("10.00", "applied"), ("10.00", "combined with promotion {0}: price 80 (10.00)")],
    ),
}


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_ordering_rule(case):
    specs, cap, expected = CASES[case]
    # given promotions as the case says
    provider, client, tariff, ids = build(specs, max_discount=cap)
    # when a line of 100.00 is quoted
    line = quote_line(provider, client, tariff, "100.00")
    # then each promotion gives what the rule says, with its verdict
    got = {a.promotion_id: a.discount for a in line.applied}
    verdicts = {v.promotion_id: v for v in line.verdicts}
    for pid, (amount, reason) in zip(ids, expected, strict=True):
        assert got.get(pid) == (Decimal(amount) if amount else None)
        assert verdicts[pid].applied == (amount is not None)
        assert verdicts[pid].reason.startswith(reason.format(*ids)), verdicts[pid].reason
    assert line.discount == sum(got.values(), Decimal(0))
    assert line.promotion_id == (line.applied[0].promotion_id if line.applied else None)


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_the_default_answer_names_every_stacked_promotion_in_the_explained_words():
    # given a combinable first, two combinables and an exclusive below
    provider, client, tariff, ids = build(
        [Spec(1, CO, "10"), Spec(0, CO, "20"), Spec(0, CO, "5"), Spec(0, EX, "50")]
    )
    # when quoted with and without explain
    explained = quote_line(provider, client, tariff, "100.00")
    default = quote_line(provider, client, tariff, "100.00", explain=False)
    # then the default answer carries the stacked ones, word for word
    assert [a.promotion_id for a in default.applied] == ids[:3]
    shown = {v.promotion_id for v in default.verdicts}
    assert set(ids[:3]) <= shown
    assert all(v in explained.verdicts for v in default.verdicts)


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_fixed_amount_gives_nothing_to_a_line_in_another_currency():
    # given an amount off (in the provider's currency) and a percentage, and a line in EUR
    provider, client, tariff, ids = build([Spec(0, EX, "30", "amount"), Spec(0, EX, "10")])
    CurrencyFactory(iso="EUR")
    # when quoted
    line = quote_line(provider, client, tariff, "100.00", currency="EUR")
    # then the percentage applies and the amount says why it does not
    verdicts = {v.promotion_id: v for v in line.verdicts}
    assert [(a.promotion_id, a.discount) for a in line.applied] == [(ids[1], Decimal("10.00"))]
    assert verdicts[ids[0]].reason == (
        f"discount {Discount.objects.get(promotion_id=ids[0]).pk} is in the provider's "
        "currency, the line is in EUR"
    )


# The property: the compiled walk agrees with a small obvious reference -----------------------

specs = st.builds(
    Spec,
    priority=st.integers(0, 2),
    combine=st.sampled_from([EX, CO]),
    value=st.sampled_from(["0", "5", "10", "12.5", "20", "33", "50", "80", "100", "150"]),
    valuetype=st.sampled_from(["percent", "percent", "amount", "price"]),
)


def reference_amount(spec: Spec, price: Decimal) -> Decimal:
    value = Decimal(spec.value)
    if spec.valuetype == "percent":
        off = price * min(value, Decimal(100)) / 100
    elif spec.valuetype == "amount":
        off = min(value, price)
    else:
        off = max(price - value, Decimal(0))
    return min(money_round(off, minor_units=2), price)


def reference(catalogue: list[Spec], price: Decimal, cap: Decimal) -> dict[int, Decimal]:
    full = {n: reference_amount(s, price) for n, s in enumerate(catalogue)}
    order = sorted(
        (n for n in full if full[n] > 0), key=lambda n: (-catalogue[n].priority, -full[n], n)
    )
    if not order:
        return {}
    first = order[0]
    stack = [first]
    if catalogue[first].combine == CO:
        stack += [n for n in order[1:] if catalogue[n].combine == CO]
    left, cap_left, out = price, money_round(price * cap / 100, minor_units=2), {}
    for n in stack:
        amount = min(reference_amount(catalogue[n], left), cap_left)
        if amount > 0:
            out[n] = amount
            left, cap_left = left - amount, cap_left - amount
    return out


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    catalogue=st.lists(
        specs.filter(lambda s: s.valuetype != "percent" or s.value != "150"), max_size=6
    ),
    price=st.sampled_from(["0.00", "9.99", "100.00", "250.50"]),
    cap=st.sampled_from(["100", "60", "25", "0"]),
)
def test_the_ordering_rule_agrees_with_the_reference(catalogue, price, cap):
    note(f"{catalogue=} {price=} {cap=}")
    with transaction.atomic():
        provider, client, tariff, ids = build(catalogue, max_discount=cap)
        default = quote_line(provider, client, tariff, price, explain=False)
        explained = quote_line(provider, client, tariff, price)
        transaction.set_rollback(True)
    expected = {
        ids[n]: amount for n, amount in reference(catalogue, Decimal(price), Decimal(cap)).items()
    }
    for got in (default, explained):
        assert {a.promotion_id: a.discount for a in got.applied} == expected
        assert [a.promotion_id for a in got.applied] == list(expected)
        assert {v.promotion_id for v in got.verdicts if v.applied} == set(expected)
    assert all(v in explained.verdicts for v in default.verdicts)
