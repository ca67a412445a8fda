"""Helpers of the drop-in tests: a database built like the original's (golang-migrate path, from
tests/fixtures/jax_golang_migrate.sql, then our migrations), signals and instances as the
original writes them, its approve button, and time zones where it is morning or afternoon now."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from trade_executor.store.migrate import migrate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLANG_MIGRATE = FIXTURES / "jax_golang_migrate.sql"

# Rows of the fixture (see its header).
APPROVED_ARTIFACT = uuid.UUID("a1000000-0000-4000-8000-000000000001")
DRAFT_ARTIFACT = uuid.UUID("a1000000-0000-4000-8000-000000000002")
APPROVED_ARTIFACT_HASH = "3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c"
MAIN_INSTANCE = uuid.UUID("b1000000-0000-4000-8000-000000000001")
MSFT_SIGNAL = uuid.UUID("51000000-0000-4000-8000-000000000002")  # ordered by it: order 77
MSFT_APPROVAL = uuid.UUID("7a000000-0000-4000-8000-000000000002")
# Its trades of today: MSFT (risk 500, Filled) and NVDA (risk 220, Submitted).
ORIGINAL_RISK_TODAY = Decimal(720)

# The original's approve button (cmd/trader/frontend_api.go, signalApprove).
ORIGINAL_APPROVE = """UPDATE strategy_signals
         SET status='approved'
         WHERE id=$1 AND status='pending' AND expires_at > NOW()"""


async def build_original_database(url: str) -> None:
    """`url` (an empty database) as the original's golang-migrate leaves it, then migrated."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(GOLANG_MIGRATE.read_text(encoding="utf-8"))
    finally:
        await conn.close()
    await migrate(url)


async def insert_jax_signal(
    conn: asyncpg.Connection,
    symbol: str,
    side: str = "BUY",
    entry: str = "150",
    stop: str = "145",
    target: str = "160",
    *,
    artifact: uuid.UUID | None = APPROVED_ARTIFACT,
    instance: uuid.UUID | None = None,
) -> uuid.UUID:
    """A pending signal as its strategy engine writes one (24 h expiry window shortened)."""
    signal_id = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO strategy_signals (id, symbol, strategy_id, signal_type, confidence,
                                      entry_price, stop_loss, take_profit, reasoning,
                                      expires_at, status, artifact_id, instance_id)
        VALUES ($1, $2, 'rsi_momentum', $3, 0.80, $4, $5, $6, 'test',
                now() + interval '1 hour', 'pending', $7, $8)
        """,
        signal_id,
        symbol,
        side,
        Decimal(entry),
        Decimal(stop),
        Decimal(target),
        artifact,
        instance,
    )
    return signal_id


async def insert_instance(
    conn: asyncpg.Connection,
    *,
    enabled: bool = True,
    timezone: str,
    flatten: str = "23:59",
    config: dict[str, Any] | None = None,
) -> uuid.UUID:
    instance_id = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO strategy_instances (id, name, strategy_type_id, strategy_id, enabled,
                                        session_timezone, flatten_by_close_time, config,
                                        artifact_id)
        VALUES ($1, $2, 'rsi_momentum', 'rsi_momentum', $3, $4, $5, $6::jsonb, $7)
        """,
        instance_id,
        f"test-{instance_id.hex[:8]}",
        enabled,
        timezone,
        flatten,
        json.dumps(config or {}),
        APPROVED_ARTIFACT,
    )
    return instance_id


async def approve_in_ui(conn: asyncpg.Connection, signal_id: uuid.UUID) -> None:
    assert await conn.execute(ORIGINAL_APPROVE, signal_id) == "UPDATE 1"


async def approve_by_row(conn: asyncpg.Connection, signal_id: uuid.UUID) -> uuid.UUID:
    approval_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO trade_approvals (id, signal_id, approved, approved_by) "
        "VALUES ($1, $2, true, 'ann')",
        approval_id,
        signal_id,
    )
    return approval_id


def zone_where_hour_in(hours: range) -> str:
    """A fixed-offset time zone whose local hour is now in `hours` (the offsets cover 27 hours,
    so a window of a few hours always has one)."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        name = "Etc/UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
        if now.astimezone(ZoneInfo(name)).hour in hours:
            return name
    raise AssertionError(f"no zone with the hour in {hours}")


async def decided(
    conn: asyncpg.Connection, signal_ids: list[uuid.UUID], *, timeout: float = 30
) -> dict[uuid.UUID, asyncpg.Record]:
    """Wait until every signal's execution has left `received`/`submitting`; return them."""
    import anyio

    with anyio.fail_after(timeout):
        while True:
            rows = await conn.fetch(
                "SELECT * FROM executions WHERE signal_id = ANY($1::uuid[])"
                " AND state NOT IN ('received', 'submitting')",
                signal_ids,
            )
            if len(rows) == len(signal_ids):
                return {row["signal_id"]: row for row in rows}
            await anyio.sleep(0.05)
