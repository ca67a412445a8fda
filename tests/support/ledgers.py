"""One way for a test to drive and read the ledger, whichever store holds it.

A `Ledger` is a `Store` plus what only a test does: insert signals and approvals as the approval
service would (an approved row notifies, as the trigger does), notify a channel, halt as an
operator's plain `UPDATE executor_control` would, and read back the rows a `Store` does not
expose (events, trades, approvals' order ids). `MemoryLedger` wraps a `MemoryStore` (both anyio
backends); `PgLedger` a `PgStore` on a real database (asyncio only). The scenario suite runs the
same body on both (tests/integration/actors/test_pipeline.py).

`running_actors(settings, ledger)` starts the active instance's actors exactly as the service
does, through `build_actors`, on the ledger's store and notifications.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID, uuid4

import anyio
import asyncpg

from tests.support import INSERT_SIGNAL
from trade_executor.actors.supervisor import Supervisor
from trade_executor.broker.client import BrokerClient
from trade_executor.config.sources import Settings, load_settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.observability.metrics import Metrics
from trade_executor.service.wiring import Actors, build_actors
from trade_executor.store.notifications import NotificationSource, connect_notifications
from trade_executor.store.postgres import PgStore
from trade_executor.store.protocol import Claimed, Store
from trade_executor_dev.testing import MemoryStore
from trade_executor_dev.testing.memory_store import as_json

DEADLINE = 15.0  # guards against a hang; no test asserts anything about speed


class Ledger(Protocol):
    kind: str  # "memory" or "postgres"
    store: Store

    async def notifications(self) -> NotificationSource:
        """A new LISTEN session on the approvals and control channels."""

    async def add_signal(
        self,
        symbol: str,
        side: str = "BUY",
        entry: str = "150",
        stop: str = "145",
        target: str = "160",
        *,
        expires_in: timedelta = timedelta(hours=1),
    ) -> UUID: ...

    async def add_approval(self, signal_id: UUID, *, approved_at: datetime | None = None) -> UUID:
        """An approved `trade_approvals` row (it notifies, as the trigger does)."""

    async def add_approvals(self, signal_ids: Sequence[UUID]) -> list[UUID]:
        """One approved row per signal id (repeats allowed), committed together: nothing can
        run between them."""

    async def notify(self, channel: str, payload: str) -> None: ...

    async def set_halted(self, halted: bool, reason: str | None) -> None:
        """What an operator's plain UPDATE of `executor_control` does (the trigger notifies)."""

    async def execution_of(self, signal_id: UUID) -> Execution | None: ...

    async def executions(self) -> list[Execution]:
        """Every execution, oldest first."""

    async def events(self, execution_id: UUID) -> list[tuple[str, dict[str, Any]]]:
        """(kind, detail) of the execution's events, oldest first."""

    async def trade(self, execution_id: UUID) -> dict[str, Any] | None:
        """The `trades` row of the execution, `risk` as `jsonb` gives it back."""

    async def trade_count(self) -> int: ...

    async def approval_order_id(self, approval_id: UUID) -> str | None: ...


class MemoryLedger:
    kind = "memory"

    def __init__(self, memory: MemoryStore | None = None) -> None:
        self.memory = memory if memory is not None else MemoryStore()
        self.store: Store = self.memory

    async def notifications(self) -> NotificationSource:
        return await self.memory.notifications.connect()

    async def add_signal(
        self,
        symbol: str,
        side: str = "BUY",
        entry: str = "150",
        stop: str = "145",
        target: str = "160",
        *,
        expires_in: timedelta = timedelta(hours=1),
    ) -> UUID:
        return self.memory.add_signal(symbol, side, entry, stop, target, expires_in=expires_in)

    async def add_approval(self, signal_id: UUID, *, approved_at: datetime | None = None) -> UUID:
        return self.memory.add_approval(signal_id, approved_at=approved_at)

    async def add_approvals(self, signal_ids: Sequence[UUID]) -> list[UUID]:
        # Synchronous calls: no checkpoint between them, as in one transaction.
        return [self.memory.add_approval(signal_id) for signal_id in signal_ids]

    async def notify(self, channel: str, payload: str) -> None:
        self.memory.notifications.notify(channel, payload)

    async def set_halted(self, halted: bool, reason: str | None) -> None:
        await self.memory.set_control(halted, reason, "ops")

    async def execution_of(self, signal_id: UUID) -> Execution | None:
        return self.memory.execution_of(signal_id)

    async def executions(self) -> list[Execution]:
        return self.memory.executions

    async def events(self, execution_id: UUID) -> list[tuple[str, dict[str, Any]]]:
        return [(event.kind, event.detail) for event in self.memory.events_of(execution_id)]

    async def trade(self, execution_id: UUID) -> dict[str, Any] | None:
        row = self.memory.trades.get(str(execution_id))
        if row is None:
            return None
        return {**row, "risk": as_json(row["risk"]) if row["risk"] is not None else None}

    async def trade_count(self) -> int:
        return len(self.memory.trades)

    async def approval_order_id(self, approval_id: UUID) -> str | None:
        return self.memory.approvals[approval_id].order_id


INSERT_APPROVAL = """
INSERT INTO trade_approvals (id, signal_id, approved, approved_at, approved_by)
VALUES ($1, $2, true, $3, 'tester')
"""
EMPTY = """
TRUNCATE execution_events, executions, trades, trade_approvals, strategy_signals
RESTART IDENTITY CASCADE;
UPDATE executor_control SET halted = false, reason = NULL, changed_by = NULL;
"""


class PgLedger:
    """A ledger in a migrated PostgreSQL database (asyncio only)."""

    kind = "postgres"

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self.pool = pool
        self.store: Store = PgStore(pool)

    @classmethod
    @asynccontextmanager
    async def emptied(cls, url: str) -> AsyncIterator[PgLedger]:
        """A ledger on `url` (migrated), emptied first, its pool closed at the end."""
        pool = await asyncpg.create_pool(url, min_size=1, max_size=10)
        try:
            await pool.execute(EMPTY)
            yield cls(url, pool)
        finally:
            await pool.close()

    async def notifications(self) -> NotificationSource:
        return await connect_notifications(self.url)

    async def add_signal(
        self,
        symbol: str,
        side: str = "BUY",
        entry: str = "150",
        stop: str = "145",
        target: str = "160",
        *,
        expires_in: timedelta = timedelta(hours=1),
    ) -> UUID:
        signal_id = uuid4()
        expires_at = datetime.now(UTC) + expires_in
        await self.pool.execute(
            INSERT_SIGNAL,
            signal_id,
            symbol,
            side,
            Decimal(entry),
            Decimal(stop),
            Decimal(target),
            expires_at,
        )
        return signal_id

    async def add_approval(self, signal_id: UUID, *, approved_at: datetime | None = None) -> UUID:
        approval_id = uuid4()
        stamp = approved_at or datetime.now(UTC)
        await self.pool.execute(INSERT_APPROVAL, approval_id, signal_id, stamp)
        return approval_id

    async def add_approvals(self, signal_ids: Sequence[UUID]) -> list[UUID]:
        approval_ids = [uuid4() for _ in signal_ids]
        async with self.pool.acquire() as conn, conn.transaction():
            now = datetime.now(UTC)
            for approval_id, signal_id in zip(approval_ids, signal_ids, strict=True):
                await conn.execute(INSERT_APPROVAL, approval_id, signal_id, now)
        return approval_ids

    async def notify(self, channel: str, payload: str) -> None:
        await self.pool.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def set_halted(self, halted: bool, reason: str | None) -> None:
        await self.pool.execute(
            "UPDATE executor_control SET halted = $1, reason = $2", halted, reason
        )

    async def execution_of(self, signal_id: UUID) -> Execution | None:
        return await self.store.execution_for_signal(signal_id)

    async def executions(self) -> list[Execution]:
        ids = await self.pool.fetch("SELECT id FROM executions ORDER BY created_at, id")
        found = [await self.store.get_execution(row["id"]) for row in ids]
        return [execution for execution in found if execution is not None]

    async def events(self, execution_id: UUID) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.pool.fetch(
            "SELECT kind, detail FROM execution_events WHERE execution_id = $1 ORDER BY id",
            execution_id,
        )
        return [(row["kind"], json.loads(row["detail"])) for row in rows]

    async def trade(self, execution_id: UUID) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM trades WHERE id = $1", str(execution_id))
        if row is None:
            return None
        found = dict(row)
        for name in ("risk", "targets"):
            if found[name] is not None:
                found[name] = json.loads(found[name])
        return found

    async def trade_count(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM trades"))

    async def approval_order_id(self, approval_id: UUID) -> str | None:
        value = await self.pool.fetchval(
            "SELECT order_id FROM trade_approvals WHERE id = $1", approval_id
        )
        return None if value is None else str(value)


# -- the actors on a ledger ------------------------------------------------------------------------


def actor_settings(bridge_url: str, **overrides: Any) -> Settings:
    """Settings for actors run by a test: quick polls, no periodic sweep (a sweep would hide a
    missed notification), a roomy daily budget unless the test sets one."""
    values: dict[str, Any] = {
        "database_url": None,
        "ib_bridge_url": bridge_url,
        "execution_enabled": True,
        "max_daily_loss": 100000,
        "order_poll_interval": 0.1,
        "order_poll_timeout": 30,
        "sweep_interval": 600,
        "listener_health_interval": 0.2,
        "cancelled_recheck_delay": 0.05,
        "shutdown_grace": 1,
        "http_port": 0,
        "outside_session": "send",  # the suite runs at any hour
    }
    values.update(overrides)
    return load_settings(**values)


ChildRun = Callable[..., Coroutine[Any, Any, None]]


@dataclass
class RunningActors:
    actors: Actors
    supervisor: Supervisor


@asynccontextmanager
async def running_actors(
    settings: Settings,
    ledger: Ledger,
    *,
    supervisor: Supervisor | None = None,
    extra: dict[str, ChildRun] | None = None,
) -> AsyncIterator[RunningActors]:
    """The actors of `build_actors` on `ledger`, started as the service starts them (and any
    `extra` children under the same supervisor); cancelled when the block ends."""
    supervisor = supervisor or Supervisor(backoff_base=0.01)
    async with BrokerClient(settings.ib_bridge_url, settings.ib_bridge_timeout) as broker:
        actors = build_actors(settings, ledger.store, broker, Metrics(), ledger.notifications)
        async with anyio.create_task_group() as tg:
            await actors.start(tg, supervisor)
            for name, run in (extra or {}).items():
                await tg.start(supervisor.supervise, name, run)
            yield RunningActors(actors, supervisor)
            tg.cancel_scope.cancel()


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for `predicate` under a deadline that only guards against a hang."""
    with anyio.fail_after(DEADLINE):
        while not predicate():
            await anyio.sleep(0.01)


async def settled(ledger: Ledger, signal_id: UUID) -> Execution:
    """The signal's execution once it has left `received`/`submitting`."""
    with anyio.fail_after(DEADLINE):
        while True:
            execution = await ledger.execution_of(signal_id)
            if execution is not None and execution.state.value not in ("received", "submitting"):
                return execution
            await anyio.sleep(0.01)


async def reaches(ledger: Ledger, signal_id: UUID, state: str) -> Execution:
    """The signal's execution once it is in `state`."""
    with anyio.fail_after(DEADLINE):
        while True:
            execution = await ledger.execution_of(signal_id)
            if execution is not None and execution.state.value == state:
                return execution
            await anyio.sleep(0.01)


# -- an execution in any state, as the executor would have left it -------------------------------

S = ExecutionState
T = Transition

# How a claimed (`received`) execution reaches each state; the changes of each step.
PATHS: dict[ExecutionState, tuple[Transition, ...]] = {
    S.RECEIVED: (),
    S.SUBMITTING: (T.BEGIN_SUBMIT,),
    S.SUBMITTED: (T.BEGIN_SUBMIT, T.ACCEPT),
    S.PARTIALLY_FILLED: (T.BEGIN_SUBMIT, T.ACCEPT, T.PARTIAL_FILL),
    S.FILLED: (T.BEGIN_SUBMIT, T.ACCEPT, T.FILL),
    S.CANCELLED: (T.BEGIN_SUBMIT, T.ACCEPT, T.CANCEL),
    S.REJECTED: (T.REJECT,),
    S.FAILED: (T.BEGIN_SUBMIT, T.FAIL),
    S.DRY_RUN: (T.DRY_RUN,),
    S.UNKNOWN: (T.BEGIN_SUBMIT, T.LOSE_TRACK),
}


def plan(trading_day: date, *, quantity: int = 133) -> Changes:
    """The decision for a BUY at 150 with its stop at 145: 133 shares risk 665.00."""
    return Changes(
        action="BUY",
        order_type="LMT",
        quantity=quantity,
        entry_price=Decimal("150"),
        stop_loss=Decimal("145"),
        take_profit=Decimal("160"),
        risk_amount=Decimal(5 * quantity).quantize(Decimal("0.01")),
        risk_percent=(Decimal(5 * quantity) / Decimal(100000)).quantize(Decimal("0.00001")),
        position_value=Decimal(150 * quantity).quantize(Decimal("0.01")),
        trading_day=trading_day,
        attempted_at=datetime.now(UTC),
    )


async def seed_execution(
    ledger: Ledger,
    state: ExecutionState,
    trading_day: date,
    *,
    symbol: str = "AAPL",
    order_id: int | None = None,
    filled_qty: int = 0,
) -> Execution:
    """An execution of a new signal for `symbol`, brought into `state` along `PATHS` with the
    plan of `plan()` (`order_id` once accepted, `filled_qty` once filled or cancelled)."""
    signal_id = await ledger.add_signal(symbol)
    approval_id = await ledger.add_approval(signal_id)
    execution_id = uuid4()
    claim = await ledger.store.claim(approval_id, execution_id, f"te-{execution_id.hex}")
    assert isinstance(claim, Claimed)
    execution = claim.execution
    decided = plan(trading_day)
    for step in PATHS[state]:
        changes = Changes(reason=f"seeded {state.value}")
        if step in (T.BEGIN_SUBMIT, T.REJECT, T.DRY_RUN):
            changes = replace(decided, reason=None if step is T.BEGIN_SUBMIT else changes.reason)
        elif step is T.ACCEPT:
            changes = Changes(order_id=order_id or 1, broker_status="Submitted")
        elif step in (T.PARTIAL_FILL, T.FILL, T.CANCEL):
            filled = 133 if step is T.FILL else filled_qty
            changes = Changes(filled_qty=filled, reason=changes.reason)
        execution = await ledger.store.apply(execution.id, step, changes)
    assert execution.state is state
    return execution


async def event_kinds(ledger: Ledger, execution_id: UUID) -> list[str]:
    return [kind for kind, _detail in await ledger.events(execution_id)]


__all__ = [
    "DEADLINE",
    "PATHS",
    "Ledger",
    "MemoryLedger",
    "PgLedger",
    "RunningActors",
    "actor_settings",
    "event_kinds",
    "plan",
    "reaches",
    "running_actors",
    "seed_execution",
    "settled",
    "until",
]
