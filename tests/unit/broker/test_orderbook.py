"""index_orders: one listing indexed for the pollers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.builders import a_broker_order
from trade_executor.broker import index_orders
from trade_executor.domain.models import BrokerOrder, BrokerStatus

T0 = datetime(2026, 3, 9, 14, 30, tzinfo=UTC)


def order(order_id: int, **fields: Any) -> BrokerOrder:
    return a_broker_order(order_id, **{"updated_at": T0, **fields})


def test_orders_are_found_by_id_and_children_by_parent() -> None:
    index = index_orders(
        [order(1), order(2, parent_id=1), order(3, parent_id=1), order(4), order(5, parent_id=4)]
    )
    assert [index.get(i).order_id for i in (1, 2, 3, 4, 5)] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
    assert (index.children_of(1), index.children_of(4), index.children_of(2)) == ((2, 3), (5,), ())
    assert index.get(6) is None and 6 not in index and len(index) == 5


def test_id_zero_is_never_indexed() -> None:
    index = index_orders([order(0, status=BrokerStatus.FILLED), order(0), order(9)])
    assert 0 not in index and len(index.anonymous) == 2 and len(index) == 1


def test_a_repeated_id_keeps_the_entry_updated_last() -> None:
    older = order(8, status=BrokerStatus.SUBMITTED, updated_at=T0)
    newer = order(8, status=BrokerStatus.FILLED, updated_at=T0 + timedelta(seconds=2))
    for listing in ([older, newer], [newer, older]):
        found = index_orders(listing).get(8)
        assert found is not None and found.status is BrokerStatus.FILLED


def test_a_repeated_child_is_listed_once_under_its_parent() -> None:
    child = order(2, parent_id=1)
    again = order(2, parent_id=1, updated_at=T0 + timedelta(seconds=1))
    assert index_orders([order(1), child, again]).children_of(1) == (2,)


def test_an_empty_listing() -> None:
    index = index_orders([])
    assert len(index) == 0 and index.anonymous == () and index.children_of(1) == ()
