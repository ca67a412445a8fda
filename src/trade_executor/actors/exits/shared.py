"""What the exits' parts share: the I/O handles one `ExitFollower` works with, its core (the
positions followed and the work under way: `core.ExitsCore`), task spawning and the list read.

Guarantees:
- Everything here belongs to one follower and is touched only from its tasks.
- `spawn` runs at most one task per (kind of work, position); a task's crash is logged and ends
  only that task.
- `ExitsCore.track` never replaces the row a locked position's holder works on: the holder
  keeps its own and records the newer one itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from uuid import UUID

from anyio.abc import TaskGroup

from trade_executor.actors.messages import Message
from trade_executor.broker.errors import BrokerError
from trade_executor.broker.orderbook import OrderIndex, order_index
from trade_executor.broker.protocol import Broker
from trade_executor.clock import Clock, utcnow
from trade_executor.config.sources import Settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.observability.logging import (
    bind_context,
    clear_repeated,
    get_logger,
    log_context,
    log_repeated,
)
from trade_executor.observability.metrics import Metrics
from trade_executor.store.protocol import ExitStore

from .core import ExitsCore, ExitStats, Followed
from .flatten import FlattenRule

log = get_logger("trade_executor.exits")

Report = Callable[[Message], None]
InstanceRules = Callable[[Sequence[Execution]], Awaitable[Mapping[UUID, Sequence[FlattenRule]]]]

LIST_FAILED = ("exits", "list_failed")

__all__ = ["ExitStats", "Followed", "InstanceRules", "Report", "Shared", "log", "projected"]


def projected(execution: Execution, changes: Changes) -> Execution:
    """The execution as it will read once `changes` are applied (None keeps a field)."""
    values = {
        name: value
        for name in changes.__dataclass_fields__
        if (value := getattr(changes, name)) is not None
    }
    return replace(execution, **values)


@dataclass(eq=False)
class Shared:
    """One follower's I/O handles and its core (`core`: the only state)."""

    settings: Settings
    store: ExitStore
    broker: Broker
    metrics: Metrics
    report: Report  # the executor's mailbox (`PositionExited`)
    clock: Clock = utcnow
    instance_rules: InstanceRules | None = None
    core: ExitsCore = field(default_factory=ExitsCore)
    tg: TaskGroup | None = None

    def spawn(self, what: str, work: Callable[[Followed], Awaitable[None]], f: Followed) -> None:
        """One task per (kind of work, position) at a time; a crash is logged, never fatal."""
        execution_id = f.execution.id
        if self.tg is None or not self.core.begin(what, execution_id):
            return

        async def guarded() -> None:
            bind_context(**log_context(f.execution))
            try:
                await work(f)
            except Exception:
                log.exception("exits.task_crashed", task=what, **log_context(f.execution))
            finally:
                self.core.end(what, execution_id)

        self.tg.start_soon(guarded, name=f"exits.{what}")

    async def fresh_list(self) -> OrderIndex | None:
        """One `GET /orders` of our own; None (logged, rate-limited) when it failed."""
        try:
            index = await order_index(self.broker)
        except BrokerError as error:
            log_repeated(LIST_FAILED, "exits.list_failed", error=str(error))
            return None
        self.core.listed()
        clear_repeated(LIST_FAILED, "exits.list_recovered")
        return index

    def day(self, moment: datetime) -> date:
        """The trading day of `moment` in the configured time zone (naive: UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.settings.timezone).date()

    def day_start(self, now: datetime) -> datetime:
        return datetime.combine(self.day(now), time(0), tzinfo=self.settings.timezone)
