"""Messages between actors. The executor's mailbox carries all of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


Message = ApprovalSeen | OrderProgress | ControlChanged | ExecutionChanged
