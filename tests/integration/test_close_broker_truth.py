"""Issue 20, finding 2: `close` acts on the broker's truth (the real service on PostgreSQL, a
jax-profile paper bridge over HTTP, the installed command). A stale ledger quantity, a real
position larger than the ledger's and a protective order the bridge cannot see are refused
with one sentence naming both sides (exit 1), and done right with `--force`: the broker's
quantity closed and no order of ours left working for the symbol (the bridge's own order list
and request log)."""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from tests.integration.test_exits_pg import WAIT, enter, jax_bridge, row, settings_for
from tests.support import ThreadedBridge, running_service
from trade_executor.broker.client import BrokerClient
from trade_executor.domain.models import Action, OrderRequest, OrderType

pytestmark = pytest.mark.anyio
__all__ = ["jax_bridge"]

SCRIPT = Path(sys.executable).with_name("trade-executor")


async def te(env: dict[str, str], *argv: str) -> Any:
    return await anyio.run_process([str(SCRIPT), *argv], env=env, check=False)


def working_of(bridge: ThreadedBridge, symbol: str) -> list[dict[str, Any]]:
    final = {"Filled", "Cancelled", "ApiCancelled", "Inactive"}
    return [o for o in bridge.orders() if o["symbol"] == symbol and o["status"] not in final]


def held(bridge: ThreadedBridge, symbol: str) -> int:
    positions = bridge.admin("GET", "/positions")["positions"]
    return sum(int(p["quantity"]) for p in positions if p["symbol"] == symbol)


async def buy_more(bridge: ThreadedBridge, symbol: str, quantity: int) -> None:
    """A trade the ledger does not know (TWS, or a fill nobody saw)."""
    async with BrokerClient(bridge.url, 5) as client:
        await client.place(OrderRequest(symbol, Action.BUY, quantity, OrderType.MKT, None, None))


async def test_a_larger_real_position_is_refused_then_closed_whole_with_force(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "IB_BRIDGE_URL": jax_bridge.url}
    async with running_service(settings_for(db_url, jax_bridge)):
        signal_id = await enter(conn, jax_bridge, "INTC")
        await buy_more(jax_bridge, "INTC", 570)
        assert held(jax_bridge, "INTC") == 703
        refused = await te(env, "close", "INTC", "--reason", "test", "--wait", "5")
        assert refused.returncode == 1
        said = refused.stderr.decode()
        assert "close INTC refused: the ledger holds 133 and the broker holds 703" in said
        assert "Traceback" not in said
        # Nothing was touched: the stop and the target still work.
        assert {o["order_type"] for o in working_of(jax_bridge, "INTC")} == {"LMT", "STP"}
        forced = await te(env, "close", "INTC", "--reason", "test", "--force", "--wait", str(WAIT))
        assert forced.returncode == 0, forced.stderr.decode()
        assert held(jax_bridge, "INTC") == 0  # the broker's 703, not the ledger's 133
        assert working_of(jax_bridge, "INTC") == []  # no stop against a flat position
    execution = await row(conn, signal_id)
    assert (execution["position_state"], execution["exit_qty"]) == ("closed", 133)
    closes = [
        r
        for r in jax_bridge.requests()
        if r["method"] == "POST" and r["path"] == "/positions/INTC/close"
    ]
    assert len(closes) == 1 and closes[0]["body"].get("quantity") == 703


async def test_a_stale_ledger_quantity_is_refused(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "IB_BRIDGE_URL": jax_bridge.url}
    async with running_service(settings_for(db_url, jax_bridge)):
        signal_id = await enter(conn, jax_bridge, "STAL")
        await conn.execute("UPDATE executions SET filled_qty = 5 WHERE signal_id = $1", signal_id)
        refused = await te(env, "close", "STAL", "--reason", "test", "--wait", "5")
        assert refused.returncode == 1
        assert "the ledger holds 5 and the broker holds 133" in refused.stderr.decode()
        assert held(jax_bridge, "STAL") == 133 and len(working_of(jax_bridge, "STAL")) == 2


async def test_a_protective_order_the_bridge_cannot_see_is_refused_then_forced(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "IB_BRIDGE_URL": jax_bridge.url}
    async with running_service(settings_for(db_url, jax_bridge)):
        signal_id = await enter(conn, jax_bridge, "CRM")
        # The ledger believes in orders the bridge does not list (a restart with another
        # client id): the real children still work at the broker, unknown to the ledger.
        await conn.execute(
            "UPDATE executions SET child_order_ids = '{99991,99992}' WHERE signal_id = $1",
            signal_id,
        )
        refused = await te(env, "close", "CRM", "--reason", "test", "--wait", "5")
        assert refused.returncode == 1
        said = refused.stderr.decode()
        assert "protective order 99991, 99992 works and the bridge cannot find it" in said
        forced = await te(env, "close", "CRM", "--reason", "test", "--force", "--wait", str(WAIT))
        assert forced.returncode == 0, forced.stderr.decode()
        assert held(jax_bridge, "CRM") == 0
        assert working_of(jax_bridge, "CRM") == []  # every order of ours for CRM cancelled
    execution = await row(conn, signal_id)
    assert execution["position_state"] == "closed"
    assert execution["realized_pnl"] == Decimal("0.00")


async def test_a_forced_close_whose_answer_is_lost_is_found_by_the_quantity_sent(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    """`close --force` sends the broker's 703, not the ledger's 133; the POST's answer is lost
    (the bridge placed the order, then dropped the connection): the lookup in the order list
    must look for the 703 that was sent, adopt that order and book the close at its price,
    never send it again."""
    env = {**os.environ, "DATABASE_URL": db_url, "IB_BRIDGE_URL": jax_bridge.url}
    async with running_service(settings_for(db_url, jax_bridge)):
        signal_id = await enter(conn, jax_bridge, "LOST")
        await buy_more(jax_bridge, "LOST", 570)
        await anyio.to_thread.run_sync(jax_bridge.set_price, "LOST", "151")
        jax_bridge.set_faults(drop_after_accept=1.0)  # every accepted order POST: no answer
        forced = await te(env, "close", "LOST", "--reason", "test", "--force", "--wait", str(WAIT))
        jax_bridge.set_faults(drop_after_accept=0.0)
        assert forced.returncode == 0, forced.stderr.decode()
        assert held(jax_bridge, "LOST") == 0
        assert working_of(jax_bridge, "LOST") == []
    execution = await row(conn, signal_id)
    assert (execution["position_state"], execution["exit_reason"]) == ("closed", "close")
    assert (execution["exit_qty"], execution["exit_avg_price"]) == (133, Decimal("151.0000"))
    assert execution["realized_pnl"] == Decimal("133.00")  # the ledger's 133 x (151 - 150)
    closes = [
        r
        for r in jax_bridge.requests()
        if r["method"] == "POST" and r["path"] == "/positions/LOST/close"
    ]
    assert [r["body"].get("quantity") for r in closes] == [703]  # sent once
