"""SIGKILL at each step of an exit, then a restart without the fault (CONTRACT section 5, exits).

The real `trade-executor run` as a subprocess against PostgreSQL and a jax-profile paper bridge
in a thread of the test process (it survives the kill and is asked for the truth). After each:
the position's state is right (closed, with the exit's numbers), and no exit order was sent
twice: a close whose answer a crash lost is looked up in the order list, never re-sent.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import ThreadedBridge, approve, insert_signal, threaded_bridge, wait_for
from tests.support.chaos import ENTRY, SHARES, STOP, TARGET, Harness
from trade_executor.actors.exits import close_payload
from trade_executor.broker.paper import Faults

pytestmark = pytest.mark.anyio

POSITION = "SELECT position_state FROM executions WHERE signal_id = $1"
STATE = "SELECT state FROM executions WHERE signal_id = $1"


@pytest.fixture
def jax_bridge() -> Iterator[ThreadedBridge]:
    with threaded_bridge(profile="jax", faults=Faults(latency_scale=0.01)) as running:
        yield running


@pytest.fixture
def exits_harness(db_url: str, jax_bridge: ThreadedBridge, tmp_path: Path) -> Iterator[Harness]:
    running = Harness(db_url, jax_bridge.url, tmp_path)
    try:
        yield running
    finally:
        running.shutdown()


def close_orders(bridge: ThreadedBridge, symbol: str) -> list[dict[str, Any]]:
    return [
        o for o in bridge.orders() if o["symbol"] == symbol and o["order_ref"] == "manual-close"
    ]


def close_posts(bridge: ThreadedBridge, symbol: str) -> int:
    log = bridge.admin("GET", "/admin/requests")["requests"]
    return sum(1 for r in log if r["path"] == f"/positions/{symbol}/close")


# fault point -> how the exit is provoked, the exit price, reason, P&L, R
CASES = {
    # The stop-loss child's fill was read, not written: the restart reads it again.
    "exit_after_fill_read": ("stop", "99", "stop_loss", "-200.00", "-1.0000"),
    # The exit was written, the executor never told: the restart restores it from the ledger.
    "exit_after_recorded": ("stop", "99", "stop_loss", "-200.00", "-1.0000"),
    # The close was placed, its answer never recorded: the restart finds it, never re-sends.
    "exit_after_close_post": ("close", "101", "close", "200.00", "1.0000"),
}


@pytest.mark.parametrize("fault", sorted(CASES))
async def test_a_crash_at_each_step_of_an_exit(
    fault: str,
    exits_harness: Harness,
    jax_bridge: ThreadedBridge,
    conn: asyncpg.Connection,
) -> None:
    how, price, reason, pnl, r = CASES[fault]
    first = exits_harness.start(fault=fault)
    await first.wait_ready()
    symbol = "X" + uuid.uuid4().hex[:6].upper()
    signal_id = await insert_signal(conn, symbol, "BUY", ENTRY, STOP, TARGET)
    await approve(conn, signal_id)
    await wait_for(conn, STATE, signal_id, expect="submitted")
    jax_bridge.set_price(symbol, ENTRY)
    await wait_for(conn, POSITION, signal_id, expect="open")
    jax_bridge.set_price(symbol, price)
    if how == "close":
        await conn.execute(
            "SELECT pg_notify('trade_executor_control', $1)",
            close_payload(symbol, "chaos", "tester"),
        )
    assert await first.wait_exit() == -signal.SIGKILL, "the fault point did not fire"

    second = exits_harness.start()
    await second.wait_ready()
    await wait_for(conn, POSITION, signal_id, expect="closed", timeout=30)
    execution = await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", signal_id)
    realized = await second.wait_event("exits.started")

    assert execution is not None and realized["positions"] >= 1
    assert (execution["exit_reason"], execution["exit_qty"]) == (reason, SHARES)
    assert (execution["realized_pnl"], execution["r_multiple"]) == (Decimal(pnl), Decimal(r))
    positions = jax_bridge.admin("GET", "/positions")["positions"]
    assert not [p for p in positions if p["symbol"] == symbol and p["quantity"] != 0]  # flat
    expected_closes = 1 if how == "close" else 0
    assert len(close_orders(jax_bridge, symbol)) == expected_closes  # never doubled
    assert close_posts(jax_bridge, symbol) == expected_closes
    if how == "close":
        assert execution["exit_order_id"] == close_orders(jax_bridge, symbol)[0]["order_id"]
        [placed] = second.events("position.close_placed")
        assert placed["how"] == "adopted"  # looked up after the restart, not sent again


async def test_a_crash_after_a_close_of_the_brokers_larger_quantity_finds_it_by_that_quantity(
    exits_harness: Harness,
    jax_bridge: ThreadedBridge,
    conn: asyncpg.Connection,
) -> None:
    """The broker holds more than the ledger (a trade in TWS): the close is sent for the
    broker's quantity, then the process dies before recording its answer. The restart looks the
    close up by the quantity that was sent (recorded before the POST), adopts it, never re-sends."""
    from trade_executor.broker.client import BrokerClient
    from trade_executor.domain.models import Action, OrderRequest, OrderType

    first = exits_harness.start(fault="exit_after_close_post")
    await first.wait_ready()
    symbol = "X" + uuid.uuid4().hex[:6].upper()
    signal_id = await insert_signal(conn, symbol, "BUY", ENTRY, STOP, TARGET)
    await approve(conn, signal_id)
    await wait_for(conn, STATE, signal_id, expect="submitted")
    jax_bridge.set_price(symbol, ENTRY)
    await wait_for(conn, POSITION, signal_id, expect="open")
    async with BrokerClient(jax_bridge.url, 5) as client:
        await client.place(OrderRequest(symbol, Action.BUY, 50, OrderType.MKT, None, None))
    jax_bridge.set_price(symbol, "101")
    await conn.execute(
        "SELECT pg_notify('trade_executor_control', $1)", close_payload(symbol, "chaos", "tester")
    )
    assert await first.wait_exit() == -signal.SIGKILL, "the fault point did not fire"

    second = exits_harness.start()
    await second.wait_ready()
    await wait_for(conn, POSITION, signal_id, expect="closed", timeout=30)
    execution = await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", signal_id)
    assert execution is not None
    assert (execution["exit_reason"], execution["exit_qty"]) == ("close", SHARES)
    assert execution["realized_pnl"] == Decimal("200.00")  # the ledger's 200 x (101 - 100)
    [order] = close_orders(jax_bridge, symbol)
    assert (order["quantity"], execution["exit_order_id"]) == (SHARES + 50, order["order_id"])
    assert close_posts(jax_bridge, symbol) == 1  # never re-sent
    [placed] = second.events("position.close_placed")
    assert placed["how"] == "adopted"
