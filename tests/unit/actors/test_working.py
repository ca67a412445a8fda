"""WorkingOrders keeps a running total that always equals the naive sum."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from trade_executor.actors.working import WorkingOrders

SYMBOLS = ["AAA", "BBB", "CCC"]
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(0, 5),
            st.sampled_from(SYMBOLS),
            st.integers(1, 50),
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal(500), places=2),
        ),
        st.tuples(st.just("fill"), st.integers(0, 5), st.integers(0, 60)),
        st.tuples(st.just("remove"), st.integers(0, 5)),
    ),
    max_size=40,
)
held_maps = st.dictionaries(st.sampled_from(SYMBOLS), st.integers(0, 60), max_size=3)


@settings(max_examples=200, deadline=None)
@given(operations, held_maps)
def test_the_running_total_equals_the_naive_sum(
    ops: list[tuple[Any, ...]], held: dict[str, int]
) -> None:
    book = WorkingOrders()
    naive: dict[int, list[Any]] = {}  # key -> [symbol, quantity, entry, filled]
    for op in ops:
        key = op[1]
        execution_id = UUID(int=key)
        if op[0] == "add":
            _, _, symbol, quantity, entry = op
            book.add(execution_id, symbol, quantity, entry)
            naive[key] = [symbol, quantity, entry, 0]
        elif op[0] == "fill":
            book.filled(execution_id, op[2])
            if key in naive:
                naive[key][3] = max(naive[key][3], op[2])
        else:
            book.remove(execution_id)
            naive.pop(key, None)
    expected = sum(
        (
            (q - min(q, max(filled, held.get(symbol, 0)))) * entry
            for symbol, q, entry, filled in naive.values()
        ),
        Decimal(0),
    )
    assert book.unfilled_value(held) == expected
    assert len(book) == len(naive)
