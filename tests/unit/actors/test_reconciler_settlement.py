"""Issue 20, finding 1: positions settled from the broker's truth by the reconciler (memory
store, scripted broker, both anyio backends). Over the real bridge and PostgreSQL:
tests/integration/test_positions_follow_broker.py."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from trade_executor.actors.messages import Message, PositionExited
from trade_executor.domain.execution import Execution
from trade_executor.domain.models import Action, BrokerOrder, BrokerStatus, Position
from trade_executor.domain.settlement import price_unknown, settle, with_exit_price
from trade_executor.observability.metrics import Metrics
from trade_executor_dev.testing import MemoryStore

from .test_reconciler import NOW, ScriptedBroker, execution, order, reconciler_for, seed

# The core's tests run on trio too (tests/conftest.py, `both_backends`).
pytestmark = pytest.mark.both_backends


def held_position(children: tuple[int, ...] = (11, 12)) -> Execution:
    return execution(
        children=children,
        position_state="open",
        stop_loss=Decimal(145),
        take_profit=Decimal(160),
        avg_fill_price=Decimal(150),
    )


def previous_session_stop(quantity: int = 100, price: str = "144.90") -> BrokerOrder:
    """A stop that filled while the bridge was down, listed again with order id 0."""
    return BrokerOrder(
        order_id=0,
        symbol="AAPL",
        action=Action.SELL,
        order_type="STP",
        quantity=quantity,
        status=BrokerStatus.FILLED,
        filled_qty=quantity,
        stop_price=Decimal(145),
        avg_fill_price=Decimal(price),
    )


def test_a_unique_finished_stop_settles_with_its_price_and_pnl() -> None:
    e = held_position()
    plan = settle(e, 0, [previous_session_stop()], NOW)
    assert plan is not None and plan.price_known and plan.closed
    c = plan.changes
    assert (c.exit_reason, c.exit_qty, c.exit_avg_price) == ("stop_loss", 100, Decimal("144.9000"))
    assert c.realized_pnl == Decimal("-510.00") and c.r_multiple == Decimal("-1.0200")


def test_two_lookalikes_leave_the_price_unknown_at_the_stops_loss() -> None:
    e = held_position()
    plan = settle(e, 0, [previous_session_stop(), previous_session_stop()], NOW)
    assert plan is not None and not plan.price_known
    assert plan.changes.exit_reason == "external"
    assert plan.changes.exit_avg_price is None
    assert plan.changes.realized_pnl == Decimal("-500.00")  # 100 x (145 - 150)


def test_the_broker_holding_the_whole_position_settles_nothing() -> None:
    e = held_position()
    assert settle(e, 100, [], NOW) is None
    assert settle(e, 130, [], NOW) is None
    assert settle(e, -100, [], NOW) is None


def test_an_operators_exit_price_recomputes_pnl_and_r() -> None:
    e = held_position()
    plan = settle(e, 0, [], NOW)
    assert plan is not None
    closed = replace(
        e,
        exit_reason="external",
        exit_qty=100,
        realized_pnl=plan.realized_pnl,
        position_state="closed",
    )
    assert price_unknown(closed)
    c = with_exit_price(closed, Decimal("147.50"))
    assert (c.exit_avg_price, c.realized_pnl, c.r_multiple) == (
        Decimal("147.5000"),
        Decimal("-250.00"),
        Decimal("-0.5000"),
    )


def stop_filled_listing() -> list[BrokerOrder]:
    entry = order(10, filled=100, status=BrokerStatus.FILLED)
    return [entry, previous_session_stop()]


@pytest.mark.anyio
async def test_a_flat_broker_settles_the_position_and_tells_the_executor() -> None:
    store, posted, metrics = MemoryStore(), list[Message](), Metrics()
    e = held_position(children=(11, 12))
    await seed(store, [e])
    broker = ScriptedBroker(stop_filled_listing(), [Position("MSFT", 5)])
    reconciler = reconciler_for(store, broker, posted, metrics)
    breaks = await reconciler.reconcile_once()
    assert breaks is not None and all(b.symbol != "AAPL" for b in breaks)
    row = await store.get_execution(e.id)
    assert row is not None
    assert (row.position_state, row.exit_reason, row.exit_qty) == ("closed", "stop_loss", 100)
    assert row.realized_pnl == Decimal("-510.00")
    exited = [m for m in posted if isinstance(m, PositionExited)]
    assert [(m.realized_pnl, m.closed) for m in exited] == [(Decimal("-510.00"), True)]


@pytest.mark.anyio
async def test_nothing_is_settled_while_the_bridge_is_not_connected_to_ib() -> None:
    store, posted, metrics = MemoryStore(), list[Message](), Metrics()
    e = held_position()
    await seed(store, [e])
    broker = ScriptedBroker([], [])
    broker.connected = False
    reconciler = reconciler_for(store, broker, posted, metrics)
    assert await reconciler.reconcile_once() is None
    row = await store.get_execution(e.id)
    assert row is not None and row.position_state == "open"
    assert posted == []


@pytest.mark.anyio
async def test_an_empty_answer_settles_only_when_the_next_pass_confirms_it() -> None:
    store, posted, metrics = MemoryStore(), list[Message](), Metrics()
    e = held_position()
    await seed(store, [e])
    broker = ScriptedBroker([], [])
    reconciler = reconciler_for(store, broker, posted, metrics)
    await reconciler.reconcile_once()
    row = await store.get_execution(e.id)
    assert row is not None and row.position_state == "open"
    broker.connected = False  # a reset window between the passes: the next one starts over
    await reconciler.reconcile_once()
    broker.connected = True
    await reconciler.reconcile_once()
    row = await store.get_execution(e.id)
    assert row is not None and row.position_state == "open"
    await reconciler.reconcile_once()  # the second connected pass in a row: settled
    row = await store.get_execution(e.id)
    assert row is not None and row.position_state == "closed" and price_unknown(row)
    assert row.realized_pnl == Decimal("-500.00")
    assert [m.realized_pnl for m in posted if isinstance(m, PositionExited)] == [Decimal("-500.00")]


def test_a_restored_row_names_the_stop_but_not_its_price() -> None:
    """After a bridge restart (same client id) a stop that filled while it was down comes back
    as ib_insync's completed order: order id 0, Filled, no fills, no price."""
    restored = BrokerOrder(
        order_id=0,
        symbol="AAPL",
        action=Action.SELL,
        order_type="STP",
        quantity=100,
        status=BrokerStatus.FILLED,
        stop_price=Decimal(145),
        avg_fill_price=Decimal(0),
    )
    plan = settle(held_position(), 0, [restored], NOW)
    assert plan is not None and not plan.price_known and plan.closed
    assert (plan.exit_reason, plan.changes.exit_qty) == ("stop_loss", 100)
    assert plan.changes.realized_pnl == Decimal("-500.00")


@pytest.mark.anyio
async def test_a_position_whose_exit_orders_the_bridge_no_longer_lists_is_unprotected() -> None:
    """A restart with another client id: the broker still holds the position, the bridge lists
    neither child (IB may still work them, unseen, until the close expires them). The ledger
    must not go on calling it protected: `unprotected`, as a lost protection is recorded."""
    store, posted, metrics = MemoryStore(), list[Message](), Metrics()
    e = held_position(children=(11, 12))
    await seed(store, [e])
    entry = order(10, filled=100, status=BrokerStatus.FILLED)
    broker = ScriptedBroker([entry], [Position("AAPL", 100)])
    changed: list[Execution] = []
    reconciler = reconciler_for(store, broker, posted, metrics)
    reconciler._on_settled = changed.append
    breaks = await reconciler.reconcile_once()
    assert breaks is not None and [b.kind.value for b in breaks] == ["unprotected_position"]
    row = await store.get_execution(e.id)
    assert row is not None
    assert (row.position_state, row.child_order_ids) == ("unprotected", ())
    assert [c.id for c in changed] == [e.id]  # the exits re-read it
    assert not [m for m in posted if isinstance(m, PositionExited)]


@pytest.mark.anyio
async def test_listed_final_children_and_a_close_under_way_are_left_to_the_exits() -> None:
    store, posted, metrics = MemoryStore(), list[Message](), Metrics()
    expired = held_position(children=(11, 12))
    closing = replace(held_position(children=(21, 22)), symbol="MSFT", order_id=20, exit_order_id=0)
    await seed(store, [expired, closing])
    listed = [
        order(10, filled=100, status=BrokerStatus.FILLED),
        order(11, action=Action.SELL, status=BrokerStatus.CANCELLED, parent_id=10),
        order(12, action=Action.SELL, order_type="STP", status=BrokerStatus.CANCELLED),
        order(20, symbol="MSFT", filled=100, status=BrokerStatus.FILLED),
    ]
    broker = ScriptedBroker(listed, [Position("AAPL", 100), Position("MSFT", 100)])
    reconciler = reconciler_for(store, broker, posted, metrics)
    breaks = await reconciler.reconcile_once()
    assert breaks is not None
    assert sorted((b.kind.value, b.symbol) for b in breaks) == [
        ("unprotected_position", "AAPL"),
        ("unprotected_position", "MSFT"),
    ]
    for e in (expired, closing):
        row = await store.get_execution(e.id)
        assert row is not None and row.position_state == "open"
