"""The random-fault state machine of `tests/unit/actors/test_fault_machine.py`, once on
PostgreSQL: `PgStore` with LISTEN/NOTIFY under the same store and broker faults, the same
properties (nothing stranded, at most one order per signal, the RiskBook equal to the one
rebuilt from the ledger)."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest

from tests.support import approve, insert_signal, paper_config, paper_in_this_loop
from tests.unit.actors.test_fault_machine import (
    MachineConfig,
    check,
    machine_settings,
    run_machine,
)
from trade_executor.domain.execution import Execution
from trade_executor.store.notifications import connect_notifications
from trade_executor.store.postgres import PgStore, create_pool, execution_from_row

pytestmark = pytest.mark.anyio


async def test_random_faults_strand_nothing_on_postgres(
    db_url: str, conn: asyncpg.Connection
) -> None:
    seed = 5
    async with paper_in_this_loop(paper_config(seed=seed)) as bridge:
        settings = machine_settings(bridge.url, db_url)
        dsn = settings.dsn()
        pool = await create_pool(dsn, min_size=1, max_size=8)
        try:

            async def add_signal(symbol: str) -> UUID:
                return await insert_signal(conn, symbol)

            async def approve_signal(signal_id: UUID) -> None:
                await approve(conn, signal_id)

            async def ledger() -> list[Execution]:
                rows = await conn.fetch("SELECT * FROM executions ORDER BY created_at")
                return [execution_from_row(row) for row in rows]

            result = await run_machine(
                MachineConfig(seed=seed),
                settings,
                PgStore(pool),
                lambda: connect_notifications(dsn),
                bridge,
                add_signal,
                approve_signal,
                ledger,
            )
        finally:
            await pool.close()
    check(result)
    assert sum(result.faults.values()) > 0
