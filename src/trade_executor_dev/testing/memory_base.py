"""The state of `MemoryStore` and what all its parts share: the tables, the faults
(`down`, `fail_next`), the events and notifications, and the test's views of the tables."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import anyio
import anyio.lowlevel

from trade_executor.clock import Clock, utcnow
from trade_executor.domain.breaks import RecordedBreak
from trade_executor.domain.execution import Execution
from trade_executor.domain.guardrails import GuardrailFacts
from trade_executor.domain.ledger import OriginalTrade
from trade_executor.domain.models import Approval, Signal
from trade_executor.store.errors import StoreUnavailable
from trade_executor.store.jsonb import to_json
from trade_executor.store.notifications import APPROVALS_CHANNEL
from trade_executor.store.protocol import ControlState, OriginalTables
from trade_executor_dev.testing.notifications import MemoryNotifications

T = TypeVar("T")


def as_json(detail: dict[str, Any] | None) -> dict[str, Any]:
    """`detail` as a `jsonb` column would give it back (Decimals and UUIDs as strings)."""
    normalised: dict[str, Any] = json.loads(to_json(detail))
    return normalised


@dataclass(frozen=True, slots=True)
class MemoryEvent:
    """A row of `execution_events`."""

    id: int
    execution_id: UUID
    at: datetime
    kind: str
    detail: dict[str, Any]


@dataclass(slots=True)
class ApprovalRow:
    approval: Approval
    modification_notes: str | None = None


@dataclass(slots=True)
class _Tables:
    signals: dict[UUID, Signal] = field(default_factory=dict)
    approvals: dict[UUID, ApprovalRow] = field(default_factory=dict)
    executions: dict[UUID, Execution] = field(default_factory=dict)
    by_signal: dict[UUID, UUID] = field(default_factory=dict)
    client_order_ids: set[str] = field(default_factory=set)
    events: list[MemoryEvent] = field(default_factory=list)
    trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_approvals: dict[UUID, datetime] = field(default_factory=dict)  # signal -> approved_at


class MemoryBase:
    """`MemoryStore`'s state; its parts (`memory_seed`, `memory_original`, `memory_operator`,
    `memory_breaks`) are mixins of this base."""

    def __init__(
        self, *, notifications: MemoryNotifications | None = None, clock: Clock = utcnow
    ) -> None:
        # The store owns its hub (as a database owns its NOTIFY): a listener connects to
        # `store.notifications`, so a store can never be left without one.
        self.notifications = notifications if notifications is not None else MemoryNotifications()
        self._clock = clock
        self._t = _Tables()
        self._event_ids = itertools.count(1)
        self._control = ControlState(halted=False, changed_at=clock())
        self.down = False  # True: every call raises StoreUnavailable (a database outage)
        self.breaks: list[RecordedBreak] = []  # every reconcile break ever recorded
        self._failures: dict[str, int] = {}
        # The original service's side (test inputs): which of its tables exist, the orders it
        # placed (signal -> evidence), its trades, and the guardrail facts of each signal.
        self.original = OriginalTables()
        self.original_orders: dict[UUID, str] = {}
        self.original_trades: list[OriginalTrade] = []
        self.guardrails: dict[UUID, GuardrailFacts] = {}

    @property
    def signals(self) -> dict[UUID, Signal]:
        return dict(self._t.signals)

    @property
    def approvals(self) -> dict[UUID, Approval]:
        return {key: row.approval for key, row in self._t.approvals.items()}

    @property
    def executions(self) -> list[Execution]:
        """Every execution, oldest first."""
        return list(self._t.executions.values())

    @property
    def events(self) -> list[MemoryEvent]:
        return list(self._t.events)

    @property
    def trades(self) -> dict[str, dict[str, Any]]:
        """`trades` rows by id (the execution id as text), copied."""
        return {key: dict(row) for key, row in self._t.trades.items()}

    def events_of(self, execution_id: UUID) -> list[MemoryEvent]:
        return [event for event in self._t.events if event.execution_id == execution_id]

    def execution_of(self, signal_id: UUID) -> Execution | None:
        execution_id = self._t.by_signal.get(signal_id)
        return None if execution_id is None else self._t.executions[execution_id]

    def fail_next(self, method: str, times: int = 1) -> None:
        """Make the next `times` calls of `method` (say "apply") raise `StoreUnavailable`,
        changing nothing: a transaction that failed."""
        self._failures[method] = self._failures.get(method, 0) + times

    async def _enter(self, method: str) -> None:
        """Every call is a checkpoint (as a round trip to a database would be)."""
        await anyio.lowlevel.checkpoint()
        if self.down:
            raise StoreUnavailable("the memory store is down")
        if self._failures.get(method, 0) > 0:
            self._failures[method] -= 1
            raise StoreUnavailable(f"injected failure of {method}")

    def _append_event(self, execution_id: UUID, kind: str, detail: dict[str, Any]) -> None:
        self._t.events.append(
            MemoryEvent(next(self._event_ids), execution_id, self._clock(), kind, as_json(detail))
        )

    def _execution_by_text(self, text: str) -> Execution | None:
        try:
            return self._t.executions.get(UUID(text))
        except ValueError:
            return None

    def _by_creation(self, executions: Iterable[Execution]) -> list[Execution]:
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(executions, key=lambda e: e.created_at or epoch)

    def _notify_approval(self, approval: Approval) -> None:
        payload = {"approval_id": str(approval.id), "signal_id": str(approval.signal_id)}
        self._notify(APPROVALS_CHANNEL, json.dumps(payload))

    def _notify(self, channel: str, payload: str) -> None:
        self.notifications.notify(channel, payload)


def keep(value: T | None, current: T) -> T:
    """SQL's `COALESCE(new, current)`."""
    return current if value is None else value


def approval_order(approval: Approval) -> tuple[bool, datetime, datetime]:
    """`ORDER BY approved_at NULLS LAST, created_at`."""
    epoch = datetime.min.replace(tzinfo=UTC)
    return (
        approval.approved_at is None,
        approval.approved_at or epoch,
        approval.created_at or epoch,
    )
