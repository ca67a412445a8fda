"""What the executor's parts share: the state one executor run owns, the candidate type, log
context, the submission bookkeeping and the board on which outcomes are published.

Everything here belongs to one executor actor and is only touched from its tasks; the RiskBook
is only ever changed through synchronous calls, so no decision interleaves with another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anyio
from anyio.abc import TaskGroup

from trade_executor.actors.account_snapshot import AccountSnapshot
from trade_executor.actors.execution.wall import HaltWall
from trade_executor.actors.recording import Recorder
from trade_executor.actors.working import WorkingOrders
from trade_executor.broker.protocol import Broker
from trade_executor.config import Settings
from trade_executor.domain.execution import Execution
from trade_executor.domain.guardrails import NO_GUARDRAILS, GuardrailFacts, InstanceTally
from trade_executor.domain.riskbook import RiskBook
from trade_executor.domain.sizing import RiskLimits
from trade_executor.domain.validation import ValidSignal
from trade_executor.logging import get_logger
from trade_executor.metrics import Metrics
from trade_executor.store.protocol import Store

log = get_logger("trade_executor.executor")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_client_order_id(execution_id: UUID) -> str:
    return f"te-{execution_id.hex}"


REASON_LIMIT = 300  # characters of an error kept in a `reason`


def first_line(error: BaseException) -> str:
    """The first line of an error's message, at most REASON_LIMIT characters (PostgreSQL's
    messages carry a DETAIL line with the whole row, which a `reason` must not)."""
    lines = str(error).strip().splitlines()
    return lines[0][:REASON_LIMIT] if lines else ""


def describe_error(error: BaseException) -> str:
    """An error as one line: its type and message (the same error twice gives the same text)."""
    message = first_line(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def log_context(execution: Execution) -> dict[str, Any]:
    """The ids every log line about an execution carries."""
    context: dict[str, Any] = {
        "execution_id": str(execution.id),
        "signal_id": str(execution.signal_id),
        "symbol": execution.symbol,
    }
    if execution.order_id is not None:
        context["order_id"] = execution.order_id
    return context


@dataclass(frozen=True, slots=True)
class Candidate:
    """A claimed, valid approval waiting for its risk decision."""

    execution: Execution
    valid: ValidSignal
    seen_at: float
    # What the original's guardrails need, read in the prepare step (domain.guardrails).
    guardrails: GuardrailFacts = NO_GUARDRAILS


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
    """One executor's collaborators and the state of its current run."""

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
    riskbook: RiskBook = field(init=False)
    # The kill switch in front of the bridge: entries leaving the pacer look at it (wall.py).
    wall: HaltWall = field(init=False)
    working: WorkingOrders = field(default_factory=WorkingOrders)
    snapshots: AccountSnapshot = field(init=False)
    # This run's decisions per strategy instance (the guardrails' usage since their read).
    instance_tally: InstanceTally = field(default_factory=InstanceTally)
    # The bridge's account mode (/health paper_trading), read at start and after every
    # reconnect: None = not read or not said, which is never taken as paper.
    paper_trading: bool | None = None
    account_mode_read: bool = False
    tg: TaskGroup | None = None
    # Executions a task of this run is working on (claimed and being decided, submitted or
    # reconciled): the deadline scan leaves them alone. See `actors/execution/deadlines.py`.
    in_hand: set[UUID] = field(default_factory=set)
    # The last error a task met for an execution, for the deadline scan to count repeats.
    troubles: dict[UUID, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.store, self.metrics)
        self.reset()

    def reset(self) -> None:
        """A fresh run: nothing of a cancelled run's state or reads is reused."""
        self.riskbook = RiskBook(RiskLimits.from_settings(self.settings), self.settings.timezone)
        self.wall = HaltWall(lambda: self.riskbook.halted)
        self.working = WorkingOrders()
        self.snapshots = self.account or AccountSnapshot(
            self.broker, self.settings.account_snapshot_max_age
        )
        self.instance_tally = InstanceTally()
        self.paper_trading = None
        self.account_mode_read = False
        self.in_hand = set()
        self.troubles = {}

    def trouble(self, execution_id: UUID, error: BaseException) -> None:
        """Note the error a task met for `execution_id` and let go of it (see `in_hand`)."""
        self.troubles[execution_id] = describe_error(error)
        self.in_hand.discard(execution_id)

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
