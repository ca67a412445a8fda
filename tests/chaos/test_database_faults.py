"""Database faults: the LISTEN connection terminated by the server; PostgreSQL refusing every
connection for a while (a TCP proxy in front of it, cut and restored). Approvals committed
meanwhile are executed after recovery, and nothing executes twice."""

from __future__ import annotations

import uuid

import anyio
import asyncpg
import pytest

from tests.support import ThreadedBridge, approve, insert_signal, wait_for
from tests.support.chaos import (
    ENTRY,
    STOP,
    TARGET,
    Harness,
    check_invariants,
    wait_settled,
)
from tests.support.proxy import tcp_proxy

pytestmark = pytest.mark.anyio

LISTEN_BACKEND = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()
"""


def symbol(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:7].upper()


async def new_approval(conn: asyncpg.Connection, prefix: str) -> uuid.UUID:
    signal_id = await insert_signal(conn, symbol(prefix), "BUY", ENTRY, STOP, TARGET)
    await approve(conn, signal_id)
    return signal_id


async def test_listener_connection_terminated(
    harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    process = harness.start()
    await process.wait_ready()
    signal_ids = [await new_approval(conn, "T")]
    await wait_settled(conn, signal_ids)
    for round_ in range(3):
        pid = await wait_for(conn, LISTEN_BACKEND, timeout=15)
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        # Committed right away: while the listener is down or reconnecting.
        signal_ids.append(await new_approval(conn, f"T{round_}"))
        await wait_settled(conn, signal_ids, timeout=20)
        assert await wait_for(conn, LISTEN_BACKEND, timeout=15) != pid, (
            "the listener did not LISTEN again"
        )
    await process.wait_event("listener.reconnected")
    assert len(process.events("listener.reconnected")) >= 3
    assert process.returncode() is None, "the process died of a dropped LISTEN connection"
    assert await process.stop() == 0
    snapshot = await check_invariants(conn, bridge)
    assert len(snapshot.parents) == 4
    assert not harness.errors(), harness.errors()


async def _outage(
    harness: Harness,
    bridge: ThreadedBridge,
    conn: asyncpg.Connection,
    db_url: str,
    *,
    starting_up: bool,
) -> None:
    """One process through a database outage: it loses the lock, stands by, leads again and
    executes what was approved meanwhile, exactly once. No restart by the test."""
    with tcp_proxy(db_url) as proxy:
        process = harness.start(database_url=proxy.url_for(db_url))
        await process.wait_ready()
        before = [await new_approval(conn, "P")]
        await wait_settled(conn, before, process=process)

        proxy.cut(starting_up=starting_up)
        await process.wait_event("supervisor.leadership_lost", timeout=30)
        during = []
        for _ in range(3):  # committed while the service cannot reach the database
            during.append(await new_approval(conn, "D"))
            await anyio.sleep(0.5)
        await process.wait_event("supervisor.standby", timeout=30)
        if starting_up:
            assert proxy.answered_starting_up > 0
        proxy.restore()

        await process.wait_event("supervisor.took_over", timeout=60)
        after = [await new_approval(conn, "A")]
        await wait_settled(conn, before + during + after, timeout=90, process=process)
        await wait_for(
            conn,
            "SELECT count(*) = 0 FROM executions WHERE state IN ('received','submitting')",
            timeout=30,
        )
        assert len(process.events("supervisor.ready")) >= 2  # led, lost, led again
        assert process.returncode() is None, "the process exited during the outage"
        assert len(harness.processes) == 1
        assert await process.stop() == 0
    snapshot = await check_invariants(conn, bridge)
    assert len(snapshot.executions) == 5
    assert len(snapshot.parents) == 5, [dict(e) for e in snapshot.executions]
    assert {e["state"] for e in snapshot.executions} <= {"submitted", "partially_filled", "filled"}
    # Recovery ran again after the outage: every approval of the outage went through it.
    assert process.events("listener.caught_up")


async def test_postgres_refusing_connections_the_same_process_recovers(
    harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection, db_url: str
) -> None:
    """Every connection reset, new ones refused for a few seconds (the port closed)."""
    await _outage(harness, bridge, conn, db_url, starting_up=False)


async def test_postgres_restarting_the_same_process_recovers(
    harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection, db_url: str
) -> None:
    """Every connection reset, new ones answered "the database system is starting up" (57P03),
    as a restarting PostgreSQL does, for a few seconds."""
    await _outage(harness, bridge, conn, db_url, starting_up=True)


async def test_started_while_postgres_is_starting_up(
    harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection, db_url: str
) -> None:
    """Boot order: the service starts while PostgreSQL still answers 57P03; it waits for it
    (as it does for a refused connection) and then executes what was approved meanwhile."""
    with tcp_proxy(db_url) as proxy:
        proxy.cut(starting_up=True)
        process = harness.start(database_url=proxy.url_for(db_url))
        signal_ids = [await new_approval(conn, "S")]
        with anyio.fail_after(30):
            while proxy.answered_starting_up < 3 and process.returncode() is None:
                await anyio.sleep(0.05)
        proxy.restore()
        await process.wait_ready(timeout=60)
        await wait_settled(conn, signal_ids, process=process)
        assert await process.stop() == 0
    snapshot = await check_invariants(conn, bridge)
    assert len(snapshot.parents) == 1
