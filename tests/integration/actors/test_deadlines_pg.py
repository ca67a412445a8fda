"""No execution is stranded, against the real store (PostgreSQL): issue 11's reproductions 3
(an error that repeats before the POST), 4 (a symbol with blanks) and 6 (a reconciliation that
raises), and the deadline scan picking up a claim nobody decides.

The actors are `build_actors` on `PgStore` with PostgreSQL's LISTEN/NOTIFY, short
test-configured bounds, and the real client against a paper bridge in its own thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import anyio
import asyncpg
import pytest

from tests.support import ThreadedBridge, approve, insert_signal, threaded_bridge, wait_for
from tests.support.proxybroker import ProxyBroker, broker_functions_overridable
from trade_executor.actors.supervisor import Supervisor
from trade_executor.broker.client import BrokerClient
from trade_executor.config.limits import state_bounds
from trade_executor.config.sources import Settings, load_settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.states import Transition
from trade_executor.observability.metrics import Metrics
from trade_executor.service.wiring import Actors, build_actors
from trade_executor.store.notifications import connect_notifications
from trade_executor.store.postgres import PgStore, create_pool
from trade_executor.store.protocol import Claimed
from trade_executor_dev.paper import Faults

# The service never blocks the event loop (blockbuster: tests/conftest.py).
pytestmark = [pytest.mark.anyio, pytest.mark.no_blocking]

STATE = "SELECT state FROM executions WHERE signal_id = $1"


def settings_for(db_url: str, bridge: ThreadedBridge, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "ib_bridge_url": bridge.url,
        "ib_bridge_timeout": 1,
        "execution_enabled": True,
        "max_daily_loss": 100000,
        "order_poll_interval": 0.1,
        "order_poll_timeout": 30,
        "sweep_interval": 600,
        "listener_health_interval": 0.2,
        "shutdown_grace": 1,
        "http_port": 0,
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class Running:
    store: PgStore
    actors: Actors
    broker: ProxyBroker


@asynccontextmanager
async def pg_actors(
    settings: Settings, *, prepare: Callable[[ProxyBroker], None] | None = None
) -> AsyncIterator[Running]:
    assert settings.database_url is not None
    dsn = settings.dsn()
    pool = await create_pool(dsn, min_size=1, max_size=6)
    try:
        store = PgStore(pool)
        async with BrokerClient(settings.ib_bridge_url, settings.ib_bridge_timeout) as client:
            broker = ProxyBroker(client)
            if prepare is not None:
                prepare(broker)
            actors = build_actors(
                settings,
                store,
                broker,
                Metrics(),
                lambda: connect_notifications(dsn),
                bounds=state_bounds(settings, received=0.3, reconcile_window=0.5),
                scan_interval=0.05,
            )
            with broker_functions_overridable():
                async with anyio.create_task_group() as tg:
                    await actors.start(tg, Supervisor(backoff_base=0.01))
                    yield Running(store, actors, broker)
                    tg.cancel_scope.cancel()
    finally:
        await pool.close()


async def claim_quietly(
    conn: asyncpg.Connection, store: PgStore, symbol: str, execution_id: UUID | None = None
) -> Execution:
    """A claim nobody decides (a crash right after it, a deposed leader): the approval is
    inserted with triggers off for this session (no NOTIFY reaches the listener), then claimed
    directly, as the lost process did."""
    signal_id = await insert_signal(conn, symbol)
    await conn.execute("SET session_replication_role = replica")
    try:
        approval_id = await approve(conn, signal_id)
    finally:
        await conn.execute("SET session_replication_role = DEFAULT")
    execution_id = execution_id or uuid4()
    claim = await store.claim(approval_id, execution_id, f"te-{execution_id.hex}")
    assert isinstance(claim, Claimed), claim
    return claim.execution


async def left_submitting(
    conn: asyncpg.Connection, store: PgStore, symbol: str, execution_id: UUID | None = None
) -> Execution:
    claimed = await claim_quietly(conn, store, symbol, execution_id)
    plan = Changes(
        action="BUY",
        order_type="LMT",
        quantity=133,
        entry_price=Decimal("150"),
        stop_loss=Decimal("145"),
        take_profit=Decimal("160"),
        risk_amount=Decimal("665.00"),
        risk_percent=Decimal("0.00665"),
        position_value=Decimal("19950.00"),
        attempted_at=datetime.now(UTC),
    )
    return await store.apply(claimed.id, Transition.BEGIN_SUBMIT, plan)


async def test_an_error_that_repeats_before_the_post_fails_internal_on_postgres(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """Reproduction 3: the database refuses the intent write for a reason that would repeat.
    The issue met it as a quantity beyond an `integer` column; the sizing ceiling (10,000,000)
    and the `bigint` column now keep that one away, so a CHECK constraint stands in for it:
    the same class of error (a StoreError that is not StoreUnavailable) at the same write."""
    await conn.execute(
        "ALTER TABLE executions ADD CONSTRAINT te_test_small CHECK (quantity <= 100)"
    )
    with threaded_bridge() as bridge:
        settings = settings_for(db_url, bridge)
        signal_id = await insert_signal(conn, "HUGE")
        async with pg_actors(settings) as run:
            await approve(conn, signal_id)
            await wait_for(conn, STATE, signal_id, expect="failed", timeout=60)
            book = run.actors.executor.riskbook
            with anyio.fail_after(15):  # the row is committed just before the book is told
                while book.in_flight():
                    await anyio.sleep(0.02)
            assert not book.is_open("HUGE")  # risk and symbol released
        row = await conn.fetchrow(
            "SELECT id, reason, quantity FROM executions WHERE signal_id = $1", signal_id
        )
        assert row is not None
        assert row["reason"] == (
            'internal: new row for relation "executions" violates check constraint "te_test_small"'
        )  # one line: PostgreSQL's DETAIL (the whole row) is left out
        assert row["quantity"] is None  # the intent was never written
        events = await conn.fetchval(
            "SELECT count(*) FROM execution_events WHERE execution_id = $1", row["id"]
        )
        async with pg_actors(settings):  # a restart does not decide it into the error again
            await anyio.sleep(0.5)
        assert events == await conn.fetchval(
            "SELECT count(*) FROM execution_events WHERE execution_id = $1", row["id"]
        )
        assert bridge.parent_orders() == []


async def test_a_symbol_with_blanks_is_one_symbol_everywhere_on_postgres(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """Reproduction 4: ' amb4 ' with the POST's answer lost is adopted (reconciled as AMB4),
    and `executions` and `trades` carry AMB4."""
    with threaded_bridge(faults=Faults(drop_after_accept=1.0)) as bridge:
        signal_id = await insert_signal(conn, " amb4 ")
        async with pg_actors(settings_for(db_url, bridge)) as run:
            await approve(conn, signal_id)
            await wait_for(conn, STATE, signal_id, expect="submitted")
            assert run.actors.executor.riskbook.is_open("AMB4")
        row = await conn.fetchrow(
            "SELECT e.symbol, t.symbol AS trade_symbol FROM executions e"
            " JOIN trades t ON t.id = e.id::text WHERE e.signal_id = $1",
            signal_id,
        )
        assert row is not None
        assert (row["symbol"], row["trade_symbol"]) == ("AMB4", "AMB4")
        assert [o["symbol"] for o in bridge.parent_orders()] == ["AMB4"]


async def test_a_reconciliation_that_raises_ends_unknown_on_postgres(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    """Reproduction 6: the look-up raises; bounded retries, then `unknown`, never `submitting`
    for good (and `resolve` can then settle it)."""

    async def raising(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("asked for order 0, answer is for 7")

    def prepare(broker: ProxyBroker) -> None:
        broker.override("locate_submission", raising)

    async with pg_actors(settings_for(db_url, bridge), prepare=prepare) as run:
        intent = await left_submitting(conn, run.store, "RAISE")
        await wait_for(conn, STATE, intent.signal_id, expect="unknown")
        assert run.broker.calls["locate_submission"] == 3
    reason = await conn.fetchval("SELECT reason FROM executions WHERE id = $1", intent.id)
    assert reason == "reconcile_failed: ValueError: asked for order 0, answer is for 7"


async def test_a_claim_nobody_decides_is_decided_by_the_scan_on_postgres(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with pg_actors(settings_for(db_url, bridge, sweep_interval=600)) as run:
        claimed = await claim_quietly(conn, run.store, "QUIET")
        await wait_for(conn, STATE, claimed.signal_id, expect="submitted")
    assert [o["symbol"] for o in bridge.parent_orders()] == ["QUIET"]
