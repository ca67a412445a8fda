"""Reconciliation with the broker, on plain values (`compare`) and as an actor over the memory
store and a scripted broker (both anyio backends). The real bridge is in
tests/integration/test_bridge_reconcile.py."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.support.builders import a_broker_order, an_execution
from trade_executor.actors.messages import FillsFound, Message
from trade_executor.actors.reconciler import Reconciler, compare
from trade_executor.broker.errors import BrokerUnavailable
from trade_executor.config.sources import load_settings
from trade_executor.domain.breaks import BreakKind
from trade_executor.domain.execution import Execution
from trade_executor.domain.models import (
    Action,
    BridgeHealth,
    BrokerOrder,
    BrokerStatus,
    Position,
)
from trade_executor.domain.states import ExecutionState
from trade_executor.observability.metrics import Metrics
from trade_executor_dev.testing import MemoryStore

# The core's tests run on trio too (tests/conftest.py, `both_backends`).
pytestmark = pytest.mark.both_backends

S = ExecutionState
NOW = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)


def execution(
    symbol: str = "AAPL",
    state: ExecutionState = S.FILLED,
    *,
    quantity: int = 100,
    filled: int = 100,
    order_id: int | None = 10,
    children: tuple[int, ...] = (11, 12),
    action: str = "BUY",
    **fields: Any,
) -> Execution:
    return an_execution(
        state,
        symbol=symbol,
        action=action,
        order_type="LMT",
        order_id=order_id,
        child_order_ids=children,
        quantity=quantity,
        entry_price=Decimal(150),
        risk_amount=Decimal(500),
        filled_qty=filled,
        trading_day=NOW.date(),
        **fields,
    )


def order(
    order_id: int,
    *,
    symbol: str = "AAPL",
    action: Action = Action.BUY,
    order_type: str = "LMT",
    quantity: int = 100,
    filled: int = 0,
    status: BrokerStatus = BrokerStatus.SUBMITTED,
    parent_id: int | None = None,
) -> BrokerOrder:
    return a_broker_order(
        order_id,
        symbol=symbol,
        action=action,
        order_type=order_type,
        quantity=quantity,
        status=status,
        filled_qty=filled,
        remaining_qty=quantity - filled,
        avg_fill_price=Decimal("150.10") if filled else None,
        parent_id=parent_id,
    )


def bracket_listed(
    entry_filled: int = 100,
    *,
    symbol: str = "AAPL",
    stop: BrokerStatus = BrokerStatus.SUBMITTED,
    stop_filled: int = 0,
) -> list[BrokerOrder]:
    entry_status = BrokerStatus.FILLED if entry_filled == 100 else BrokerStatus.SUBMITTED
    return [
        order(10, symbol=symbol, filled=entry_filled, status=entry_status),
        order(11, symbol=symbol, action=Action.SELL, parent_id=10),  # take-profit LMT
        order(
            12,
            symbol=symbol,
            action=Action.SELL,
            order_type="STP",
            parent_id=10,
            status=stop,
            filled=stop_filled,
        ),
    ]


def kinds(result: Any) -> list[tuple[str, str]]:
    return [(b.kind.value, b.symbol) for b in result.breaks]


# ---- compare ---------------------------------------------------------------------------------


def test_a_protected_position_the_ledger_explains_is_no_break() -> None:
    result = compare([execution()], bracket_listed(), [Position("AAPL", 100)], protection=True)
    assert result.breaks == () and result.fills_found == ()


def test_a_position_no_execution_explains_is_an_orphan() -> None:
    result = compare([], [], [Position("MSFT", 50)], protection=True)
    [found] = result.breaks
    assert (found.kind, found.symbol, found.execution_id) == (
        BreakKind.UNEXPLAINED_POSITION,
        "MSFT",
        None,
    )
    assert found.detail["broker_quantity"] == 50
    assert (found.detail["ledger_min"], found.detail["ledger_max"]) == (0, 0)


def test_a_quantity_the_executions_cannot_add_up_to_is_unexplained() -> None:
    result = compare([execution()], bracket_listed(), [Position("AAPL", 130)], protection=True)
    assert kinds(result) == [("unexplained_position", "AAPL")]


def test_a_filled_entry_without_a_position_is_missing() -> None:
    held = execution()
    result = compare([held], bracket_listed(), [], protection=True)
    [found] = result.breaks
    assert (found.kind, found.execution_id) == (BreakKind.MISSING_POSITION, held.id)
    assert found.detail["broker_quantity"] == 0 and found.detail["ledger_min"] == 100


def test_a_position_without_a_working_stop_is_unprotected() -> None:
    expired = bracket_listed(stop=BrokerStatus.CANCELLED)  # DAY children expired at the close
    held = execution()
    result = compare([held], expired, [Position("AAPL", 100)], protection=True)
    [found] = result.breaks
    assert (found.kind, found.execution_id) == (BreakKind.UNPROTECTED_POSITION, held.id)


def test_without_bracket_protection_a_bare_position_is_expected() -> None:
    result = compare(
        [execution(children=())], [order(10, filled=100)], [Position("AAPL", 100)], protection=False
    )
    assert result.breaks == ()


def test_a_stop_on_the_wrong_side_does_not_protect() -> None:
    listed = [
        order(10, filled=100, status=BrokerStatus.FILLED),
        order(20, order_type="STP", action=Action.BUY),
    ]
    result = compare([execution(children=())], listed, [Position("AAPL", 100)], protection=True)
    assert kinds(result) == [("unprotected_position", "AAPL")]


def test_a_filled_child_closed_the_position() -> None:
    listed = bracket_listed(stop=BrokerStatus.FILLED, stop_filled=100)
    result = compare([execution()], listed, [], protection=True)
    assert result.breaks == ()


def test_a_closed_position_is_not_expected_at_the_broker() -> None:
    closed = execution(position_state="closed", exit_qty=100)
    assert compare([closed], [], [], protection=True).breaks == ()


def test_a_recorded_exit_counts_when_the_children_are_not_listed() -> None:
    """A previous bridge session's children are not listed by id: the ledger's exit counts."""
    partly = execution(position_state="open", exit_qty=40)
    result = compare([partly], [], [Position("AAPL", 60)], protection=False)
    assert result.breaks == ()


def test_an_order_in_flight_may_hold_anything_up_to_its_quantity() -> None:
    for state in (S.SUBMITTING, S.UNKNOWN):
        sent = execution(state=state, filled=0, order_id=None, children=())
        for held in (0, 40, 100):
            positions = [Position("AAPL", held)] if held else []
            assert compare([sent], [], positions, protection=False).breaks == (), (state, held)
        over = compare([sent], [], [Position("AAPL", 101)], protection=False)
        assert kinds(over) == [("unexplained_position", "AAPL")]


def test_a_listed_entry_is_exact_even_while_working() -> None:
    working = execution(state=S.PARTIALLY_FILLED, filled=30)
    listed = bracket_listed(entry_filled=60)  # the broker knows of more fills than the ledger
    assert compare([working], listed, [Position("AAPL", 60)], protection=True).breaks == ()
    result = compare([working], listed, [Position("AAPL", 30)], protection=True)
    assert kinds(result) == [("unexplained_position", "AAPL")]


def test_a_short_entry_holds_a_negative_position() -> None:
    short = execution(action="SELL", children=())
    listed = [
        order(10, action=Action.SELL, filled=100, status=BrokerStatus.FILLED),
        order(12, action=Action.BUY, order_type="STP", parent_id=10),
    ]
    assert compare([short], listed, [Position("AAPL", -100)], protection=True).breaks == ()
    assert kinds(compare([short], listed, [Position("AAPL", 100)], protection=True)) == [
        ("unexplained_position", "AAPL")
    ]


def test_fills_after_a_cancel_are_a_break_and_a_correction() -> None:
    cancelled = execution(state=S.CANCELLED, filled=0)
    listed = bracket_listed()  # the entry filled after all
    result = compare([cancelled], listed, [Position("AAPL", 100)], protection=True)
    [found] = result.breaks
    assert (found.kind, found.execution_id, found.order_id) == (
        BreakKind.FILL_AFTER_CANCEL,
        cancelled.id,
        10,
    )
    assert result.fills_found == (
        FillsFound(cancelled.id, 100, Decimal("150.10"), BrokerStatus.FILLED.value),
    )


def test_a_previous_sessions_order_id_zero_is_never_matched() -> None:
    cancelled = execution(state=S.CANCELLED, filled=0, order_id=0, children=())
    listed = [order(0, filled=100, status=BrokerStatus.FILLED)]
    result = compare([cancelled], listed, [], protection=False)
    assert result.fills_found == () and result.breaks == ()


def test_symbols_are_compared_in_one_form() -> None:
    result = compare(
        [execution(symbol=" aapl ")], bracket_listed(), [Position("AAPL", 100)], protection=True
    )
    assert result.breaks == ()


# ---- the actor -------------------------------------------------------------------------------


class ScriptedBroker:
    """Answers `orders()` and `positions()` from lists a test changes; can be made to fail."""

    def __init__(self, orders: list[BrokerOrder], positions: list[Position]) -> None:
        self.listed = orders
        self.held = positions
        self.down = False
        self.connected = True  # what /health says of IB
        self.reads = 0

    async def health(self) -> BridgeHealth:
        if self.down:
            raise BrokerUnavailable("down", endpoint="GET /health")
        return BridgeHealth("ok" if self.connected else "degraded", self.connected)

    async def orders(self) -> list[BrokerOrder]:
        self.reads += 1
        if self.down:
            raise BrokerUnavailable("down", endpoint="GET /orders")
        return list(self.listed)

    async def positions(self) -> list[Position]:
        return list(self.held)


def reconciler_for(
    store: MemoryStore, broker: ScriptedBroker, posted: list[Message], metrics: Metrics
) -> Reconciler:
    settings = load_settings(database_url=None, reconcile_interval=60)
    return Reconciler(
        settings,
        store,
        broker,  # type: ignore[arg-type]
        metrics,
        posted.append,
        clock=lambda: NOW,
        confirm_delay=0,
    )


def counted(metrics: Metrics, kind: str) -> float:
    value = metrics.registry.get_sample_value(
        "trade_executor_reconcile_breaks_total", {"kind": kind}
    )
    return value or 0.0


async def seed(store: MemoryStore, executions: list[Execution]) -> None:
    for e in executions:
        store._t.executions[e.id] = e  # the ledger as a test states it


@pytest.mark.anyio
async def test_a_pass_reports_stores_and_counts_each_break() -> None:
    store, posted, metrics = MemoryStore(), list[Message](), Metrics()
    cancelled = execution("AAPL", S.CANCELLED, filled=0)
    await seed(store, [cancelled, execution("TSLA", order_id=30, children=())])
    broker = ScriptedBroker(bracket_listed(), [Position("AAPL", 100), Position("MSFT", 5)])
    reconciler = reconciler_for(store, broker, posted, metrics)

    found = await reconciler.reconcile_once()

    assert found is not None
    assert sorted((b.kind.value, b.symbol) for b in found) == [
        ("fill_after_cancel", "AAPL"),
        ("missing_position", "TSLA"),
        ("unexplained_position", "MSFT"),
    ]
    assert posted == [FillsFound(cancelled.id, 100, Decimal("150.10"), "Filled")]
    stored = await store.open_breaks()
    assert sorted((b.kind, b.symbol) for b in stored) == sorted(
        (b.kind.value, b.symbol) for b in found
    )
    assert counted(metrics, "missing_position") == 1
    assert counted(metrics, "unexplained_position") == 1
    assert counted(metrics, "fill_after_cancel") == 1
    assert len(reconciler.open_breaks) == 3
    assert broker.reads == 2  # the breaks were confirmed by a second read


@pytest.mark.anyio
async def test_a_break_gone_by_the_next_pass_is_cleared() -> None:
    store, posted, metrics = MemoryStore(), list[Message](), Metrics()
    broker = ScriptedBroker([], [Position("MSFT", 5)])
    reconciler = reconciler_for(store, broker, posted, metrics)
    await reconciler.reconcile_once()
    first = await store.open_breaks()
    await reconciler.reconcile_once()
    assert [b.first_seen for b in await store.open_breaks()] == [b.first_seen for b in first]
    assert counted(metrics, "unexplained_position") == 1  # counted once, when new

    broker.held = []
    assert await reconciler.reconcile_once() == ()
    assert await store.open_breaks() == []
    assert [b.cleared_at for b in store.breaks] == [NOW]
    assert reconciler.open_breaks == ()


@pytest.mark.anyio
async def test_a_break_that_vanishes_on_the_second_read_is_not_reported() -> None:
    """A fill between the reads looks like a break once; the confirming read clears it."""
    store, posted, metrics = MemoryStore(), list[Message](), Metrics()

    class Settling(ScriptedBroker):
        async def positions(self) -> list[Position]:
            held = list(self.held)
            self.held = []  # gone by the confirming read
            return held

    settling = Settling([], [Position("MSFT", 5)])
    reconciler = reconciler_for(store, settling, posted, metrics)
    assert await reconciler.reconcile_once() == ()
    assert counted(metrics, "unexplained_position") == 0


@pytest.mark.anyio
async def test_an_unreadable_bridge_concludes_nothing() -> None:
    store, posted, metrics = MemoryStore(), list[Message](), Metrics()
    broker = ScriptedBroker([], [Position("MSFT", 5)])
    reconciler = reconciler_for(store, broker, posted, metrics)
    await reconciler.reconcile_once()
    broker.down = True
    assert await reconciler.reconcile_once() is None
    assert len(await store.open_breaks()) == 1  # the last conclusion stands
    assert reconciler.passes == 1


@pytest.mark.anyio
async def test_the_reconciler_never_sends_an_order() -> None:
    """The scripted broker has no order-sending method at all: a pass that tried would raise."""
    store, posted, metrics = MemoryStore(), list[Message](), Metrics()
    await seed(store, [execution()])
    expired = bracket_listed(stop=BrokerStatus.CANCELLED)
    reconciler = reconciler_for(
        store, ScriptedBroker(expired, [Position("AAPL", 100)]), posted, metrics
    )
    found = await reconciler.reconcile_once()
    assert found is not None and [b.kind for b in found] == [BreakKind.UNPROTECTED_POSITION]
    assert posted == []
