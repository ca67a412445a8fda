"""Split brain (CONTRACT section 5, "Fencing", "Two instances", "One consistent risk state"): two
real `trade-executor run` processes on one database; the leader's lock connection is terminated
from outside (`pg_terminate_backend`) while the process lives and approvals keep arriving, more
of them than MAX_OPEN_POSITIONS.

Whatever the interleaving: no duplicate order at the bridge, exactly MAX_OPEN_POSITIONS orders
placed (the deposed leader's RiskBook and the new leader's never both admit), nothing left in
`received` or `submitting` once the new leader has recovered what the old one left, and the
ledger agrees with the bridge (`check_invariants`). Run once in the normal suite and twenty times
in the slow one (`make test-slow`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
import asyncpg
import pytest

from tests.support import ThreadedBridge, approve, insert_signal, wait_for
from tests.support.chaos import (
    ENTRY,
    STOP,
    TARGET,
    ExecutorProcess,
    Harness,
    check_invariants,
    wait_settled,
)

pytestmark = pytest.mark.anyio

MAX_OPEN_POSITIONS = 5
APPROVALS = 12
BEFORE_THE_CUT = 3  # approvals committed before the lock connection is terminated
GAP = 0.03  # seconds between approvals: the cut lands among them
RUNS = 20

# The backend holding the leader's advisory lock (a standby's probe holds none).
LEADER_BACKEND = """
SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
WHERE a.datname = current_database() AND l.locktype = 'advisory' AND l.granted
  AND a.application_name = 'trade-executor leader'
"""


def _at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))


async def _approve_stream(
    conn: asyncpg.Connection, count: int, signal_ids: list[uuid.UUID], prefix: str
) -> None:
    for _ in range(count):
        symbol = prefix + uuid.uuid4().hex[:6].upper()
        signal_id = await insert_signal(conn, symbol, "BUY", ENTRY, STOP, TARGET)
        await approve(conn, signal_id)
        signal_ids.append(signal_id)
        await anyio.sleep(GAP)


async def _leader_pid(conn: asyncpg.Connection) -> int:
    pid = await wait_for(conn, LEADER_BACKEND)
    return int(pid)


@pytest.mark.parametrize(
    "run",
    [0, *(pytest.param(n, marks=pytest.mark.slow) for n in range(1, RUNS))],
)
async def test_leader_lock_terminated_while_approvals_arrive(
    run: int, harness: Harness, bridge: ThreadedBridge, db_url: str
) -> None:
    env = {
        "MAX_OPEN_POSITIONS": str(MAX_OPEN_POSITIONS),
        "MAX_DAILY_LOSS": "100000",  # only the open positions bind
    }
    conn = await asyncpg.connect(db_url)
    try:
        leader = harness.start(environment=env)
        await leader.wait_ready()
        standby = harness.start(environment=env)
        await standby.wait_event("supervisor.standby")
        pid = await _leader_pid(conn)

        signal_ids: list[uuid.UUID] = []
        async with anyio.create_task_group() as tg:
            await _approve_stream(conn, BEFORE_THE_CUT, signal_ids, f"SB{run}A")
            tg.start_soon(_approve_stream, conn, APPROVALS - BEFORE_THE_CUT, signal_ids, "SBB")
            cut_at = datetime.now(UTC)
            # A separate connection: `conn` is busy with the approval stream.
            killer = await asyncpg.connect(db_url)
            try:
                assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
            finally:
                await killer.close()

        lost = await leader.wait_event("supervisor.leadership_lost")
        took_over = await standby.wait_event("supervisor.took_over")
        # Give the new leader time to recover what the old one left; then nothing is stranded.
        await wait_settled(conn, signal_ids, timeout=60)
        await wait_for(
            conn,
            "SELECT count(*) = 0 FROM executions WHERE state IN ('received', 'submitting')",
            timeout=60,
        )

        snapshot = await check_invariants(
            conn, bridge, max_daily_loss=Decimal(100000), max_open_positions=MAX_OPEN_POSITIONS
        )
        states = snapshot.states()
        assert len(snapshot.executions) == APPROVALS
        assert len(snapshot.parents) == MAX_OPEN_POSITIONS, dict(states)
        assert states["submitted"] + states["partially_filled"] + states["filled"] == (
            MAX_OPEN_POSITIONS
        ), dict(states)
        rejected = [e["reason"] for e in snapshot.executions if e["state"] == "rejected"]
        assert rejected == ["risk: max_open_positions"] * (APPROVALS - MAX_OPEN_POSITIONS)
        # The standby leads with the next epoch; the deposed one lives on as a standby.
        assert took_over["epoch"] == 2
        assert await conn.fetchval("SELECT leader_epoch FROM executor_control") == 2
        assert leader.returncode() is None and standby.returncode() is None
        _report(run, cut_at, lost, took_over, leader)
        assert await leader.stop() == 0
        assert await standby.stop() == 0
    finally:
        await conn.close()


def _report(
    run: int,
    cut_at: datetime,
    lost: dict[str, Any],
    took_over: dict[str, Any],
    leader: ExecutorProcess,
) -> None:
    """The measured times (shown with `pytest -s`; speed is not asserted here)."""
    detected = (_at(lost) - cut_at).total_seconds()
    takeover = (_at(took_over) - cut_at).total_seconds()
    fenced = len(leader.events("approval.fenced")) + len(leader.events("execution.fenced"))
    print(
        f"\nsplit-brain run {run}: lock loss noticed after {detected:.3f} s, "
        f"standby took over after {takeover:.3f} s, deposed writes fenced: {fenced}"
    )
