"""What the actors need from persistence, as roles. `PgStore` (asyncpg) is the real one;
`trade_executor_dev.testing.MemoryStore` serves the actors' fast tests on both anyio backends.

`Store` is five roles that partition it (claims, the ledger, the operator's side, the original's
tables, reconciliation's breaks); each consumer other than the executor takes the narrow role
that names what it calls (`ListenerStore`, `PollerStore`, `ExitStore`, `ReconcilerStore`,
`ReportStore`, `LookupStore`, ...). tests/unit/store/test_roles.py checks both stores satisfy
every role; tests/integration/store/test_store_contract.py holds each role's contract.

Every method raises only the store's own errors (`store.errors`: `StoreUnavailable` when worth
retrying, `StoreError` otherwise) or, from `apply`, `IllegalTransition`."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from trade_executor.domain.attention import Bounds
from trade_executor.domain.breaks import ReconcileBreak, RecordedBreak
from trade_executor.domain.execution import Changes, Execution, TradeRecord
from trade_executor.domain.guardrails import GuardrailFacts
from trade_executor.domain.ledger import OriginalTrade
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
class StoredEvent:
    """A row of `execution_events`; `detail` as stored (fractions as Decimal)."""

    id: int
    execution_id: UUID
    at: datetime
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PendingApproval:
    approval_id: UUID | None  # None: a status approval
    signal_id: UUID
    source: str = "trade_approvals"  # trade_approvals | signal_status


APPROVAL_SOURCES = ("trade_approvals", "signal_status")


@dataclass(frozen=True, slots=True)
class OriginalTables:
    """Which of the original service's (jax-trading-assistant's) HEAD tables exist."""

    strategy_instances: bool = False
    artifact_approvals: bool = False
    strategy_artifacts: bool = False
    order_intents: bool = False
    fills: bool = False
    audit_events: bool = False


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An `audit_events` row of the original's shape (written only where the table exists)."""

    correlation_id: str
    action: str
    outcome: str
    message: str
    metadata: dict[str, Any]
    category: str = "execution"


@dataclass(frozen=True, slots=True)
class Trade:
    """A `trades` row joined with its execution, as the HTTP API reports it."""

    fields: dict[str, Any]


def claimed_execution(
    execution_id: UUID,
    approval: Approval,
    client_order_id: str,
    *,
    symbol: str | None,
    action: str | None,
    created_at: datetime | None,
    updated_at: datetime | None,
) -> Execution:
    """The execution a claim of `approval` inserts: received, nothing decided yet, its
    `approval_source` the approval's."""
    return Execution(
        id=execution_id,
        signal_id=approval.signal_id,
        approval_id=approval.id,
        state=ExecutionState.RECEIVED,
        client_order_id=client_order_id,
        symbol=symbol,
        action=action,
        approval_source=approval.source,
        created_at=created_at,
        updated_at=updated_at,
    )


def status_approval(signal_id: UUID, approved_at: datetime | None) -> Approval:
    """A status approval: no row of its own, approved when the status changed, by whom unknown."""
    return Approval(
        id=None,
        signal_id=signal_id,
        approved=True,
        approved_at=approved_at,
        approved_by=None,
        created_at=approved_at,
        source="signal_status",
    )


@dataclass(frozen=True, slots=True)
class LedgerGauges:
    """The ledger's state gauges in one read (`Store.ledger_gauges`)."""

    needing_operator: int  # `domain.attention.needing_operator` over today's and the open ones
    daily_risk_used: Decimal  # `domain.ledger.todays_risk` (the original's trades not included)


class ClaimStore(Protocol):
    """Claiming approvals: the listener's and the executor's way in (CONTRACT section 4)."""

    async def claim(
        self, approval_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        """In one transaction: re-read the approval and its signal, and insert the `executions`
        row (state `received`). The unique `signal_id` makes a second claim fail in the database."""

    async def claim_status(
        self, signal_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        """`claim` for a status approval (recorded in `signal_status_approvals` when the
        original's UI set `strategy_signals.status = 'approved'`): the execution has no
        approval id and `approval_source = 'signal_status'`; the approval's age is the time of
        the status change. The same unique `signal_id` as `claim`: one execution per signal
        whichever source or both."""

    async def pending_approvals(
        self, limit: int, sources: Collection[str] = APPROVAL_SOURCES
    ) -> list[PendingApproval]:
        """Approvals of `sources` whose signal has no execution yet (one per signal and source,
        oldest first): approved `trade_approvals` rows, and status approvals whose signal is
        still `approved`."""

    async def status_approval(self, signal_id: UUID) -> Approval | None:
        """The signal's status approval (see `Approval`), or None."""

    async def get_signal(self, signal_id: UUID) -> Signal | None: ...

    async def get_approval(self, approval_id: UUID) -> Approval | None: ...


class LedgerStore(Protocol):
    """The executions and their events: every transition, and the reads of the ledger."""

    async def apply(
        self,
        execution_id: UUID,
        transition: Transition,
        changes: Changes,
        detail: dict[str, Any] | None = None,
        trade: TradeRecord | None = None,
        *,
        trade_notes: str | None = None,
        announce: bool = False,
    ) -> Execution:
        """In one transaction: move the execution along `transition`, set `changes` (None leaves
        a field as it is), append the transition's event, write the trade row and link the
        approvals to the order id when `trade` is given, set the `trades` row's `notes` when
        `trade_notes` is given (how an exit shows in the original's UI), and with `announce`
        tell the running service (`announce_change`'s notification, sent in the same
        transaction: delivered at its commit, so neither lost after a committed change nor
        received before it). Raises `IllegalTransition`, changing nothing and announcing
        nothing, if the execution's current state does not allow the transition (the table's
        guard decides, under the row lock)."""

    async def add_event(self, execution_id: UUID, kind: str, detail: dict[str, Any]) -> None:
        """Append an event that is not a transition (see `EventKind`)."""

    async def get_execution(self, execution_id: UUID) -> Execution | None: ...

    async def execution_for_signal(self, signal_id: UUID) -> Execution | None: ...

    async def executions_in(self, states: Sequence[ExecutionState]) -> list[Execution]: ...

    async def executions_on(self, trading_day: date) -> list[Execution]:
        """Executions of one trading day (for the daily budget at start-up)."""

    async def execution_ids_in(self, states: Sequence[ExecutionState]) -> list[UUID]:
        """The ids of `executions_in(states)`, in the same order: what a periodic sweep needs to
        find the few it does not follow yet, without reading thousands of rows."""

    async def ledger_gauges(self, today: date, now: datetime, bounds: Bounds) -> LedgerGauges:
        """The gauges' counts over today's executions and every one not yet final, in one
        aggregate read (no row is sent back): how many need an operator at `now` (`bounds`),
        and the risk that counts on `today`'s budget. The same numbers as the domain's rules
        over `executions_on(today)` and `executions_in(NOT_FINAL_STATES)`."""

    async def positions_to_follow(self, closed_since: datetime) -> list[Execution]:
        """Executions whose position is open or unprotected (of any day), and those whose
        position closed at or after `closed_since` (their realized P&L counts today, and a
        sibling exit order may still need its cancel), oldest first."""

    async def trade_for_signal(self, signal_id: UUID) -> Trade | None: ...


class OperatorStore(Protocol):
    """The operator's side: the kill switch, announcements to the running service, approvals by
    hand, and the look-ups of `show`."""

    async def control(self) -> ControlState: ...

    async def set_control(self, halted: bool, reason: str | None, changed_by: str) -> None: ...

    async def announce_change(self, execution_id: UUID) -> None:
        """Tell the running service (NOTIFY on the control channel) that an execution was
        changed outside it, so its executor re-reads the row within a second. An operator's
        change announces itself in its own transaction instead (`apply(announce=True)`)."""

    async def acknowledge_control(
        self, changed_at: datetime | None, halted: bool, instance: str
    ) -> None:
        """Tell whoever waits (NOTIFY on `trade_executor_control_ack`) that this running
        instance applied the kill switch as written at `changed_at`."""

    async def approve(self, signal_id: UUID, approved_by: str) -> UUID:
        """The signal's approved approval, inserting one if there is none yet."""

    async def ping(self) -> None:
        """Raises if the database does not answer."""

    async def find_executions(self, low: UUID, high: UUID, limit: int) -> list[Execution]:
        """Executions whose id or signal id lies in [low, high] (an id or an id prefix, see
        `ops.ids`), oldest first, at most `limit`."""

    async def execution_events(self, execution_id: UUID) -> list[StoredEvent]:
        """The execution's audit trail, in the order it was written."""


class OriginalStore(Protocol):
    """The original service's (jax-trading-assistant's) tables: evidence of its orders, its
    trades, its guards' facts, its audit trail."""

    async def original_order(self, signal_id: UUID) -> str | None:
        """Evidence that the original service already placed an order for the signal (a
        `trades` row not ours, a `trade_approvals.order_id` not ours, an `order_intents` row
        with a broker order id not ours), described for the logs; None if there is none."""

    async def original_trades_since(self, since: datetime) -> list[OriginalTrade]:
        """The original service's `trades` rows (not ours) created at or after `since`."""

    async def original_tables(self) -> OriginalTables:
        """Which of the original's tables exist (read once, then remembered)."""

    async def guardrail_facts(
        self,
        signal_id: UUID,
        *,
        instances: bool,
        artifacts: bool,
        day_start: datetime,
        trading_day: date,
    ) -> GuardrailFacts:
        """What the original's guards need for the signal (see `domain.guardrails`): with
        `instances`, its `strategy_instances` row and the instance's trades since `day_start`
        (plus ours of `trading_day` without a trade row); with `artifacts`, its artifact's
        approval state. Raises a store error when any of it cannot be read."""

    async def record_audit(self, entry: AuditEntry) -> None:
        """Append an `audit_events` row where that table exists; nothing otherwise."""


class BreakStore(Protocol):
    """Reconciliation: what is compared with the broker, and the breaks found."""

    async def executions_for_reconcile(self, order_ids: Sequence[int]) -> list[Execution]:
        """What reconciliation compares with the broker: executions in flight (`submitting`,
        `submitted`, `partially_filled`, `unknown`), `filled`/`cancelled` ones holding shares
        whose position is not `closed`, and `cancelled` ones whose order id is in `order_ids`."""

    async def record_breaks(self, breaks: Sequence[ReconcileBreak], now: datetime) -> None:
        """In one transaction: the breaks of a reconciliation pass become the open ones. A break
        already open is refreshed (`last_seen`), a new one inserted, an open one not in `breaks`
        cleared (`cleared_at`)."""

    async def open_breaks(self) -> list[RecordedBreak]:
        """The breaks the last reconciliation pass found (for `status` and /health)."""


class Store(ClaimStore, LedgerStore, OperatorStore, OriginalStore, BreakStore, Protocol):
    """Everything the service needs from persistence: the five roles above, which partition it.
    The executor takes the whole of it; every other consumer takes the narrow role below (or
    above) that names what it calls."""


# ---- the roles of single consumers: each a few methods of the ones above ----------------------


class Transitions(Protocol):
    """Moving one execution along, knowing its current row (`recording`, and the bases of the
    pollers' and the exits' roles)."""

    async def get_execution(self, execution_id: UUID) -> Execution | None: ...

    async def apply(
        self,
        execution_id: UUID,
        transition: Transition,
        changes: Changes,
        detail: dict[str, Any] | None = None,
        trade: TradeRecord | None = None,
        *,
        trade_notes: str | None = None,
        announce: bool = False,
    ) -> Execution: ...

    async def add_event(self, execution_id: UUID, kind: str, detail: dict[str, Any]) -> None: ...


class ListenerStore(Protocol):
    """What the listener reads: the kill switch and the approvals its notifications missed."""

    async def control(self) -> ControlState: ...

    async def pending_approvals(
        self, limit: int, sources: Collection[str] = APPROVAL_SOURCES
    ) -> list[PendingApproval]: ...


class PollerStore(Transitions, Protocol):
    """What the order pollers need: the working executions, and their transitions."""

    async def executions_in(self, states: Sequence[ExecutionState]) -> list[Execution]: ...

    async def execution_ids_in(self, states: Sequence[ExecutionState]) -> list[UUID]: ...


class ExitStore(Transitions, Protocol):
    """What the exits need: the positions to follow, their transitions, and an execution's
    trail (the quantity an unanswered close was sent with)."""

    async def positions_to_follow(self, closed_since: datetime) -> list[Execution]: ...

    async def execution_events(self, execution_id: UUID) -> list[StoredEvent]: ...


class ProtectStore(ExitStore, Protocol):
    """The operator's protect (`broker_truth.protect_with`): an exit's transition, announced."""

    async def announce_change(self, execution_id: UUID) -> None: ...


class ReconcilerStore(BreakStore, Protocol):
    """What reconciliation needs: the breaks, and the transitions it applies."""

    async def apply(
        self,
        execution_id: UUID,
        transition: Transition,
        changes: Changes,
        detail: dict[str, Any] | None = None,
        trade: TradeRecord | None = None,
        *,
        trade_notes: str | None = None,
        announce: bool = False,
    ) -> Execution: ...


class ReportStore(Protocol):
    """What the gauges and the daily figures read: the kill switch, the executions in flight
    and of a trading day."""

    async def control(self) -> ControlState: ...

    async def executions_in(self, states: Sequence[ExecutionState]) -> list[Execution]: ...

    async def executions_on(self, trading_day: date) -> list[Execution]: ...

    async def ledger_gauges(self, today: date, now: datetime, bounds: Bounds) -> LedgerGauges: ...


class LookupStore(Protocol):
    """What `show` looks up: executions by id or prefix, and their audit trail."""

    async def find_executions(self, low: UUID, high: UUID, limit: int) -> list[Execution]: ...

    async def execution_events(self, execution_id: UUID) -> list[StoredEvent]: ...


# Every role, for the checks that `PgStore` (and the memory store) satisfy each.
ROLES: tuple[type, ...] = (
    ClaimStore,
    LedgerStore,
    OperatorStore,
    OriginalStore,
    BreakStore,
    Transitions,
    ListenerStore,
    PollerStore,
    ExitStore,
    ProtectStore,
    ReconcilerStore,
    ReportStore,
    LookupStore,
)
