"""Migrations against a real PostgreSQL: empty database, re-runs, concurrency, legacy tables."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import asyncpg
import pytest

from trade_executor.store import migrate as migrate_module
from trade_executor.store.migrate import (
    MIGRATION_LOCK_KEY,
    Migration,
    MigrationError,
    load_migrations,
    migrate,
    pending,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # asyncpg runs on asyncio only


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
        "quantity": "integer",
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
    },
    "schema_migrations": {
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
    }
    recorded = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
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

    assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(ALL_VERSIONS)
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
    assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(ALL_VERSIONS)


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
    await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")

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
    versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
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
    for table in ("executions", "execution_events", "executor_control"):
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
