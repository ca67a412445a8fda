"""Messages between actors. The executor's mailbox carries all of them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True, slots=True)
class ApprovalSeen:
    """A hint that an approval may be waiting: the executor re-reads it from the database."""

    approval_id: UUID
    source: str  # "notify", "sweep", "startup", "api"
    seen_at: float  # anyio.current_time() when the hint arrived


@dataclass(frozen=True, slots=True)
class OrderProgress:
    """A poller recorded a change of an order: the executor keeps its RiskBook exact."""

    execution_id: UUID
    filled_qty: int
    final: bool


@dataclass(frozen=True, slots=True)
class ControlChanged:
    """The kill switch was set or cleared."""

    halted: bool
    reason: str | None = None


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


Message = ApprovalSeen | OrderProgress | ControlChanged | ExecutionChanged | FillsFound
