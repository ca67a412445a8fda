"""Exits on the real service: PostgreSQL, the listener, the executor, the pollers, the exits and
a jax-profile paper bridge in its own thread. `close` from another shell (the installed command)
and `POST /api/v1/close`; the realized-loss limit across a restart."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest

from tests.support import (
    ThreadedBridge,
    approve,
    insert_signal,
    make_settings,
    running_service,
    threaded_bridge,
    wait_for,
)
from trade_executor_dev.paper import Faults

pytestmark = pytest.mark.anyio

WAIT = 30.0  # a deadline for an outcome, never a measured duration
TOKEN = "test-token"
STATE = "SELECT e.state FROM executions e WHERE e.signal_id = $1"
POSITION = "SELECT e.position_state FROM executions e WHERE e.signal_id = $1"


@pytest.fixture
def jax_bridge() -> Iterator[ThreadedBridge]:
    with threaded_bridge(profile="jax", faults=Faults(latency_scale=0.01)) as running:
        yield running


def settings_for(db_url: str, bridge: ThreadedBridge, **overrides: Any) -> Any:
    return make_settings(
        db_url, bridge, order_poll_interval=0.1, max_daily_loss=100000, **overrides
    )


async def enter(
    conn: asyncpg.Connection, bridge: ThreadedBridge, symbol: str, side: str = "BUY",
    stop: str = "145", target: str = "160",
) -> Any:  # fmt: skip
    """A signal approved, its entry filled at 150: the position is open."""
    signal_id = await insert_signal(conn, symbol, side, "150", stop, target)
    await approve(conn, signal_id)
    await wait_for(conn, STATE, signal_id, expect="submitted", timeout=WAIT)
    await anyio.to_thread.run_sync(bridge.set_price, symbol, "150")
    await wait_for(conn, POSITION, signal_id, expect="open", timeout=WAIT)
    return signal_id


async def row(conn: asyncpg.Connection, signal_id: Any) -> asyncpg.Record:
    found = await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", signal_id)
    assert found is not None
    return found


async def test_a_stop_out_is_in_the_ledger_and_on_the_trade_row(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    async with running_service(settings_for(db_url, jax_bridge)):
        signal_id = await enter(conn, jax_bridge, "PGSL")
        await anyio.to_thread.run_sync(jax_bridge.set_price, "PGSL", "145")
        await wait_for(conn, POSITION, signal_id, expect="closed", timeout=WAIT)
    execution = await row(conn, signal_id)
    trade = await conn.fetchrow("SELECT * FROM trades WHERE signal_id = $1", signal_id)
    assert trade is not None
    events = await conn.fetch(
        "SELECT kind FROM execution_events WHERE execution_id = $1 ORDER BY id", execution["id"]
    )
    assert (execution["exit_reason"], execution["exit_qty"]) == ("stop_loss", 133)
    assert (execution["realized_pnl"], execution["r_multiple"]) == (
        Decimal("-665.00"), Decimal("-1.0000"))  # fmt: skip
    assert execution["closed_at"] is not None
    assert trade["order_status"] == "Filled"
    assert trade["notes"] == "closed: stop_loss 133 @ 145.0000; realized P&L -665.00 (-1.0000 R)"
    assert [e["kind"] for e in events][-1] == "position.changed"


async def test_post_close_for_one_symbol_and_for_all(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    settings = settings_for(db_url, jax_bridge)
    async with running_service(settings) as service:
        one = await enter(conn, jax_bridge, "APIA")
        two = await enter(conn, jax_bridge, "APIB", "SELL", "155", "140")
        three = await enter(conn, jax_bridge, "APIC")
        base = f"http://127.0.0.1:{service.http_port}"
        headers = {"Authorization": f"Bearer {TOKEN}", "Connection": "close"}
        async with httpx.AsyncClient(base_url=base, timeout=2 * WAIT, headers=headers) as api:
            single = await api.post("/api/v1/close", json={"symbol": "apia", "reason": "test"})
            missing = await api.post("/api/v1/close", json={"symbol": "NONE", "reason": "x"})
            everything = await api.post("/api/v1/close", json={"all": True, "reason": "eod"})
            unauthorised = await api.post(
                "/api/v1/close", json={"all": True, "reason": "x"}, headers={"Authorization": ""}
            )
            malformed = await api.post("/api/v1/close", json={"symbol": "A", "all": True})
    assert single.status_code == 200, single.text
    [closed] = single.json()["positions"]
    assert (closed["symbol"], closed["position_state"], closed["exit_reason"]) == (
        "APIA", "closed", "close")  # fmt: skip
    assert missing.status_code == 404 and "NONE" in missing.json()["error"]
    assert everything.status_code == 200
    assert {p["symbol"] for p in everything.json()["positions"]} == {"APIB", "APIC"}
    assert everything.json()["closed"] == 2
    assert unauthorised.status_code == 401 and malformed.status_code == 400
    for signal_id in (one, two, three):
        assert (await row(conn, signal_id))["position_state"] == "closed"


async def test_the_close_command_closes_through_the_running_service(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    script = Path(sys.executable).with_name("trade-executor")
    env = {**os.environ, "DATABASE_URL": db_url, "IB_BRIDGE_URL": jax_bridge.url}
    async with running_service(settings_for(db_url, jax_bridge)):
        signal_id = await enter(conn, jax_bridge, "CLIX")
        await anyio.to_thread.run_sync(jax_bridge.set_price, "CLIX", "151")
        done = await anyio.run_process(
            [str(script), "close", "CLIX", "--reason", "operator test", "--wait", str(WAIT)],
            env=env,
            check=False,
        )
        nothing = await anyio.run_process(
            [str(script), "close", "--all", "--reason", "again", "--wait", "1"],
            env=env,
            check=False,
        )
    execution = await row(conn, signal_id)
    requested = await conn.fetchval(
        "SELECT detail->>'by' FROM execution_events WHERE execution_id = $1"
        " AND kind = 'position.close_requested'",
        execution["id"],
    )
    assert done.returncode == 0, done.stderr.decode()
    assert "closed: close 133 @ 151" in done.stdout.decode()
    assert (execution["exit_reason"], execution["realized_pnl"]) == ("close", Decimal("133.00"))
    assert requested  # the request is in the audit trail, with who made it
    assert nothing.returncode == 1 and b"no open positions" in nothing.stderr


async def test_the_realized_loss_limit_holds_after_a_restart(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    settings = settings_for(db_url, jax_bridge, max_daily_realized_loss=500)
    async with running_service(settings):
        signal_id = await enter(conn, jax_bridge, "RLOS")
        await anyio.to_thread.run_sync(jax_bridge.set_price, "RLOS", "145")
        await wait_for(conn, POSITION, signal_id, expect="closed", timeout=WAIT)
        before = await insert_signal(conn, "RNXT")
        await approve(conn, before)
        await wait_for(conn, STATE, before, expect="rejected", timeout=WAIT)
    async with running_service(settings):
        after = await insert_signal(conn, "RAFT")
        await approve(conn, after)
        await wait_for(conn, STATE, after, expect="rejected", timeout=WAIT)
    for rejected in (before, after):
        assert (await row(conn, rejected))["reason"] == "risk: max_daily_realized_loss"


async def test_instance_flatten_times_are_read_where_the_originals_tables_exist(
    db_url: str, conn: asyncpg.Connection
) -> None:
    from trade_executor.store.postgres import PgStore, create_pool

    pool = await create_pool(db_url, min_size=1, max_size=2)
    try:
        store = PgStore(pool)
        assert await store.instance_flatten_times([]) is None  # not the original's database
        await conn.execute(
            "CREATE TABLE strategy_instances (id uuid PRIMARY KEY, flatten_by_close_time text,"
            " session_timezone text)"
        )
        await conn.execute("ALTER TABLE strategy_signals ADD COLUMN instance_id uuid")
        instance = uuid.uuid4()
        await conn.execute(
            "INSERT INTO strategy_instances VALUES ($1, '15:55', 'America/New_York')", instance
        )
        signal_id = await insert_signal(conn, "INST")
        await conn.execute(
            "UPDATE strategy_signals SET instance_id = $1 WHERE id = $2", instance, signal_id
        )
        execution_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO executions (id, signal_id, state, client_order_id)"
            " VALUES ($1, $2, 'filled', 'te-inst')",
            execution_id,
            signal_id,
        )
        times = await store.instance_flatten_times([execution_id])
    finally:
        await pool.close()
    assert times == {execution_id: (str(instance), "15:55", "America/New_York")}
