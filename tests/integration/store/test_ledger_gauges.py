"""`Store.ledger_gauges` (issue 22): the state gauges from one aggregate instead of re-reading
every open execution every 5 s. On a ledger with every state, each side of each bound, other
days and a NULL trading day, PostgreSQL's aggregate gives what the domain's own rules give over
`executions_on(today)` and `executions_in(NOT_FINAL_STATES)`: `needing_operator` and the
RiskBook rebuilt from the ledger (`rebuild_riskbook`), and the memory store agrees too."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from trade_executor.domain.attention import RECOVERY_NOT_PLACED, Bounds, needing_operator
from trade_executor.domain.ledger import rebuild_riskbook, todays_risk
from trade_executor.domain.sizing import RiskLimits
from trade_executor.domain.states import NOT_FINAL_STATES, ExecutionState
from trade_executor.store.postgres import PgStore, create_pool
from trade_executor_dev.testing import MemoryStore

pytestmark = pytest.mark.anyio

S = ExecutionState
NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)  # 10:00 in New York
TODAY = date(2026, 12, 8)
BOUNDS = Bounds(
    received=timedelta(seconds=60),
    submitting=timedelta(seconds=135),
    working=timedelta(seconds=300),
)
INSERT = """
INSERT INTO executions (id, signal_id, state, reason, client_order_id, symbol, risk_amount,
                        filled_qty, trading_day, created_at, attempted_at, submitted_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'SYM', $6, $7, $8, $9, $10, $11, $12)
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # asyncpg


def _rows() -> list[tuple[object, ...]]:
    """Every state x (today, yesterday, no day) x (young, past its bound) x fills, a few
    `failed` reasons, NULL times."""
    rows: list[tuple[object, ...]] = []
    ages = (timedelta(seconds=10), timedelta(seconds=400))
    days: tuple[date | None, ...] = (TODAY, TODAY - timedelta(days=1), None)
    for n, (state, day, age, filled) in enumerate(itertools.product(list(S), days, ages, (0, 3))):
        at = NOW - age
        reason = None
        if state is S.FAILED and n % 2:
            reason = RECOVERY_NOT_PLACED + "absence not proven"
        elif state is S.FAILED:
            reason = "not_placed: the bridge does not list it"
        risk = Decimal(n + 1) + Decimal("0.25")
        rows.append((state.value, reason, risk, filled, day, at, at, at, at))
    # Times left NULL: the bound is judged from `updated_at` instead.
    rows.append((S.SUBMITTING.value, None, None, 0, TODAY, NOW, None, None, NOW - ages[1]))
    rows.append((S.SUBMITTED.value, None, Decimal(9), 0, TODAY, NOW, NOW, None, NOW - ages[1]))
    return rows


async def test_the_aggregate_gives_what_the_rules_give(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        for i, (
            state,
            reason,
            risk,
            filled,
            day,
            created,
            attempted,
            submitted,
            updated,
        ) in enumerate(_rows()):
            await conn.execute(
                INSERT,
                uuid.uuid4(),
                uuid.uuid4(),
                state,
                reason,
                f"te-{i}",
                risk,
                filled,
                day,
                created,
                attempted,
                submitted,
                updated,
            )
    finally:
        await conn.close()
    pool = await create_pool(db_url)
    try:
        store = PgStore(pool)
        rows = [
            *await store.executions_on(TODAY),
            *await store.executions_in(sorted(NOT_FINAL_STATES)),
        ]
        expected_needing = len(needing_operator(rows, BOUNDS, NOW))
        limits = RiskLimits(Decimal("0.01"), 1, 1000, Decimal("0.2"), 0, Decimal(0))
        expected_risk = rebuild_riskbook(limits, NY, rows, NOW).daily_risk_used(NOW)
        assert expected_needing > 5 and expected_risk > 0  # the ledger exercises both
        assert todays_risk(rows, TODAY) == expected_risk

        got = await store.ledger_gauges(TODAY, NOW, BOUNDS)
        assert (got.needing_operator, got.daily_risk_used) == (expected_needing, expected_risk)
        # Without a bound for working orders (ORDER_TIMEOUT_ACTION=leave) fewer need a person.
        leave = Bounds(BOUNDS.received, BOUNDS.submitting, None)
        got_leave = await store.ledger_gauges(TODAY, NOW, leave)
        assert got_leave.needing_operator == len(needing_operator(rows, leave, NOW))
        assert got_leave.needing_operator < expected_needing

        memory = MemoryStore()
        for execution in {e.id: e for e in rows}.values():
            memory._t.executions[execution.id] = execution  # the same ledger, as rows
        memory_got = await memory.ledger_gauges(TODAY, NOW, BOUNDS)
        assert memory_got == got
    finally:
        await pool.close()
