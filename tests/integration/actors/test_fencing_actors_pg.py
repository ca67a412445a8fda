"""A deposed leader's actors change nothing, on PostgreSQL (CONTRACT section 5, "Fencing"): its
claim inserts no execution, its intent write leaves the row `received`, it never POSTs, and a
fenced store still records what the broker already has. (These ran on the memory store's copy
of the fence before; the fence is PostgreSQL's own now: tests/integration/test_fencing.py holds
the store's side and the service's.)

The actors run as `build_actors` wires them, on `PgStore` with LISTEN/NOTIFY, against the paper
bridge in its own thread, whose request log is the judge of "never POSTs"."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import anyio
import asyncpg
import pytest
from structlog.testing import capture_logs

from tests.integration.actors.test_deadlines_pg import settings_for
from tests.support import ThreadedBridge, approve, insert_signal
from trade_executor.actors.executor import Executor
from trade_executor.actors.supervisor import Supervisor
from trade_executor.broker.client import BrokerClient
from trade_executor.config.sources import Settings
from trade_executor.domain.execution import Changes
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.observability.metrics import Metrics
from trade_executor.service.wiring import build_actors
from trade_executor.store.leadership import TAKE_OVER
from trade_executor.store.notifications import connect_notifications
from trade_executor.store.postgres import PgStore, create_pool
from trade_executor.store.protocol import Claimed, ClaimOutcome

pytestmark = pytest.mark.anyio

DEADLINE = 20.0  # a hang guard, never a measured duration


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # asyncpg


async def take_over(conn: asyncpg.Connection, leader: str = "other:1") -> int:
    """What another instance's takeover writes (without its lock)."""
    return int(await conn.fetchval(TAKE_OVER, leader, "{}"))


class TakenOverAfterClaim(PgStore):
    """Another instance takes over right after this one's claim commits: the claim stands, the
    intent write that follows is fenced."""

    async def claim(
        self, approval_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        outcome = await super().claim(approval_id, execution_id, client_order_id)
        await self.pool.fetchval(TAKE_OVER, "other:1", "{}")  # as `take_over`
        return outcome


@asynccontextmanager
async def leading(
    settings: Settings, conn: asyncpg.Connection, store_class: type[PgStore] = PgStore
) -> AsyncIterator[tuple[PgStore, Executor]]:
    """The actors of one instance that took over (its store fenced with the new epoch)."""
    dsn = settings.dsn()
    pool = await create_pool(dsn, min_size=1, max_size=6)
    try:
        store = store_class(pool)
        store.fence(await take_over(conn, "this:1"))
        async with BrokerClient(settings.ib_bridge_url, settings.ib_bridge_timeout) as broker:
            actors = build_actors(
                settings, store, broker, Metrics(), lambda: connect_notifications(dsn)
            )
            async with anyio.create_task_group() as tg:
                await actors.start(tg, Supervisor(backoff_base=0.01))
                yield store, actors.executor
                tg.cancel_scope.cancel()
    finally:
        await pool.close()


async def until_logged(
    logs: list[MutableMapping[str, Any]], event: str
) -> MutableMapping[str, Any]:
    with anyio.fail_after(DEADLINE):
        while True:
            for entry in logs:
                if entry.get("event") == event:
                    return entry
            await anyio.sleep(0.01)


async def test_a_fenced_store_still_records_what_the_broker_has(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """Fencing guards claims and intents only: a deposed leader may still record the broker's
    answer to an order it sent before the takeover."""
    pool = await create_pool(db_url, min_size=1, max_size=2)
    try:
        store = PgStore(pool)
        store.fence(await take_over(conn))
        signal_id = await insert_signal(conn, "FENR")
        claimed = await store.claim(await approve(conn, signal_id), uuid.uuid4(), "te-fenr")
        assert isinstance(claimed, Claimed)
        await take_over(conn)
        rejected = await store.apply(claimed.execution.id, Transition.REJECT, Changes(reason="x"))
    finally:
        await pool.close()
    assert rejected.state is ExecutionState.REJECTED


async def test_a_deposed_executor_claims_nothing_and_posts_nothing(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    with capture_logs() as logs:
        async with leading(settings_for(db_url, bridge), conn):
            await take_over(conn)  # another instance took over; this one has not noticed yet
            signal_id = await insert_signal(conn, "FEND")
            await approve(conn, signal_id)
            fenced = await until_logged(logs, "approval.fenced")

    assert fenced["log_level"] == "warning"
    assert await conn.fetchval("SELECT count(*) FROM executions") == 0
    assert bridge.order_posts() == []
    assert not [e for e in logs if e["log_level"] in ("error", "critical")], logs


async def test_a_fenced_intent_sends_nothing_and_leaves_the_row_received(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    with capture_logs() as logs:
        async with leading(settings_for(db_url, bridge), conn, TakenOverAfterClaim) as running:
            _, executor = running
            signal_id = await insert_signal(conn, "FENE")
            await approve(conn, signal_id)
            fenced = await until_logged(logs, "execution.fenced")
            reserved = executor.riskbook.daily_risk_used(datetime.now(UTC))

    assert fenced["log_level"] == "warning"
    row = await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", signal_id)
    assert row is not None and row["state"] == "received"  # left for the new leader
    assert row["reason"] is None and row["quantity"] is None
    kinds = await conn.fetch(
        "SELECT kind FROM execution_events WHERE execution_id = $1 ORDER BY id", row["id"]
    )
    assert [r["kind"] for r in kinds] == ["execution.claimed"]
    assert bridge.order_posts() == []
    assert reserved == Decimal(0)  # the deposed instance's reservation was released
    assert not [e for e in logs if e["log_level"] in ("error", "critical")], logs
