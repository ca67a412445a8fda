"""The notification triggers, seen by a listening asyncpg connection.

Absence of a notification is checked without a clock: notifications are delivered in commit order,
so after the statement under test the test commits a sentinel `pg_notify` on the same channel; once
the sentinel arrives, anything the statement would have sent has arrived before it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.support.pglisten import Listener
from trade_executor.store.migrate import migrate

pytestmark = pytest.mark.anyio


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def approvals(database_url: str) -> AsyncIterator[Listener]:
    conn = await asyncpg.connect(database_url)
    listener = Listener(conn, "trade_approvals")
    await listener.start()
    yield listener
    await conn.close()


async def new_signal(conn: asyncpg.Connection) -> uuid.UUID:
    signal_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO strategy_signals (symbol, signal_type, entry_price, stop_loss, take_profit)"
        " VALUES ($1, 'BUY', 150, 145, 160) RETURNING id",
        f"T{uuid.uuid4().hex[:6].upper()}",
    )
    return signal_id


def about(payloads: list[str], signal_id: uuid.UUID) -> list[dict[str, Any]]:
    """The decoded payloads that concern one signal (other tests share the database)."""
    decoded = [json.loads(p) for p in payloads]
    return [p for p in decoded if p.get("signal_id") == str(signal_id)]


async def test_insert_of_approved_row_notifies(
    writer: asyncpg.Connection, approvals: Listener
) -> None:
    signal_id = await new_signal(writer)
    approval_id = await writer.fetchval(
        "INSERT INTO trade_approvals (signal_id, approved, approved_at, approved_by)"
        " VALUES ($1, true, now(), 'ann') RETURNING id",
        signal_id,
    )

    payloads = about(await approvals.until_sentinel(writer), signal_id)
    assert payloads == [{"approval_id": str(approval_id), "signal_id": str(signal_id)}]


async def test_unapproved_insert_is_silent(writer: asyncpg.Connection, approvals: Listener) -> None:
    signal_id = await new_signal(writer)
    await writer.execute(
        "INSERT INTO trade_approvals (signal_id, approved) VALUES ($1, false)", signal_id
    )
    await writer.execute("INSERT INTO trade_approvals (signal_id) VALUES ($1)", signal_id)

    assert about(await approvals.until_sentinel(writer), signal_id) == []


async def test_update_false_to_true_notifies(
    writer: asyncpg.Connection, approvals: Listener
) -> None:
    signal_id = await new_signal(writer)
    approval_id = await writer.fetchval(
        "INSERT INTO trade_approvals (signal_id) VALUES ($1) RETURNING id", signal_id
    )
    await writer.execute(
        "UPDATE trade_approvals SET modification_notes = 'size down' WHERE id = $1", approval_id
    )
    assert about(await approvals.until_sentinel(writer), signal_id) == []

    await writer.execute(
        "UPDATE trade_approvals SET approved = true, approved_at = now() WHERE id = $1",
        approval_id,
    )

    payloads = about(await approvals.until_sentinel(writer), signal_id)
    assert payloads == [{"approval_id": str(approval_id), "signal_id": str(signal_id)}]


async def test_other_updates_of_an_approved_row_are_silent(
    writer: asyncpg.Connection, approvals: Listener
) -> None:
    """Recording the broker's order id must not re-announce the approval."""
    signal_id = await new_signal(writer)
    approval_id = await writer.fetchval(
        "INSERT INTO trade_approvals (signal_id, approved) VALUES ($1, true) RETURNING id",
        signal_id,
    )
    assert len(about(await approvals.until_sentinel(writer), signal_id)) == 1

    await writer.execute("UPDATE trade_approvals SET order_id = '1001' WHERE id = $1", approval_id)
    assert about(await approvals.until_sentinel(writer), signal_id) == []
    await writer.execute("UPDATE trade_approvals SET approved = false WHERE id = $1", approval_id)
    assert about(await approvals.until_sentinel(writer), signal_id) == []


async def test_notification_arrives_only_at_commit(
    database_url: str, writer: asyncpg.Connection, approvals: Listener
) -> None:
    signal_id = await new_signal(writer)
    other = await asyncpg.connect(database_url)
    try:
        async with writer.transaction():
            await writer.execute(
                "INSERT INTO trade_approvals (signal_id, approved) VALUES ($1, true)", signal_id
            )
            # A sentinel committed by another session overtakes the uncommitted approval.
            assert about(await approvals.until_sentinel(other), signal_id) == []
    finally:
        await other.close()
    assert len(about(await approvals.until_sentinel(writer), signal_id)) == 1


async def test_rolled_back_approval_is_silent(
    writer: asyncpg.Connection, approvals: Listener
) -> None:
    signal_id = await new_signal(writer)
    tx = writer.transaction()
    await tx.start()
    await writer.execute(
        "INSERT INTO trade_approvals (signal_id, approved) VALUES ($1, true)", signal_id
    )
    await tx.rollback()

    assert about(await approvals.until_sentinel(writer), signal_id) == []


async def test_executor_control_update_notifies(fresh_database_url: str) -> None:
    # Its own database: halting the shared one would disturb other tests.
    await migrate(fresh_database_url)
    writer = await asyncpg.connect(fresh_database_url)
    conn = await asyncpg.connect(fresh_database_url)
    try:
        control = Listener(conn, "trade_executor_control")
        await control.start()

        await writer.execute(
            "UPDATE executor_control SET halted = true, reason = 'maintenance',"
            " changed_at = now(), changed_by = 'ops' WHERE id = 1"
        )
        await writer.execute("UPDATE executor_control SET halted = false, reason = NULL")

        payloads = [json.loads(p) for p in await control.until_sentinel(writer)]
        assert payloads == [
            {"kind": "kill_switch", "halted": True, "reason": "maintenance"},
            {"kind": "kill_switch", "halted": False, "reason": None},
        ]
    finally:
        await writer.close()
        await conn.close()
