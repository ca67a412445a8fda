"""What the executor's shells share: the I/O handles one executor run works with, the core that
owns its state (`core.ExecutionCore`), log context, the submission bookkeeping and the board on
which outcomes are published.

Everything here belongs to one executor actor and is only touched from its tasks; every change
of the RiskBook, the working orders and the tallies is an event reported to the core, a
synchronous call, so no decision interleaves with another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

import anyio
from anyio.abc import TaskGroup

from trade_executor.actors.account_snapshot import AccountSnapshot
from trade_executor.actors.execution.core import (
    REASON_LIMIT,
    Candidate,
    ExecutionCore,
    describe_error,
    first_line,
)
from trade_executor.actors.execution.wall import HaltWall
from trade_executor.actors.recording import Recorder
from trade_executor.broker.protocol import Broker
from trade_executor.clock import Clock, utcnow
from trade_executor.config.limits import risk_limits
from trade_executor.config.sources import Settings
from trade_executor.domain.execution import Execution
from trade_executor.observability.logging import get_logger, log_context
from trade_executor.observability.metrics import Metrics
from trade_executor.store.protocol import Store

__all__ = [
    "REASON_LIMIT",
    "Candidate",
    "Clock",
    "OutcomeBoard",
    "Shared",
    "Submissions",
    "describe_error",
    "first_line",
    "log",
    "log_context",
    "new_client_order_id",
    "utcnow",
]

log = get_logger("trade_executor.executor")


def new_client_order_id(execution_id: UUID) -> str:
    return f"te-{execution_id.hex}"


class Submissions:
    """Counts submissions in flight, so that a drain can wait for them to end."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = anyio.Event()
        self._idle.set()

    def begin(self) -> None:
        if self._count == 0:
            self._idle = anyio.Event()
        self._count += 1

    def end(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


@dataclass(slots=True)
class _Slot:
    event: anyio.Event
    result: Execution | None = None


class OutcomeBoard:
    """Lets the HTTP API wait for the outcome of a signal, whichever path claimed it.
    `expect` before triggering the work, so that a fast outcome cannot be missed."""

    def __init__(self) -> None:
        self._slots: dict[UUID, _Slot] = {}

    def expect(self, signal_id: UUID) -> _Slot:
        return self._slots.setdefault(signal_id, _Slot(anyio.Event()))

    def waiting_for(self, signal_id: UUID) -> bool:
        """Whether a caller (the HTTP API) waits for this signal's outcome."""
        return signal_id in self._slots

    def publish(self, execution: Execution) -> None:
        slot = self._slots.pop(execution.signal_id, None)
        if slot is not None:
            slot.result = execution
            slot.event.set()

    async def wait(self, slot: _Slot, timeout: float) -> Execution | None:
        with anyio.move_on_after(timeout):
            await slot.event.wait()
        if not slot.event.is_set():
            for signal_id, held in list(self._slots.items()):
                if held is slot:
                    del self._slots[signal_id]
        return slot.result


@dataclass(eq=False)
class Shared:
    """One executor's I/O handles and the core of its current run (`core`: the only state)."""

    settings: Settings
    store: Store
    broker: Broker
    metrics: Metrics
    follow: Callable[[Execution], None]
    clock: Clock = utcnow
    # The account snapshot kept fresh by its own actor (`build_actors`); None: one of this
    # executor's own, read when a decision needs it.
    account: AccountSnapshot | None = None
    recorder: Recorder = field(init=False)
    outcomes: OutcomeBoard = field(default_factory=OutcomeBoard)
    submissions: Submissions = field(default_factory=Submissions)
    # The RiskBook, the working orders and the tallies: changed only through its events.
    core: ExecutionCore = field(init=False)
    # The kill switch in front of the bridge: entries leaving the pacer look at it (wall.py).
    wall: HaltWall = field(init=False)
    snapshots: AccountSnapshot = field(init=False)
    tg: TaskGroup | None = None

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.store, self.metrics)
        self.reset()

    def reset(self) -> None:
        """A fresh run: nothing of a cancelled run's state or reads is reused."""
        settings = self.settings
        self.core = ExecutionCore(
            risk_limits(settings),
            settings.timezone,
            settings.max_consecutive_failures,
        )
        self.wall = HaltWall(lambda: self.core.halted)
        self.snapshots = self.account or AccountSnapshot(
            self.broker, self.settings.account_snapshot_max_age
        )

    def spawn(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` in the executor's task group. An exception it raises is logged and ends
        only that task: one execution's bug never stops the executor."""
        assert self.tg is not None, "the executor is not running"

        async def guarded() -> None:
            try:
                await work()
            except Exception:
                log.exception("executor.task_crashed", task=name)

        self.tg.start_soon(guarded, name=name)
