"""The bridge forgets its orders (issue 11, reproduction 5) with the real service on PostgreSQL
and the jax paper bridge in its own thread: `Unknown` reads and refused cancels end the
execution `unknown` within its bound, once, with its risk and symbol still held."""

from __future__ import annotations

import anyio
import asyncpg
import pytest

from tests.support import approve, insert_signal, make_settings, running_service, threaded_bridge
from trade_executor_dev.paper import Faults

pytestmark = pytest.mark.anyio

STATE = "SELECT state FROM executions WHERE signal_id = $1"
EVENTS = (
    "SELECT e.kind FROM execution_events e JOIN executions x ON x.id = e.execution_id"
    " WHERE x.signal_id = $1 ORDER BY e.id"
)


async def state_becomes(conn: asyncpg.Connection, signal_id: object, expect: str) -> None:
    with anyio.fail_after(30):  # guards against a hang only
        while await conn.fetchval(STATE, signal_id) != expect:
            await anyio.sleep(0.02)


async def test_a_bridge_restart_ends_the_execution_unknown_once_and_holds_its_symbol(
    db_url: str, conn: asyncpg.Connection
) -> None:
    faults = Faults(latency_scale=0.01, fill_mode="never")
    with threaded_bridge(profile="jax", faults=faults) as bridge:
        settings = make_settings(db_url, bridge, order_poll_timeout=1)
        async with running_service(settings):
            signal_id = await insert_signal(conn, "AMNESIA")
            await approve(conn, signal_id)
            await state_becomes(conn, signal_id, "submitted")
            bridge.admin("POST", "/admin/restart", {"client_id_changed": True})
            await state_becomes(conn, signal_id, "unknown")
            events = [r["kind"] for r in await conn.fetch(EVENTS, signal_id)]

            # Its risk stays committed and its symbol held: the next signal is refused.
            again = await insert_signal(conn, "AMNESIA")
            await approve(conn, again)
            await state_becomes(conn, again, "rejected")
            await anyio.sleep(10 * settings.order_poll_interval)  # nothing more happens to it
            later = [r["kind"] for r in await conn.fetch(EVENTS, signal_id)]
        requests = bridge.admin("GET", "/admin/requests")["requests"]

    row = await conn.fetchrow(
        "SELECT reason, order_id, filled_qty FROM executions WHERE signal_id = $1", signal_id
    )
    assert row is not None
    assert row["reason"].startswith("status_lost: ")
    assert "after 3 cancel attempts" in row["reason"] and row["filled_qty"] == 0
    cancel = ("DELETE", f"/orders/{row['order_id']}")
    deletes = [r for r in requests if (r["method"], r["path"]) == cancel]
    assert len(deletes) == 3 and all(r["status"] == 400 for r in deletes)
    assert events.count("poller.cancel_failed") == 3 and events[-1] == "order.status_lost"
    assert later == events
    refused = await conn.fetchval("SELECT reason FROM executions WHERE signal_id = $1", again)
    assert refused == "risk: duplicate_symbol"
