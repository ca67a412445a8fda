"""Migrations against a real PostgreSQL: empty database, re-runs, concurrency, legacy tables."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from asyncpg.pool import PoolConnectionProxy

from tests.support.pglisten import Listener
from trade_executor.domain.execution import TradeRecord
from trade_executor.store import migrate as migrate_module
from trade_executor.store.migrate import (
    MIGRATION_LOCK_KEY,
    Migration,
    MigrationError,
    load_migrations,
    migrate,
    pending,
)
from trade_executor.store.postgres import PgStore

pytestmark = pytest.mark.anyio


# table -> column -> type as information_schema.columns shows it (udt_name for arrays).
EXPECTED_COLUMNS: dict[str, dict[str, str]] = {
    "strategy_signals": {
        "id": "uuid",
        "symbol": "text",
        "strategy_id": "text",
        "signal_type": "text",
        "confidence": "numeric",
        "entry_price": "numeric",
        "stop_loss": "numeric",
        "take_profit": "numeric",
        "reasoning": "text",
        "generated_at": "timestamp with time zone",
        "expires_at": "timestamp with time zone",
        "status": "text",
        "created_at": "timestamp with time zone",
    },
    "trade_approvals": {
        "id": "uuid",
        "signal_id": "uuid",
        "approved": "boolean",
        "approved_at": "timestamp with time zone",
        "approved_by": "text",
        "modification_notes": "text",
        "order_id": "character varying",
        "created_at": "timestamp with time zone",
    },
    "trades": {
        "id": "text",
        "signal_id": "uuid",
        "symbol": "text",
        "direction": "text",
        "entry": "numeric",
        "stop": "numeric",
        "targets": "jsonb",
        "strategy_id": "text",
        "notes": "text",
        "risk": "jsonb",
        "order_status": "text",
        "filled_qty": "integer",
        "avg_fill_price": "numeric",
        "created_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
        "instance_id": "uuid",
        "artifact_id": "uuid",
        "artifact_hash": "character varying",
    },
    "executions": {
        "id": "uuid",
        "signal_id": "uuid",
        "approval_id": "uuid",
        "state": "text",
        "reason": "text",
        "symbol": "text",
        "action": "text",
        "order_type": "text",
        "client_order_id": "text",
        "order_id": "bigint",
        "child_order_ids": "_int8",
        "quantity": "bigint",
        "entry_price": "numeric",
        "stop_loss": "numeric",
        "take_profit": "numeric",
        "risk_amount": "numeric",
        "risk_percent": "numeric",
        "position_value": "numeric",
        "filled_qty": "integer",
        "avg_fill_price": "numeric",
        "broker_status": "text",
        "trading_day": "date",
        "attempted_at": "timestamp with time zone",
        "created_at": "timestamp with time zone",
        "submitted_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
        "finished_at": "timestamp with time zone",
        "approval_source": "text",
        "position_state": "text",
        "exit_reason": "text",
        "exit_qty": "bigint",
        "exit_avg_price": "numeric",
        "realized_pnl": "numeric",
        "r_multiple": "numeric",
        "closed_at": "timestamp with time zone",
        "exit_order_id": "bigint",
        "exit_attempted_at": "timestamp with time zone",
        "reprotected_at": "timestamp with time zone",
    },
    "execution_events": {
        "id": "bigint",
        "execution_id": "uuid",
        "at": "timestamp with time zone",
        "kind": "text",
        "detail": "jsonb",
    },
    "executor_control": {
        "id": "smallint",
        "halted": "boolean",
        "reason": "text",
        "changed_at": "timestamp with time zone",
        "changed_by": "text",
        "leader_id": "text",
        "leader_epoch": "bigint",
        "leader_since": "timestamp with time zone",
        "leader_heartbeat_at": "timestamp with time zone",
        "limits": "jsonb",
    },
    "signal_status_approvals": {
        "signal_id": "uuid",
        "approved_at": "timestamp with time zone",
        "seen_at": "timestamp with time zone",
    },
    "trade_executor_migrations": {
        "version": "integer",
        "name": "text",
        "checksum": "text",
        "applied_at": "timestamp with time zone",
    },
}

EXPECTED_INDEXES = {
    "trade_approvals_signal_id_idx",
    "trade_approvals_approved_at_idx",
    "trades_signal_id_idx",
    "executions_open_state_idx",
    "executions_trading_day_idx",
    "execution_events_execution_id_idx",
    "executions_open_position_idx",
    "signal_status_approvals_unseen_idx",
}

ALL_VERSIONS = [m.version for m in load_migrations()]


Connect = Callable[[str], Awaitable[asyncpg.Connection]]


@pytest.fixture
async def conn_to() -> AsyncIterator[Connect]:
    """Open connections from a test, closed after it: `conn = await conn_to(url)`."""
    opened: list[asyncpg.Connection] = []

    async def connect(url: str) -> asyncpg.Connection:
        conn = await asyncpg.connect(url)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        await conn.close()


async def one(conn: asyncpg.Connection, query: str, *args: object) -> asyncpg.Record:
    row = await conn.fetchrow(query, *args)
    assert row is not None, query
    return row


async def columns(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        """
        SELECT column_name,
               CASE WHEN data_type = 'ARRAY' THEN udt_name ELSE data_type END AS type
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = $1
        """,
        table,
    )
    return {row["column_name"]: row["type"] for row in rows}


def test_load_migrations_sorted_with_checksums() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    assert migrations[0] == Migration(1, "initial", migrations[0].sql, migrations[0].checksum)
    assert all(len(m.checksum) == 64 and m.sql.strip() for m in migrations)
    assert MIGRATION_LOCK_KEY.bit_length() < 64  # a valid bigint for pg_advisory_lock


async def test_empty_database_gets_everything(fresh_database_url: str, conn_to: Connect) -> None:
    assert await pending(fresh_database_url) == ALL_VERSIONS

    assert await migrate(fresh_database_url) == ALL_VERSIONS

    conn = await conn_to(fresh_database_url)
    for table, expected in EXPECTED_COLUMNS.items():
        assert await columns(conn, table) == expected, table
    indexes = {r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes")}
    assert indexes >= EXPECTED_INDEXES
    triggers = {
        (r["tgname"], r["relname"])
        for r in await conn.fetch(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE NOT t.tgisinternal"
        )
    }
    assert triggers == {
        ("trade_approvals_notify", "trade_approvals"),
        ("executor_control_notify", "executor_control"),
        ("strategy_signals_status_approved", "strategy_signals"),
    }
    recorded = await conn.fetch("SELECT version, name, checksum FROM trade_executor_migrations")
    assert sorted((r["version"], r["name"], r["checksum"]) for r in recorded) == [
        (m.version, m.name, m.checksum) for m in load_migrations()
    ]
    control = await conn.fetch("SELECT id, halted FROM executor_control")
    assert [tuple(r) for r in control] == [(1, False)]
    assert await pending(fresh_database_url) == []


async def test_constraints_and_defaults(fresh_database_url: str, conn_to: Connect) -> None:
    await migrate(fresh_database_url)
    conn = await conn_to(fresh_database_url)

    # A bad signal must be storable, so that the executor can reject it with a reason.
    signal_id = await conn.fetchval(
        "INSERT INTO strategy_signals (symbol, signal_type, entry_price, stop_loss, take_profit)"
        " VALUES ('X', 'MAYBE', -1, 'NaN', 0) RETURNING id"
    )
    assert isinstance(signal_id, uuid.UUID)
    status = await conn.fetchval("SELECT status FROM strategy_signals WHERE id = $1", signal_id)
    assert status == "pending"
    approval = await one(
        conn,
        "INSERT INTO trade_approvals (signal_id) VALUES ($1) RETURNING approved, created_at",
        signal_id,
    )
    assert approval["approved"] is False and approval["created_at"] is not None
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("INSERT INTO trade_approvals (signal_id) VALUES ($1)", uuid.uuid4())

    insert_execution = (
        "INSERT INTO executions (id, signal_id, state, client_order_id) VALUES ($1, $2, $3, $4)"
    )
    execution_id, sig = uuid.uuid4(), uuid.uuid4()
    await conn.execute(insert_execution, execution_id, sig, "received", "te-1")
    row = await one(conn, "SELECT * FROM executions WHERE id = $1", execution_id)
    assert row["child_order_ids"] == [] and row["filled_qty"] == 0
    with pytest.raises(asyncpg.UniqueViolationError):  # one execution per signal, ever
        await conn.execute(insert_execution, uuid.uuid4(), sig, "received", "te-2")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert_execution, uuid.uuid4(), uuid.uuid4(), "received", "te-1")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(insert_execution, uuid.uuid4(), uuid.uuid4(), "exploded", "te-3")
    # No FK from executions to strategy_signals: the ledger does not depend on them.
    assert await conn.fetchval("SELECT count(*) FROM strategy_signals WHERE id = $1", sig) == 0

    await conn.execute(
        "INSERT INTO execution_events (execution_id, kind) VALUES ($1, 'claimed')", execution_id
    )
    event = await one(conn, "SELECT at, detail FROM execution_events")
    assert event["at"] is not None and event["detail"] == "{}"
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(
            "INSERT INTO execution_events (execution_id, kind) VALUES ($1, 'x')", uuid.uuid4()
        )
    with pytest.raises(asyncpg.CheckViolationError):  # the kill switch has exactly one row
        await conn.execute("INSERT INTO executor_control (id) VALUES (2)")


async def test_second_run_applies_nothing(fresh_database_url: str, conn_to: Connect) -> None:
    assert await migrate(fresh_database_url) == ALL_VERSIONS
    conn = await conn_to(fresh_database_url)
    await conn.execute("UPDATE executor_control SET halted = true, reason = 'kept'")

    assert await migrate(fresh_database_url) == []
    assert await migrate(fresh_database_url) == []

    assert await conn.fetchval("SELECT count(*) FROM trade_executor_migrations") == len(
        ALL_VERSIONS
    )
    control = await one(conn, "SELECT halted, reason FROM executor_control")
    assert tuple(control) == (True, "kept")


async def test_every_migration_file_is_itself_rerunnable(
    fresh_database_url: str, conn_to: Connect
) -> None:
    """The SQL is idempotent on its own (IF NOT EXISTS everywhere), not only through the log."""
    await migrate(fresh_database_url)
    conn = await conn_to(fresh_database_url)
    for migration in load_migrations():
        await conn.execute(migration.sql)
    assert await conn.fetchval("SELECT count(*) FROM executor_control") == 1


async def test_concurrent_migrations_apply_once(fresh_database_url: str, conn_to: Connect) -> None:
    results = await asyncio.gather(*(migrate(fresh_database_url) for _ in range(4)))

    assert sorted(results) == [[], [], [], ALL_VERSIONS]
    conn = await conn_to(fresh_database_url)
    assert await conn.fetchval("SELECT count(*) FROM trade_executor_migrations") == len(
        ALL_VERSIONS
    )


async def test_migrate_waits_for_the_lock(fresh_database_url: str, conn_to: Connect) -> None:
    """While another session holds the lock, migrate() applies nothing; then it proceeds."""
    holder = await conn_to(fresh_database_url)
    await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    task = asyncio.ensure_future(migrate(fresh_database_url))
    observer = await conn_to(fresh_database_url)
    # Wait (no clock) until migrate()'s session is blocked on the advisory lock; PostgreSQL
    # has no event for "a session started waiting", so poll.
    waiting = (
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted"
    )
    while not task.done() and not await observer.fetchval(waiting):
        await asyncio.sleep(0.01)
    assert not task.done()
    assert await observer.fetchval("SELECT to_regclass('executions')") is None

    await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    assert await task == ALL_VERSIONS


async def test_changed_migration_is_refused(fresh_database_url: str, conn_to: Connect) -> None:
    await migrate(fresh_database_url)
    conn = await conn_to(fresh_database_url)
    await conn.execute("UPDATE trade_executor_migrations SET checksum = 'edited' WHERE version = 1")

    with pytest.raises(MigrationError, match="0001_initial"):
        await migrate(fresh_database_url)
    with pytest.raises(MigrationError, match="0001_initial"):
        await pending(fresh_database_url)


async def test_failing_migration_is_rolled_back(
    fresh_database_url: str, conn_to: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = load_migrations()
    broken = Migration(
        version=9999,
        name="broken",
        sql="CREATE TABLE half_done (id int); SELECT no_such_function();",
        checksum="0" * 64,
    )
    monkeypatch.setattr(migrate_module, "load_migrations", lambda: [*good, broken])

    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(fresh_database_url)

    conn = await conn_to(fresh_database_url)
    assert await conn.fetchval("SELECT to_regclass('half_done')") is None
    versions = [
        r["version"] for r in await conn.fetch("SELECT version FROM trade_executor_migrations")
    ]
    assert sorted(versions) == ALL_VERSIONS  # the good ones stay applied, the broken one is not
    assert await pending(fresh_database_url) == [9999]
    # The lock was released despite the failure: a later run gets it.
    monkeypatch.setattr(migrate_module, "load_migrations", lambda: good)
    assert await migrate(fresh_database_url) == []


# The original jax-trading-assistant tables: fewer columns, DOUBLE PRECISION prices, TEXT trade id.
LEGACY_SCHEMA = """
CREATE TABLE strategy_signals (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    symbol text NOT NULL,
    strategy_id text,
    signal_type text,
    confidence double precision,
    entry_price double precision,
    stop_loss double precision,
    take_profit double precision,
    created_at timestamptz DEFAULT now()
);
CREATE TABLE trade_approvals (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    signal_id uuid,
    approved boolean,
    approved_by text
);
CREATE TABLE trades (
    id text PRIMARY KEY,
    symbol text,
    direction text,
    entry double precision,
    stop double precision,
    targets jsonb,
    strategy_id text,
    notes text,
    risk jsonb,
    filled_qty integer,
    avg_fill_price double precision,
    created_at timestamptz DEFAULT now()
);
"""


async def test_legacy_database_keeps_rows_and_types(
    fresh_database_url: str, conn_to: Connect
) -> None:
    conn = await conn_to(fresh_database_url)
    await conn.execute(LEGACY_SCHEMA)
    signal_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO strategy_signals (id, symbol, strategy_id, signal_type, confidence,"
        " entry_price, stop_loss, take_profit) VALUES ($1, 'AAPL', 'rsi', 'BUY', 0.8, 150.25,"
        " 145.5, 160.75)",
        signal_id,
    )
    approval_id = await conn.fetchval(
        "INSERT INTO trade_approvals (signal_id, approved, approved_by) VALUES ($1, true, 'ann')"
        " RETURNING id",
        signal_id,
    )
    await conn.execute(
        "INSERT INTO trades (id, symbol, direction, entry, stop, targets, risk, filled_qty,"
        " avg_fill_price) VALUES ('legacy-1', 'AAPL', 'BUY', 150.25, 145.5, '[160.75]',"
        ' \'{"amount": 665, "quantity": 133}\', 133, 150.3)'
    )
    before = {table: await columns(conn, table) for table in ("strategy_signals", "trades")}
    before["trade_approvals"] = await columns(conn, "trade_approvals")

    assert await migrate(fresh_database_url) == ALL_VERSIONS

    for table, old in before.items():
        now = await columns(conn, table)
        # Nothing dropped nor retyped...
        assert {name: now[name] for name in old} == old, table
        # ...and every column of ours added.
        assert set(now) >= set(EXPECTED_COLUMNS[table]), table
    assert (await columns(conn, "trades"))["entry"] == "double precision"
    for table in ("executions", "execution_events", "executor_control", "signal_status_approvals"):
        assert await columns(conn, table) == EXPECTED_COLUMNS[table]

    signal = await one(
        conn,
        "SELECT symbol, entry_price::numeric AS entry, status, created_at"
        " FROM strategy_signals WHERE id = $1",
        signal_id,
    )
    assert signal["symbol"] == "AAPL" and signal["entry"] == Decimal("150.25")
    assert signal["status"] == "pending"  # the added column's default fills old rows
    approval = await one(
        conn,
        "SELECT signal_id, approved, approved_by, order_id FROM trade_approvals WHERE id = $1",
        approval_id,
    )
    assert tuple(approval) == (signal_id, True, "ann", None)
    trade = await one(
        conn,
        "SELECT id, entry, stop::numeric AS stop, risk, filled_qty, avg_fill_price, updated_at"
        " FROM trades",
    )
    assert trade["id"] == "legacy-1" and trade["entry"] == 150.25
    assert trade["stop"] == Decimal("145.5") and trade["filled_qty"] == 133
    assert trade["avg_fill_price"] == 150.3 and '"quantity": 133' in trade["risk"]

    # The legacy table keeps accepting our writes (a Decimal cast through numeric).
    await conn.execute(
        "INSERT INTO trades (id, signal_id, entry, stop) VALUES ('new-1', $1, $2::numeric, $3)",
        signal_id,
        Decimal("10.01"),
        9.5,
    )
    assert await conn.fetchval("SELECT count(*) FROM trades") == 2
    assert await migrate(fresh_database_url) == []


async def test_legacy_approval_trigger_is_installed(
    fresh_database_url: str, conn_to: Connect
) -> None:
    """The trigger works on a legacy trade_approvals whose `approved` column is nullable."""
    conn = await conn_to(fresh_database_url)
    await conn.execute(LEGACY_SCHEMA)
    await migrate(fresh_database_url)

    received: list[str] = []
    done = asyncio.Event()

    def on_notify(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        received.append(str(payload))
        if payload == "end":
            done.set()

    listener = await conn_to(fresh_database_url)
    await listener.add_listener("trade_approvals", on_notify)
    await conn.execute("INSERT INTO trade_approvals (approved) VALUES (NULL)")
    approval_id = await conn.fetchval(
        "INSERT INTO trade_approvals (approved) VALUES (true) RETURNING id"
    )
    await conn.execute("SELECT pg_notify('trade_approvals', 'end')")
    await asyncio.wait_for(done.wait(), timeout=30)  # a guard against a hang, not a timing test
    assert len(received) == 2 and str(approval_id) in received[0]


def test_concurrent_migrations_from_processes(fresh_database_url: str) -> None:
    """The advisory lock serialises separate processes too (each its own session)."""
    script = (
        "import asyncio, json, sys\n"
        "from trade_executor.store.migrate import migrate\n"
        "print(json.dumps(asyncio.run(migrate(sys.argv[1]))))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, fresh_database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(results) == [[], [], ALL_VERSIONS]


# -- version 2 columns ---------------------------------------------------------------------------


async def test_v2_execution_columns(fresh_database_url: str, conn_to: Connect) -> None:
    await migrate(fresh_database_url)
    conn = await conn_to(fresh_database_url)
    insert = (
        "INSERT INTO executions (id, signal_id, state, client_order_id, quantity)"
        " VALUES ($1, $2, 'received', $3, $4)"
    )
    execution_id = uuid.uuid4()
    await conn.execute(insert, execution_id, uuid.uuid4(), f"te-{execution_id}", 10**10)
    row = await one(conn, "SELECT * FROM executions WHERE id = $1", execution_id)
    assert row["quantity"] == 10**10  # bigint
    assert row["approval_source"] == "trade_approvals" and row["approval_id"] is None
    assert row["position_state"] is None and row["exit_reason"] is None

    # A status approval has no trade_approvals row.
    status_approved = uuid.uuid4()
    await conn.execute(
        "INSERT INTO executions (id, signal_id, state, client_order_id, approval_source)"
        " VALUES ($1, $2, 'received', $3, 'signal_status')",
        status_approved,
        uuid.uuid4(),
        f"te-{status_approved}",
    )
    for column, bad in (
        ("approval_source", "carrier_pigeon"),
        ("position_state", "sideways"),
        ("exit_reason", "boredom"),
    ):
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                f"UPDATE executions SET {column} = $2 WHERE id = $1", execution_id, bad
            )
    await conn.execute(
        "UPDATE executions SET position_state = 'closed', exit_reason = 'take_profit',"
        " exit_qty = 133, exit_avg_price = 160.02, realized_pnl = 1332.66, r_multiple = 2.004,"
        " closed_at = now() WHERE id = $1",
        execution_id,
    )
    closed = await one(
        conn, "SELECT exit_avg_price, realized_pnl FROM executions WHERE id = $1", execution_id
    )
    assert tuple(closed) == (Decimal("160.02"), Decimal("1332.66"))

    control = await one(conn, "SELECT leader_id, leader_epoch, limits FROM executor_control")
    assert tuple(control) == (None, 0, None)


async def test_leader_heartbeat_does_not_notify_control(
    fresh_database_url: str, conn_to: Connect
) -> None:
    """Only the kill switch's columns announce a change on `trade_executor_control`."""
    await migrate(fresh_database_url)
    writer = await conn_to(fresh_database_url)
    listener = await conn_to(fresh_database_url)
    channel = Listener(listener, "trade_executor_control")
    await channel.start()

    await writer.execute(
        "UPDATE executor_control SET leader_id = 'host:1', leader_epoch = leader_epoch + 1,"
        " leader_since = now(), leader_heartbeat_at = now(), limits = '{\"MAX_DAILY_LOSS\": 0}'"
    )
    assert await channel.until_sentinel(writer) == []

    await writer.execute("UPDATE executor_control SET halted = true, reason = 'ops'")
    payloads = [json.loads(p) for p in await channel.until_sentinel(writer)]
    assert payloads == [{"kind": "kill_switch", "halted": True, "reason": "ops"}]


# -- takeover of trade-executor's own table of before version 2 ------------------------------

OLD_TABLE = """
CREATE TABLE schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
GOLANG_MIGRATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"
)


async def install_as_before_v2(conn: asyncpg.Connection, versions: list[int]) -> None:
    """What trade-executor before version 2 left: these migrations applied, its own table."""
    await conn.execute(OLD_TABLE)
    for migration in load_migrations():
        if migration.version in versions:
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                " VALUES ($1, $2, $3, now() - interval '30 days')",
                migration.version,
                migration.name,
                migration.checksum,
            )


async def test_table_of_before_v2_is_taken_over(fresh_database_url: str, conn_to: Connect) -> None:
    conn = await conn_to(fresh_database_url)
    old_versions = ALL_VERSIONS[:2]  # 0001 and 0002 existed before version 2
    await install_as_before_v2(conn, old_versions)
    old_rows = await conn.fetch("SELECT * FROM schema_migrations ORDER BY version")

    # `pending` reads the old table without changing anything.
    assert await pending(fresh_database_url) == ALL_VERSIONS[2:]
    assert await conn.fetchval("SELECT to_regclass('trade_executor_migrations')") is None

    assert await migrate(fresh_database_url) == ALL_VERSIONS[2:]

    recorded = await conn.fetch("SELECT * FROM trade_executor_migrations ORDER BY version")
    assert [r["version"] for r in recorded] == ALL_VERSIONS
    # Copied as they were: the takeover keeps when they were applied.
    assert [dict(r) for r in recorded[: len(old_rows)]] == [dict(r) for r in old_rows]
    assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
    legacy = await conn.fetch("SELECT * FROM trade_executor_migrations_legacy ORDER BY version")
    assert [dict(r) for r in legacy] == [dict(r) for r in old_rows]
    constraints = {
        r["conname"]
        for r in await conn.fetch(
            "SELECT conname FROM pg_constraint"
            " WHERE conrelid = 'trade_executor_migrations_legacy'::regclass"
        )
    }
    assert constraints == {"trade_executor_migrations_legacy_pkey"}

    # The name is free for golang-migrate again (its primary key's name included), and a later
    # run leaves its table alone.
    await conn.execute(GOLANG_MIGRATE_TABLE)
    await conn.execute("INSERT INTO schema_migrations (version, dirty) VALUES (13, false)")
    assert await migrate(fresh_database_url) == []
    assert await pending(fresh_database_url) == []
    rows = await conn.fetch("SELECT version, dirty FROM schema_migrations")
    assert [tuple(r) for r in rows] == [(13, False)]


async def test_takeover_twice_keeps_both_old_tables(
    fresh_database_url: str, conn_to: Connect
) -> None:
    """An older trade-executor run again after the upgrade re-creates its table: taken over too."""
    conn = await conn_to(fresh_database_url)
    await install_as_before_v2(conn, ALL_VERSIONS[:2])
    await migrate(fresh_database_url)
    await install_as_before_v2(conn, ALL_VERSIONS[:1])  # what the older binary records again

    assert await migrate(fresh_database_url) == []

    assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
    again = await conn.fetch("SELECT version FROM trade_executor_migrations_legacy_2")
    assert [r["version"] for r in again] == ALL_VERSIONS[:1]
    count = await conn.fetchval("SELECT count(*) FROM trade_executor_migrations")
    assert count == len(ALL_VERSIONS)


async def test_someone_elses_schema_migrations_is_left_alone(
    fresh_database_url: str, conn_to: Connect
) -> None:
    conn = await conn_to(fresh_database_url)
    await conn.execute("CREATE TABLE schema_migrations (id serial PRIMARY KEY, script text)")
    await conn.execute("INSERT INTO schema_migrations (script) VALUES ('V1__init.sql')")

    assert await migrate(fresh_database_url) == ALL_VERSIONS

    rows = await conn.fetch("SELECT id, script FROM schema_migrations")
    assert [tuple(r) for r in rows] == [(1, "V1__init.sql")]
    assert await columns(conn, "schema_migrations") == {"id": "integer", "script": "text"}


# -- databases built by jax-trading-assistant ----------------------------------------------------

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@dataclass(frozen=True)
class OriginalDatabase:
    """A fixture file and the ids of its rows that the tests use."""

    fixture: str
    pending_signal: uuid.UUID  # AAPL, BUY 150 / stop 145 / take-profit 160, pending
    approved_signals: tuple[uuid.UUID, ...]  # approved before trade-executor was installed
    has_golang_migrate: bool


GOLANG_MIGRATE = OriginalDatabase(
    fixture="jax_golang_migrate.sql",
    pending_signal=uuid.UUID("51000000-0000-4000-8000-000000000001"),
    approved_signals=(
        uuid.UUID("51000000-0000-4000-8000-000000000002"),
        uuid.UUID("51000000-0000-4000-8000-000000000003"),
        uuid.UUID("51000000-0000-4000-8000-000000000006"),
    ),
    has_golang_migrate=True,
)
COMPOSE_INIT = OriginalDatabase(
    fixture="jax_compose_init.sql",
    pending_signal=uuid.UUID("52000000-0000-4000-8000-000000000001"),
    approved_signals=(
        uuid.UUID("52000000-0000-4000-8000-000000000002"),
        uuid.UUID("52000000-0000-4000-8000-000000000003"),
    ),
    has_golang_migrate=False,
)


@pytest.fixture(params=[GOLANG_MIGRATE, COMPOSE_INIT], ids=lambda db: db.fixture)
def original(request: pytest.FixtureRequest) -> OriginalDatabase:
    database: OriginalDatabase = request.param
    return database


async def load_original(url: str, database: OriginalDatabase, conn_to: Connect) -> None:
    conn = await conn_to(url)
    await conn.execute((FIXTURES / database.fixture).read_text(encoding="utf-8"))


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableState:
    columns: dict[str, str]
    rows: int
    digest: str  # md5 of every row (its columns of before), sorted


async def table_states(conn: asyncpg.Connection) -> dict[str, TableState]:
    tables = [
        r["table_name"]
        for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    ]
    return {table: await table_state(conn, table, None) for table in tables}


async def table_state(
    conn: asyncpg.Connection, table: str, only: dict[str, str] | None
) -> TableState:
    """The table's columns and a digest of its rows, restricted to the columns `only` names."""
    all_columns = await columns(conn, table)
    kept = {name: all_columns.get(name, "<missing>") for name in (only or all_columns)}
    select = ", ".join(quote(name) for name in sorted(kept) if name in all_columns)
    row = await one(
        conn,
        f"SELECT count(*) AS n, md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), ''))"
        f" AS digest FROM (SELECT {select} FROM {quote(table)}) r",
    )
    return TableState(kept, row["n"], row["digest"])


async def test_original_database_migrates_twice_and_keeps_everything(
    fresh_database_url: str, conn_to: Connect, original: OriginalDatabase
) -> None:
    await load_original(fresh_database_url, original, conn_to)
    conn = await conn_to(fresh_database_url)
    before = await table_states(conn)
    golang_oid = await conn.fetchval("SELECT to_regclass('schema_migrations')::oid")
    assert (golang_oid is not None) == original.has_golang_migrate
    assert all(state.rows > 0 for name, state in before.items() if name == "trades")

    assert await pending(fresh_database_url) == ALL_VERSIONS
    assert await migrate(fresh_database_url) == ALL_VERSIONS
    assert await migrate(fresh_database_url) == []
    assert await pending(fresh_database_url) == []

    for table, old in before.items():
        # Every row, every column with its type: nothing dropped, retyped or rewritten.
        assert await table_state(conn, table, old.columns) == old, table
    for table, expected in EXPECTED_COLUMNS.items():
        assert set(await columns(conn, table)) >= set(expected), table

    # golang-migrate's table: the same relation, columns and row; none created where it had none.
    assert await conn.fetchval("SELECT to_regclass('schema_migrations')::oid") == golang_oid
    if original.has_golang_migrate:
        assert await columns(conn, "schema_migrations") == {"version": "bigint", "dirty": "boolean"}
        rows = await conn.fetch("SELECT version, dirty FROM schema_migrations")
        assert [tuple(r) for r in rows] == [(13, False)]


# The original's own queries, as its Go code sends them (jax-trading-assistant,
# internal/modules/execution/service.go and cmd/trader/frontend_api.go), kept here as the reference.
ORIGINAL_DAILY_RISK = """
        SELECT COALESCE(SUM((risk->>'amount')::numeric), 0)
        FROM trades
        WHERE created_at >= date_trunc('day', NOW())
    """
ORIGINAL_TRADE_BY_SIGNAL = """
        SELECT id::text, symbol, direction, entry, stop, targets, strategy_id,
               order_status, filled_qty, avg_fill_price, created_at, risk,
               instance_id, artifact_id, artifact_hash
        FROM trades
        WHERE signal_id = $1
        ORDER BY created_at DESC
        LIMIT 1
    """
ORIGINAL_TRADE_LIST = (
    """SELECT id, symbol, direction, entry, stop, targets, strategy_id,
            notes, risk, signal_id::text, order_status, filled_qty, avg_fill_price, created_at
            FROM trades WHERE 1=1"""
    + " ORDER BY created_at DESC LIMIT $1"
)
ORIGINAL_APPROVE = """UPDATE strategy_signals
         SET status='approved'
         WHERE id=$1 AND status='pending' AND expires_at > NOW()"""


async def test_original_queries_read_our_trade(
    fresh_database_url: str, conn_to: Connect, original: OriginalDatabase
) -> None:
    await load_original(fresh_database_url, original, conn_to)
    await migrate(fresh_database_url)
    conn = await conn_to(fresh_database_url)
    signal_id = original.pending_signal
    assert await conn.execute(ORIGINAL_APPROVE, signal_id) == "UPDATE 1"
    trades_before = await conn.fetchval("SELECT count(*) FROM trades")
    strategy_id = await conn.fetchval(
        "SELECT strategy_id FROM strategy_signals WHERE id = $1", signal_id
    )
    # CONTRACT's worked example: entry 150, stop 145, take-profit 160 on 100000 -> 133 shares.
    trade = TradeRecord(
        trade_id=str(uuid.uuid4()),  # our trade id is the execution id
        signal_id=signal_id,
        symbol="AAPL",
        direction="BUY",
        entry=Decimal("150.00"),
        stop=Decimal("145.00"),
        take_profit=Decimal("160.00"),
        strategy_id=strategy_id,
        notes=None,
        quantity=133,
        risk_amount=Decimal("665.00"),
        risk_percent=Decimal("0.00665"),
        position_value=Decimal("19950.00"),
        order_id=1001,
        order_status="Submitted",
    )

    # Daily risk: read before and after our write in one transaction (one now(), no midnight race).
    async with conn.transaction():
        risk_before = await conn.fetchval(ORIGINAL_DAILY_RISK)
        # The service's own write of a trade row (it takes a pooled connection: the same API).
        await PgStore._write_trade(cast("PoolConnectionProxy[asyncpg.Record]", conn), trade)
        risk_after = await conn.fetchval(ORIGINAL_DAILY_RISK)
    assert risk_after - risk_before == trade.risk_amount

    row = await one(conn, ORIGINAL_TRADE_BY_SIGNAL, signal_id)
    assert str(uuid.UUID(row["id"])) == trade.trade_id  # the original parses it as a uuid
    assert (row["symbol"], row["direction"], row["strategy_id"]) == ("AAPL", "BUY", strategy_id)
    # Its Go code scans entry and stop into float64 and targets into []float64.
    assert (float(row["entry"]), float(row["stop"])) == (150.0, 145.0)
    assert json.loads(row["targets"]) == [160]
    assert (row["order_status"], row["filled_qty"], row["avg_fill_price"]) == ("Submitted", 0, None)
    risk = json.loads(row["risk"], parse_float=Decimal)
    # Its GetTradeBySignal reads these keys; order_id must be a JSON string, quantity a number.
    assert risk == {
        "amount": Decimal("665.00"),
        "percent": Decimal("0.00665"),
        "position_value": Decimal("19950.00"),
        "quantity": 133,
        "order_id": "1001",
        "status": "Submitted",
    }

    listed = await conn.fetch(ORIGINAL_TRADE_LIST, 100)
    assert len(listed) == trades_before + 1
    newest = listed[0]  # ORDER BY created_at DESC: ours was written last
    assert (newest["id"], newest["signal_id"]) == (trade.trade_id, str(signal_id))
    assert newest["notes"] is None and json.loads(newest["targets"]) == [160]


async def test_status_approval_recorded_and_announced_once(
    fresh_database_url: str, conn_to: Connect, original: OriginalDatabase
) -> None:
    await load_original(fresh_database_url, original, conn_to)
    await migrate(fresh_database_url)
    writer = await conn_to(fresh_database_url)
    channel = Listener(await conn_to(fresh_database_url), "trade_approvals")
    await channel.start()
    signal_id = original.pending_signal

    # History: signals approved before installation get no row.
    assert await writer.fetchval("SELECT count(*) FROM signal_status_approvals") == 0

    assert await writer.execute(ORIGINAL_APPROVE, signal_id) == "UPDATE 1"
    payloads = [json.loads(p) for p in await channel.until_sentinel(writer)]
    assert payloads == [{"signal_id": str(signal_id), "source": "signal_status"}]
    recorded = await writer.fetch("SELECT signal_id, seen_at FROM signal_status_approvals")
    assert [tuple(r) for r in recorded] == [(signal_id, None)]

    # Re-updates: approved again, another column, away and back, and the already approved ones.
    await writer.execute("UPDATE strategy_signals SET status = 'approved' WHERE id = $1", signal_id)
    await writer.execute(
        "UPDATE strategy_signals SET reasoning = 'edited' WHERE id = $1", signal_id
    )
    await writer.execute("UPDATE strategy_signals SET status = 'pending' WHERE id = $1", signal_id)
    await writer.execute(ORIGINAL_APPROVE, signal_id)
    await writer.execute(
        "UPDATE strategy_signals SET status = 'approved' WHERE id = ANY($1::uuid[])",
        list(original.approved_signals),
    )
    assert await channel.until_sentinel(writer) == []
    count = await writer.fetchval("SELECT count(*) FROM signal_status_approvals")
    assert count == 1


async def test_status_approval_needs_no_right_on_our_table(
    fresh_database_url: str, conn_to: Connect
) -> None:
    """The original's role, with rights on its own tables only, can still approve in its UI."""
    await load_original(fresh_database_url, GOLANG_MIGRATE, conn_to)
    await migrate(fresh_database_url)
    admin = await conn_to(fresh_database_url)
    role = f"jax_{uuid.uuid4().hex[:12]}"  # hex only: safe to interpolate
    await admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        await admin.execute(f"GRANT SELECT, UPDATE ON strategy_signals TO {role}")
        server = urlsplit(fresh_database_url)
        netloc = f"{role}@{server.hostname}:{server.port or 5432}"
        try:
            as_jax = await conn_to(urlunsplit(server._replace(netloc=netloc)))
        except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError):
            pytest.skip("the test server does not let a new role log in without a password")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_jax.fetch("SELECT * FROM signal_status_approvals")

        assert await as_jax.execute(ORIGINAL_APPROVE, GOLANG_MIGRATE.pending_signal) == "UPDATE 1"

        recorded = await admin.fetchval("SELECT signal_id FROM signal_status_approvals")
        assert recorded == GOLANG_MIGRATE.pending_signal
        await as_jax.close()  # before DROP ROLE
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
