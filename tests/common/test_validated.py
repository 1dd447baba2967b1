"""`validated`: one shared serializer instance per class gives what a fresh one's is_valid gives."""

import threading

from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from common.apis import validated
from promotions.apis import OrderInput, QuoteInput


def _fresh(serializer_class, data):
    """The reference: DRF as documented, a new instance bound to the data."""
    serializer = serializer_class(data=data)
    if serializer.is_valid():
        return "valid", serializer.validated_data
    return "invalid", serializer.errors


def _shared(serializer_class, data):
    try:
        return "valid", validated(serializer_class, data)
    except ValidationError as exc:
        return "invalid", exc.detail


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", " ", "1", "10.00", "-1", "1e3", "abc", "LOAD1", "new", "renewal"]),
    st.text(max_size=8),
    st.sampled_from(["2026-11-29T10:00:00Z", "2026-02-30", "9999-12-31T23:59:59Z"]),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
lines = st.fixed_dictionaries(
    {"tariff": scalars, "price": scalars, "currency": scalars},
    optional={"period": scalars, "kind": scalars, "service": scalars, "extra": json_values},
)
orders = st.fixed_dictionaries(
    {"client": scalars, "provider": scalars},
    optional={
        "at": scalars,
        "codes": st.one_of(st.lists(scalars, max_size=3), scalars),
        "lines": st.one_of(st.lists(lines, max_size=3), scalars, json_values),
        "explain": scalars,
    },
)


@settings(max_examples=400, deadline=None)
@given(
    data=st.one_of(orders, json_values), serializer_class=st.sampled_from([OrderInput, QuoteInput])
)
def test_shared_instance_answers_what_a_fresh_one_answers(data, serializer_class):
    # given any JSON body, order-shaped or not
    # when the shared instance and a fresh instance validate it
    # then both find it valid with the same data, or invalid with the same errors
    assert _shared(serializer_class, data) == _fresh(serializer_class, data)


def test_invalid_then_valid_data_leaves_nothing_behind():
    # given the shared instance has just refused an order
    bad = {"client": "x", "provider": 1, "lines": [{"tariff": 1, "price": "no", "currency": "USD"}]}
    good = {"client": 7, "provider": 1, "lines": [{"tariff": 1, "price": "5", "currency": "USD"}]}
    assert _shared(OrderInput, bad)[0] == "invalid"
    # when it validates a good one
    verdict, data = _shared(OrderInput, good)
    # then the good one is read on its own
    assert verdict == "valid"
    assert data == _fresh(OrderInput, good)[1]


def test_threads_sharing_the_instance_each_get_their_own_order():
    # given 8 threads validating different orders through the one shared instance at once
    def order(n):
        return {
            "client": n,
            "provider": n + 1,
            "codes": [f"CODE{n}"],
            "lines": [{"tariff": n, "period": n % 12 + 1, "price": f"{n}.50", "currency": "USD"}],
        }

    mismatches = []
    start = threading.Barrier(8)

    def work(n):
        start.wait()
        for i in range(300):
            given_order = order(n * 1000 + i)
            if validated(OrderInput, given_order) != _fresh(OrderInput, given_order)[1]:
                mismatches.append(given_order)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then every thread got exactly its own order back
    assert mismatches == []
