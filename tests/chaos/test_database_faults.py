"""Database faults: the LISTEN connection terminated by the server; PostgreSQL refusing every
connection for a while (a TCP proxy in front of it, cut and restored). Approvals committed
meanwhile are executed after recovery, and nothing executes twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import asyncpg
import pytest
from tests.chaos.conftest import (
    ENTRY,
    STOP,
    TARGET,
    ExecutorProcess,
    Harness,
    check_invariants,
    wait_settled,
)
from tests.chaos.proxy import tcp_proxy
from tests.support import ThreadedBridge, approve, insert_signal, wait_for

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


@asynccontextmanager
async def like_systemd(harness: Harness, **start: str) -> AsyncIterator[list[ExecutorProcess]]:
    """Restart=on-failure: a process that exits non-zero (but not 78) is started again."""
    started = [harness.start(**start)]  # type: ignore[arg-type]
    stopping = anyio.Event()

    async def watch() -> None:
        while not stopping.is_set():
            code = started[-1].returncode()
            if code is not None and code not in (0, 78):
                await anyio.sleep(0.5)  # RestartSec
                started.append(harness.start(**start))  # type: ignore[arg-type]
            await anyio.sleep(0.1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        try:
            yield started
        finally:
            stopping.set()
    assert await started[-1].stop() == 0


async def test_postgres_refusing_connections_for_a_while(
    harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection, db_url: str
) -> None:
    with tcp_proxy(db_url) as proxy:
        async with like_systemd(harness, database_url=proxy.url_for(db_url)) as started:
            await started[0].wait_ready()
            before = [await new_approval(conn, "P")]
            await wait_settled(conn, before)

            proxy.cut()
            during = []
            for _ in range(3):  # committed while the service cannot reach the database
                during.append(await new_approval(conn, "D"))
                await anyio.sleep(1)
            proxy.restore()

            after = [await new_approval(conn, "A")]
            await wait_settled(conn, before + during + after, timeout=90)
            await wait_for(
                conn,
                "SELECT count(*) = 0 FROM executions WHERE state IN ('received','submitting')",
                timeout=30,
            )
            await started[-1].wait_ready(timeout=60)
    snapshot = await check_invariants(conn, bridge)
    assert len(snapshot.executions) == 5
    assert len(snapshot.parents) == 5, [dict(e) for e in snapshot.executions]
    assert {e["state"] for e in snapshot.executions} <= {"submitted", "partially_filled", "filled"}
