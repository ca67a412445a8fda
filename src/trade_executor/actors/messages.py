"""Messages between actors. The executor's mailbox carries all of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True, slots=True)
class ApprovalSeen:
    """A hint that an approval may be waiting: the executor re-reads it from the database."""

    approval_id: UUID | None  # None: a status approval (see `signal_id`)
    source: str  # "notify", "sweep", "startup", "api"
    seen_at: float  # anyio.current_time() when the hint arrived
    # Set for a status approval (strategy_signals.status = 'approved'), which has no approval
    # row: the executor claims the signal itself.
    signal_id: UUID | None = None

    @property
    def key(self) -> UUID:
        """What identifies the hint: the approval row, else the signal."""
        if self.approval_id is not None:
            return self.approval_id
        assert self.signal_id is not None, "an approval hint names an approval or a signal"
        return self.signal_id


@dataclass(frozen=True, slots=True)
class OrderProgress:
    """A poller recorded a change of an order: the executor keeps its RiskBook exact."""

    execution_id: UUID
    filled_qty: int
    final: bool


@dataclass(frozen=True, slots=True)
class OrderStatusLost:
    """A poller gave up on an order whose status the bridge cannot establish: the execution is
    now `unknown`. Its risk stays committed and its symbol held (it is NOT an `OrderProgress`
    with `final=True`); an operator settles it with `resolve`. For the executor's circuit
    breaker and its count of executions needing an operator."""

    execution_id: UUID
    filled_qty: int
    reason: str


@dataclass(frozen=True, slots=True)
class ControlChanged:
    """The kill switch as read from `executor_control` (set, cleared, or unchanged): who set it
    and when, so the executor can log who halted and acknowledge the change it applied."""

    halted: bool
    reason: str | None = None
    changed_by: str | None = None
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ExecutionChanged:
    """An execution was changed outside this process (an operator's `resolve`): the executor
    re-reads it and brings its RiskBook and followers into line with the ledger."""

    execution_id: UUID


@dataclass(frozen=True, slots=True)
class FillsFound:
    """Reconciliation found fills the ledger missed for a `cancelled` entry (IB reported
    `Cancelled` for an order that filled): the executor records them (`CORRECT_FILL`) and
    counts the risk again. The reconciler never writes the ledger itself."""

    execution_id: UUID
    filled_qty: int
    avg_fill_price: Decimal | None
    broker_status: str


@dataclass(frozen=True, slots=True)
class PositionExited:
    """The exits recorded (part of) a position's exit: `realized_pnl` is the execution's running
    total (a repeated report replaces, never adds), booked on `trading_day` (of the exit). The
    executor keeps MAX_DAILY_REALIZED_LOSS on it."""

    execution_id: UUID
    realized_pnl: Decimal
    trading_day: date
    closed: bool


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """An operator asked for positions to be closed (`close` from another shell, through the
    control channel): `symbol` None means every open position. For the exits actor, which
    carries it out; the executor never sees it."""

    symbol: str | None
    reason: str
    requested_by: str


Message = (
    ApprovalSeen
    | OrderProgress
    | OrderStatusLost
    | ControlChanged
    | ExecutionChanged
    | FillsFound
    | PositionExited
    | CloseRequested
)
