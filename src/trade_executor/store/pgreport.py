"""The report's reads on PostgreSQL: closed positions with their strategy (ops/report.py)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from trade_executor.domain.execution import Execution
from trade_executor.store.pgerrors import translated
from trade_executor.store.pgrows import execution_from_row
from trade_executor.store.queries.report import CLOSED_BETWEEN

ClosedRow = tuple[Execution, str | None, str | None]  # the execution, strategy, instance


async def closed_between(
    pool: asyncpg.Pool, start: datetime, end: datetime, strategy: str | None = None
) -> list[ClosedRow]:
    """Positions closed in [start, end), oldest first, each with its signal's strategy id and
    strategy instance id (None where the signal has none)."""
    with translated():
        rows = await pool.fetch(CLOSED_BETWEEN, start, end, strategy)
    return [
        (execution_from_row(row), row["report_strategy"], row["report_instance"]) for row in rows
    ]
