"""What the actors need from persistence. `PgStore` (asyncpg) is the real one;
`trade_executor.testing.MemoryStore` serves the actors' fast tests on both anyio backends.

Every method raises only the store's own errors (`store.errors`: `StoreUnavailable` when worth
retrying, `StoreError` otherwise) or, from `apply`, `IllegalTransition`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

from trade_executor.domain.execution import Changes, Execution, TradeRecord
from trade_executor.domain.models import Approval, Signal
from trade_executor.domain.states import ExecutionState, Transition


@dataclass(frozen=True, slots=True)
class Claimed:
    """This process now owns the signal: the `executions` row was inserted by this claim."""

    execution: Execution
    signal: Signal
    approval: Approval


@dataclass(frozen=True, slots=True)
class AlreadyClaimed:
    """Another claim (a duplicate notification, a second approval row, the API) got there first."""

    execution: Execution


@dataclass(frozen=True, slots=True)
class NotClaimable:
    """Nothing to execute: the approval does not exist, is not approved, or lost its signal."""

    reason: str


ClaimOutcome = Claimed | AlreadyClaimed | NotClaimable


@dataclass(frozen=True, slots=True)
class ControlState:
    halted: bool
    reason: str | None = None
    changed_at: datetime | None = None
    changed_by: str | None = None


@dataclass(frozen=True, slots=True)
class PendingApproval:
    approval_id: UUID
    signal_id: UUID


@dataclass(frozen=True, slots=True)
class Trade:
    """A `trades` row joined with its execution, as the HTTP API reports it."""

    fields: dict[str, Any]


class Store(Protocol):
    async def claim(
        self, approval_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        """In one transaction: re-read the approval and its signal, and insert the `executions`
        row (state `received`). The unique `signal_id` makes a second claim fail in the database."""

    async def pending_approvals(self, limit: int) -> list[PendingApproval]:
        """Approved approvals whose signal has no execution yet (one per signal, oldest first)."""

    async def apply(
        self,
        execution_id: UUID,
        transition: Transition,
        changes: Changes,
        detail: dict[str, Any] | None = None,
        trade: TradeRecord | None = None,
        *,
        trade_notes: str | None = None,
    ) -> Execution:
        """In one transaction: move the execution along `transition`, set `changes` (None leaves
        a field as it is), append the transition's event, write the trade row and link the
        approvals to the order id when `trade` is given, and set the `trades` row's `notes` when
        `trade_notes` is given (how an exit shows in the original's UI). Raises
        `IllegalTransition`, changing nothing, if the execution's current state does not allow
        the transition (the table's guard decides, under the row lock)."""

    async def add_event(self, execution_id: UUID, kind: str, detail: dict[str, Any]) -> None:
        """Append an event that is not a transition (see `EventKind`)."""

    async def get_execution(self, execution_id: UUID) -> Execution | None: ...

    async def execution_for_signal(self, signal_id: UUID) -> Execution | None: ...

    async def executions_in(self, states: Sequence[ExecutionState]) -> list[Execution]: ...

    async def executions_on(self, trading_day: date) -> list[Execution]:
        """Executions of one trading day (for the daily budget at start-up)."""

    async def positions_to_follow(self, closed_since: datetime) -> list[Execution]:
        """Executions whose position is open or unprotected (of any day), and those whose
        position closed at or after `closed_since` (their realized P&L counts today, and a
        sibling exit order may still need its cancel), oldest first."""

    async def get_signal(self, signal_id: UUID) -> Signal | None: ...

    async def get_approval(self, approval_id: UUID) -> Approval | None: ...

    async def approve(self, signal_id: UUID, approved_by: str) -> UUID:
        """The signal's approved approval, inserting one if there is none yet."""

    async def trade_for_signal(self, signal_id: UUID) -> Trade | None: ...

    async def control(self) -> ControlState: ...

    async def set_control(self, halted: bool, reason: str | None, changed_by: str) -> None: ...

    async def announce_change(self, execution_id: UUID) -> None:
        """Tell the running service (NOTIFY on the control channel) that an execution was
        changed outside it, so its executor re-reads the row within a second."""

    async def ping(self) -> None:
        """Raises if the database does not answer."""
