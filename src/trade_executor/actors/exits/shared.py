"""What the exits' parts share: the state one `ExitFollower` run owns, the followed positions,
the log context, the bookkeeping of one task per (kind of work, position) and the list read.

Guarantees:
- Everything here belongs to one follower and is touched only from its tasks.
- `spawn` runs at most one task per (kind of work, position); a task's crash is logged and ends
  only that task.
- `track` never replaces the row a locked position's holder works on: the holder keeps its own
  and records the newer one itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from uuid import UUID

import anyio
from anyio.abc import TaskGroup

from trade_executor.actors.messages import Message
from trade_executor.broker.errors import BrokerError
from trade_executor.broker.orderbook import OrderIndex
from trade_executor.broker.protocol import Broker
from trade_executor.clock import Clock, utcnow
from trade_executor.config import Settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.logging import (
    bind_context,
    clear_repeated,
    get_logger,
    log_context,
    log_repeated,
)
from trade_executor.metrics import Metrics
from trade_executor.store.protocol import Store

from .flatten import FlattenRule, FlattenSchedule
from .positions import ExitReason, PositionState

log = get_logger("trade_executor.exits")

Report = Callable[[Message], None]
InstanceRules = Callable[[Sequence[Execution]], Awaitable[Mapping[UUID, Sequence[FlattenRule]]]]

LIST_FAILED = ("exits", "list_failed")


def projected(execution: Execution, changes: Changes) -> Execution:
    """The execution as it will read once `changes` are applied (None keeps a field)."""
    values = {
        name: value
        for name in changes.__dataclass_fields__
        if (value := getattr(changes, name)) is not None
    }
    return replace(execution, **values)


@dataclass(eq=False)
class Followed:
    """One position this actor follows. `closing` is the kind of a close under way."""

    execution: Execution
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    closed: anyio.Event = field(default_factory=anyio.Event)
    closing: ExitReason | None = None
    cancels: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class ExitStats:
    """What the exits asked of the bridge (for tests and the demo)."""

    looks: int = 0
    list_reads: int = 0
    closes: int = 0
    protects: int = 0
    cancels: int = 0


@dataclass(eq=False)
class Shared:
    """One follower's collaborators and the state of its current run."""

    settings: Settings
    store: Store
    broker: Broker
    metrics: Metrics
    report: Report  # the executor's mailbox (`PositionExited`)
    clock: Clock = utcnow
    instance_rules: InstanceRules | None = None
    stats: ExitStats = field(default_factory=ExitStats)
    followed: dict[UUID, Followed] = field(default_factory=dict)
    pool_index: OrderIndex | None = None  # the pollers' latest list read, until a look uses it
    flatten: FlattenSchedule = field(default_factory=FlattenSchedule)
    busy: set[tuple[str, UUID]] = field(default_factory=set)
    tg: TaskGroup | None = None

    def reset(self) -> None:
        """A fresh run: nothing of a cancelled run's positions or reads is reused."""
        self.followed.clear()
        self.busy.clear()
        self.pool_index = None

    def track(self, execution: Execution) -> Followed:
        """The position followed for `execution`, created or refreshed with this row."""
        followed = self.followed.get(execution.id)
        if followed is None:
            followed = self.followed[execution.id] = Followed(execution)
        elif not followed.lock.locked():
            followed.execution = execution  # a newer row (the lock's holder keeps its own)
        if execution.position_state == PositionState.CLOSED:
            followed.closed.set()
        return followed

    def spawn(self, what: str, work: Callable[[Followed], Awaitable[None]], f: Followed) -> None:
        """One task per (kind of work, position) at a time; a crash is logged, never fatal."""
        key = (what, f.execution.id)
        if self.tg is None or key in self.busy:
            return
        self.busy.add(key)

        async def guarded() -> None:
            bind_context(**log_context(f.execution))
            try:
                await work(f)
            except Exception:
                log.exception("exits.task_crashed", task=what, **log_context(f.execution))
            finally:
                self.busy.discard(key)

        self.tg.start_soon(guarded, name=f"exits.{what}")

    async def fresh_list(self) -> OrderIndex | None:
        """One `GET /orders` of our own; None (logged, rate-limited) when it failed."""
        try:
            index = await self.broker.order_index()
        except BrokerError as error:
            log_repeated(LIST_FAILED, "exits.list_failed", error=str(error))
            return None
        self.stats.list_reads += 1
        clear_repeated(LIST_FAILED, "exits.list_recovered")
        return index

    def day(self, moment: datetime) -> date:
        """The trading day of `moment` in the configured time zone (naive: UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.settings.timezone).date()

    def day_start(self, now: datetime) -> datetime:
        return datetime.combine(self.day(now), time(0), tzinfo=self.settings.timezone)
