"""A signal with no `expires_at` expires at `generated_at` + SIGNAL_DEFAULT_TTL (24 h), as the
original reads it (issue 19, finding 6): the real service on PostgreSQL and the jax paper bridge.

Before, a NULL expiry never expired: a week-old signal approved today traded at last week's price.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import anyio
import asyncpg
import pytest

from tests.support import approve, make_settings, running_service, threaded_bridge
from trade_executor_dev.paper import Faults

pytestmark = pytest.mark.anyio

INSERT = """
INSERT INTO strategy_signals (id, symbol, signal_type, entry_price, stop_loss, take_profit,
                              generated_at, expires_at)
VALUES ($1, $2, 'BUY', 150, 145, 160, $3, NULL)
"""
OUTCOME = "SELECT state, reason FROM executions WHERE signal_id = $1"
UNDECIDED = frozenset({"received", "validated", "sizing", "submitting"})


async def signal_generated(conn: asyncpg.Connection, symbol: str, ago: timedelta) -> uuid.UUID:
    signal_id = uuid.uuid4()
    await conn.execute(INSERT, signal_id, symbol, datetime.now(UTC) - ago)
    return signal_id


async def final_outcome(conn: asyncpg.Connection, signal_id: uuid.UUID) -> tuple[str, str]:
    with anyio.fail_after(30):  # guards against a hang only
        while True:
            row = await conn.fetchrow(OUTCOME, signal_id)
            if row is not None and row["state"] not in UNDECIDED:
                return str(row["state"]), str(row["reason"] or "")
            await anyio.sleep(0.02)


async def test_no_expiry_trades_a_minute_old_signal_and_rejects_a_25_hour_old_one(
    db_url: str, conn: asyncpg.Connection
) -> None:
    with threaded_bridge(profile="jax", faults=Faults(latency_scale=0)) as bridge:
        settings = make_settings(db_url, bridge)
        async with running_service(settings):
            fresh = await signal_generated(conn, "FRESH", timedelta(minutes=1))
            await approve(conn, fresh)
            old = await signal_generated(conn, "STALE", timedelta(hours=25))
            await approve(conn, old)
            fresh_state, _ = await final_outcome(conn, fresh)
            old_state, old_reason = await final_outcome(conn, old)
        posted = [o["symbol"] for o in bridge.orders() if o["parent_id"] in (None, 0)]
    assert fresh_state in ("submitted", "filled", "partially_filled"), fresh_state
    assert (old_state, old_reason) == ("rejected", "expired")
    assert posted == ["FRESH"]
