"""An in-memory `Store`, for running the actors on both anyio backends (the LISTEN/NOTIFY hub
is `testing.notifications`).

`MemoryStore` reproduces `PgStore`'s semantics (see `store/queries.py`), not just its signatures:

- `claim` re-reads the approval and its signal and inserts the `executions` row; the execution's
  `signal_id` and `client_order_id` are unique, as in the table (a duplicate `client_order_id` or
  execution id raises `StoreConflict`, a duplicate signal answers `AlreadyClaimed`);
- `apply` is guarded by the transition's source states and raises `IllegalTransition`, changing
  nothing, when the current state does not allow it; every field of `Changes` is "None keeps the
  current value"; `finished_at` is set once a final state is reached; the event
  detail carries the new `state`, JSON-normalised as `jsonb` would store it;
- a `trade` writes the `trades` row (upsert: a second write only updates `order_status`, `risk`
  and `updated_at`) and links every approved approval of the signal to the order id; without a
  trade, a fill or broker status of an execution with an order updates its trade row;
- `pending_approvals` gives one approval per signal (the earliest by `approved_at` NULLS LAST,
  then `created_at`) for approved signals with no execution, in `signal_id` order like
  `SELECT DISTINCT ON (signal_id) ... ORDER BY signal_id, ...`;
- `approve` returns the signal's approved approval or inserts one;
- `set_control` and approved approvals notify, like the PostgreSQL triggers of migration 0002,
  through the store's own hub, `store.notifications` (a `MemoryNotifications`);
- status approvals (`approve_by_status`, the original's UI) are recorded once per signal and
  notify `{"signal_id", "source": "signal_status"}` like migration 0003's trigger; `claim_status`
  claims them with no approval id;
- the original's tables: `original` says which exist (none by default); where they do, an intent
  is recorded with BEGIN_SUBMIT and kept up to date, a fill per increase of `filled_qty`, and
  the audit rows of `store.audit`. Its orders and trades are test inputs: `original_orders`,
  `original_trades`, and the guardrail facts per signal, `guardrails`.
- fencing: `leader_epoch` is the database's `executor_control.leader_epoch` (`take_over()`
  increments it, as a takeover does); once `fence(epoch)` is called, a claim of an existing
  approval and every `BEGIN_SUBMIT` raise `Fenced`, changing nothing, while `leader_epoch`
  differs from `epoch`.

Every method is atomic: it does all its work between two checkpoints, as one transaction would.
Faults for tests: `down = True` fails every call (an outage), `fail_next("apply")` fails the next
call of one method; `MemoryNotifications.drop_all()` / `hang_all()` kill the LISTEN sessions.
Only anyio primitives are used, so this runs on asyncio and trio alike.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID, uuid4

import anyio
import anyio.lowlevel

from trade_executor.domain.breaks import ReconcileBreak, RecordedBreak
from trade_executor.domain.execution import CHANGE_FIELDS, Changes, Execution, TradeRecord
from trade_executor.domain.guardrails import GuardrailFacts
from trade_executor.domain.ledger import OriginalTrade
from trade_executor.domain.models import Approval, Signal
from trade_executor.domain.states import EventKind, ExecutionState, IllegalTransition, Transition
from trade_executor.store.errors import Fenced, StoreConflict, StoreUnavailable
from trade_executor.store.notifications import (
    APPROVALS_CHANNEL,
    CONTROL_ACK_CHANNEL,
    CONTROL_CHANNEL,
)
from trade_executor.store.original import audit_for_control, audit_for_transition, fill_delta
from trade_executor.store.protocol import (
    APPROVAL_SOURCES,
    AlreadyClaimed,
    AuditEntry,
    Claimed,
    ClaimOutcome,
    ControlState,
    NotClaimable,
    OriginalTables,
    PendingApproval,
    StoredEvent,
    Trade,
)
from trade_executor.testing.notifications import MemoryNotifications

T = TypeVar("T")
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _json_default(value: object) -> str:
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def as_json(detail: dict[str, Any] | None) -> dict[str, Any]:
    """`detail` as a `jsonb` column would give it back (Decimals and UUIDs as strings)."""
    normalised: dict[str, Any] = json.loads(json.dumps(detail or {}, default=_json_default))
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
class _ApprovalRow:
    approval: Approval
    modification_notes: str | None = None


@dataclass(slots=True)
class _Tables:
    signals: dict[UUID, Signal] = field(default_factory=dict)
    approvals: dict[UUID, _ApprovalRow] = field(default_factory=dict)
    executions: dict[UUID, Execution] = field(default_factory=dict)
    by_signal: dict[UUID, UUID] = field(default_factory=dict)
    client_order_ids: set[str] = field(default_factory=set)
    events: list[MemoryEvent] = field(default_factory=list)
    trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_approvals: dict[UUID, datetime] = field(default_factory=dict)  # signal -> approved_at
    order_intents: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    audit_events: list[AuditEntry] = field(default_factory=list)


class MemoryStore:
    """`Store` in memory. Test helpers: `add_signal`, `add_approval`, `set_approved`,
    `fail_next`, `down`, and the `executions`, `events`, `trades`, `approvals` and `signals`
    views (`execution_of(signal_id)`, `events_of(execution_id)`)."""

    def __init__(
        self, *, notifications: MemoryNotifications | None = None, clock: Clock = _utcnow
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
        self.leader_epoch = 0  # executor_control.leader_epoch
        self._epoch: int | None = None  # the epoch this client is fenced with (None: unfenced)
        self._on_fenced: Callable[[Fenced], None] | None = None

    # -- fencing (as `PgStore.fence`) ------------------------------------------------------------

    def take_over(self) -> int:
        """A takeover by some instance: the database's epoch, incremented and returned."""
        self.leader_epoch += 1
        return self.leader_epoch

    @property
    def epoch(self) -> int | None:
        return self._epoch

    def fence(self, epoch: int | None, on_fenced: Callable[[Fenced], None] | None = None) -> None:
        """Fence claims and intent writes with `epoch` (None: unfenced)."""
        self._epoch = epoch
        self._on_fenced = on_fenced

    def _check_fence(self) -> None:
        if self._epoch is not None and self._epoch != self.leader_epoch:
            error = Fenced(self._epoch, self.leader_epoch)
            if self._on_fenced is not None:
                self._on_fenced(error)
            raise error

    # -- test helpers (synchronous: each is one committed transaction) -------------------------

    def add_signal(
        self,
        symbol: str | None = "AAPL",
        side: str | None = "BUY",
        entry: str | Decimal | None = "150",
        stop: str | Decimal | None = "145",
        target: str | Decimal | None = "160",
        *,
        expires_in: timedelta | None = timedelta(hours=1),
        strategy_id: str | None = "test-strategy",
        signal_id: UUID | None = None,
        status: str | None = "pending",
    ) -> UUID:
        """Insert a `strategy_signals` row (fields unvalidated, as the table allows)."""
        now = self._clock()
        signal = Signal(
            id=signal_id or uuid4(),
            symbol=symbol,
            signal_type=side,
            entry_price=_decimal(entry),
            stop_loss=_decimal(stop),
            take_profit=_decimal(target),
            strategy_id=strategy_id,
            confidence=Decimal("0.8"),
            reasoning="test",
            generated_at=now,
            expires_at=None if expires_in is None else now + expires_in,
            status=status,
            created_at=now,
        )
        if signal.id in self._t.signals:
            raise StoreConflict(f"strategy_signals: duplicate id {signal.id}")
        self._t.signals[signal.id] = signal
        return signal.id

    def add_approval(
        self,
        signal_id: UUID,
        approved: bool = True,
        *,
        approval_id: UUID | None = None,
        approved_by: str | None = "tester",
        approved_at: datetime | None = None,
        notify: bool = True,
    ) -> UUID:
        """Insert a `trade_approvals` row. An approved one notifies `trade_approvals` like the
        trigger does, unless `notify=False` (a notification lost on the way)."""
        if signal_id not in self._t.signals:
            raise StoreConflict(f"trade_approvals: no signal {signal_id}")
        now = self._clock()
        new_id = approval_id or uuid4()
        approval = Approval(
            id=new_id,
            signal_id=signal_id,
            approved=approved,
            approved_at=(approved_at or now) if approved else approved_at,
            approved_by=approved_by,
            created_at=now,
        )
        if new_id in self._t.approvals:
            raise StoreConflict(f"trade_approvals: duplicate id {new_id}")
        self._t.approvals[new_id] = _ApprovalRow(approval)
        if approved and notify:
            self._notify_approval(approval)
        return new_id

    def set_approved(
        self, approval_id: UUID, approved: bool = True, *, notify: bool = True
    ) -> None:
        """`UPDATE trade_approvals SET approved = ...`: notifies when it becomes approved."""
        row = self._t.approvals[approval_id]
        stamp = row.approval.approved_at or (self._clock() if approved else None)
        row.approval = replace(row.approval, approved=approved, approved_at=stamp)
        if approved and notify:
            self._notify_approval(row.approval)

    def approve_by_status(self, signal_id: UUID, *, notify: bool = True) -> None:
        """The original's UI: `UPDATE strategy_signals SET status = 'approved'`. The first such
        change of a signal is recorded and (unless `notify=False`) announced, like 0003's
        trigger."""
        signal = self._t.signals[signal_id]
        if signal.status == "approved":
            return
        self._t.signals[signal_id] = replace(signal, status="approved")
        if signal_id in self._t.status_approvals:
            return
        self._t.status_approvals[signal_id] = self._clock()
        if notify:
            payload = {"signal_id": str(signal_id), "source": "signal_status"}
            self._notify(APPROVALS_CHANNEL, json.dumps(payload))

    @property
    def order_intents(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._t.order_intents]

    @property
    def fills(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._t.fills]

    @property
    def audit_events(self) -> list[AuditEntry]:
        return list(self._t.audit_events)

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

    # -- Store -----------------------------------------------------------------------------------

    async def claim(
        self, approval_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        await self._enter("claim")
        row = self._t.approvals.get(approval_id)
        if row is None:
            return NotClaimable("approval not found")
        self._check_fence()
        approval = row.approval
        if not approval.approved:
            return NotClaimable("not_approved")
        signal = self._t.signals.get(approval.signal_id)
        if signal is None:
            return NotClaimable("signal not found")
        existing = self._t.by_signal.get(signal.id)
        if existing is not None:
            return AlreadyClaimed(self._t.executions[existing])
        if execution_id in self._t.executions:
            raise StoreConflict(f"executions: duplicate id {execution_id}")
        if client_order_id in self._t.client_order_ids:
            raise StoreConflict(f"executions: duplicate client_order_id {client_order_id}")
        now = self._clock()
        execution = Execution(
            id=execution_id,
            signal_id=signal.id,
            approval_id=approval.id,
            state=ExecutionState.RECEIVED,
            client_order_id=client_order_id,
            symbol=signal.symbol[:64] if signal.symbol else None,
            action=signal.signal_type if signal.signal_type in ("BUY", "SELL") else None,
            approval_source="trade_approvals",
            created_at=now,
            updated_at=now,
        )
        self._t.executions[execution_id] = execution
        self._t.by_signal[signal.id] = execution_id
        self._t.client_order_ids.add(client_order_id)
        self._append_event(
            execution_id,
            EventKind.CLAIMED,
            {"approval_id": approval.id, "approved_by": approval.approved_by},
        )
        return Claimed(execution, signal, approval)

    async def claim_status(
        self, signal_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        await self._enter("claim_status")
        approved_at = self._t.status_approvals.get(signal_id)
        if approved_at is None:
            return NotClaimable("approval not found")
        self._check_fence()
        signal = self._t.signals.get(signal_id)
        if signal is None:
            return NotClaimable("signal not found")
        existing = self._t.by_signal.get(signal_id)
        if existing is not None:
            return AlreadyClaimed(self._t.executions[existing])
        if signal.status != "approved":
            return NotClaimable("not_approved")
        if execution_id in self._t.executions:
            raise StoreConflict(f"executions: duplicate id {execution_id}")
        if client_order_id in self._t.client_order_ids:
            raise StoreConflict(f"executions: duplicate client_order_id {client_order_id}")
        now = self._clock()
        execution = Execution(
            id=execution_id,
            signal_id=signal_id,
            approval_id=None,
            state=ExecutionState.RECEIVED,
            client_order_id=client_order_id,
            symbol=signal.symbol[:64] if signal.symbol else None,
            action=signal.signal_type if signal.signal_type in ("BUY", "SELL") else None,
            approval_source="signal_status",
            created_at=now,
            updated_at=now,
        )
        self._t.executions[execution_id] = execution
        self._t.by_signal[signal_id] = execution_id
        self._t.client_order_ids.add(client_order_id)
        self._append_event(
            execution_id,
            EventKind.CLAIMED,
            {"approval_source": "signal_status", "approved_at": approved_at},
        )
        return Claimed(execution, signal, _status_approval(signal_id, approved_at))

    async def pending_approvals(
        self, limit: int, sources: Collection[str] = APPROVAL_SOURCES
    ) -> list[PendingApproval]:
        await self._enter("pending_approvals")
        found: list[PendingApproval] = []
        if "trade_approvals" in sources:
            first: dict[UUID, Approval] = {}
            for row in self._t.approvals.values():
                approval = row.approval
                if not approval.approved or approval.signal_id in self._t.by_signal:
                    continue
                held = first.get(approval.signal_id)
                if held is None or _approval_order(approval) < _approval_order(held):
                    first[approval.signal_id] = approval
            chosen = sorted(first.values(), key=_approval_order)[: max(limit, 0)]
            found += [PendingApproval(a.id, a.signal_id) for a in chosen]
        if "signal_status" in sources:
            waiting = sorted(
                (at, signal_id)
                for signal_id, at in self._t.status_approvals.items()
                if signal_id not in self._t.by_signal
                and self._t.signals[signal_id].status == "approved"
            )[: max(limit, 0)]
            found += [PendingApproval(None, signal_id, "signal_status") for _, signal_id in waiting]
        return found

    async def status_approval(self, signal_id: UUID) -> Approval | None:
        await self._enter("status_approval")
        approved_at = self._t.status_approvals.get(signal_id)
        return None if approved_at is None else _status_approval(signal_id, approved_at)

    async def original_order(self, signal_id: UUID) -> str | None:
        await self._enter("original_order")
        return self.original_orders.get(signal_id)

    async def original_trades_since(self, since: datetime) -> list[OriginalTrade]:
        await self._enter("original_trades_since")
        return [trade for trade in self.original_trades if trade.created_at >= since]

    async def original_tables(self) -> OriginalTables:
        await self._enter("original_tables")
        return self.original

    async def guardrail_facts(
        self,
        signal_id: UUID,
        *,
        instances: bool,
        artifacts: bool,
        day_start: datetime,
        trading_day: date,
    ) -> GuardrailFacts:
        await self._enter("guardrail_facts")
        facts = self.guardrails.get(signal_id, GuardrailFacts())
        return replace(
            facts,
            instance_checked=instances and facts.instance_checked,
            artifact_checked=artifacts and facts.artifact_checked,
        )

    async def record_audit(self, entry: AuditEntry) -> None:
        await self._enter("record_audit")
        if self.original.audit_events:
            self._t.audit_events.append(entry)

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
        await self._enter("apply")
        if transition is Transition.BEGIN_SUBMIT:
            self._check_fence()
        current = self._t.executions.get(execution_id)
        if current is None:
            raise IllegalTransition(transition, None)
        new_state = transition.apply(current.state)
        now = self._clock()
        kept = {
            name: getattr(changes, name)
            for name in CHANGE_FIELDS
            if getattr(changes, name) is not None  # SQL's COALESCE(new, current)
        }
        updated = replace(
            current,
            **kept,
            state=new_state,
            updated_at=now,
            finished_at=(current.finished_at or now) if new_state.is_final else current.finished_at,
        )
        self._t.executions[execution_id] = updated
        self._append_event(
            execution_id, transition.event, {"state": new_state.value, **(detail or {})}
        )
        self._write_original(current, updated, transition, detail, now)
        if trade is not None:
            self._write_trade(trade, now)
        elif updated.order_id is not None and (
            changes.filled_qty is not None or changes.broker_status is not None
        ):
            self._update_trade_status(str(execution_id), changes, now)
        if trade_notes is not None and str(execution_id) in self._t.trades:
            self._t.trades[str(execution_id)].update(notes=trade_notes, updated_at=now)
        return updated

    async def add_event(self, execution_id: UUID, kind: str, detail: dict[str, Any]) -> None:
        await self._enter("add_event")
        if execution_id not in self._t.executions:
            raise StoreConflict(f"execution_events: no execution {execution_id}")
        self._append_event(execution_id, kind, detail)

    async def get_execution(self, execution_id: UUID) -> Execution | None:
        await self._enter("get_execution")
        return self._t.executions.get(execution_id)

    async def execution_for_signal(self, signal_id: UUID) -> Execution | None:
        await self._enter("execution_for_signal")
        return self.execution_of(signal_id)

    async def executions_in(self, states: Sequence[ExecutionState]) -> list[Execution]:
        await self._enter("executions_in")
        wanted = frozenset(states)
        return self._by_creation(e for e in self._t.executions.values() if e.state in wanted)

    async def executions_on(self, trading_day: date) -> list[Execution]:
        await self._enter("executions_on")
        return self._by_creation(
            e for e in self._t.executions.values() if e.trading_day == trading_day
        )

    async def positions_to_follow(self, closed_since: datetime) -> list[Execution]:
        await self._enter("positions_to_follow")
        return self._by_creation(
            e
            for e in self._t.executions.values()
            if e.position_state in ("open", "unprotected")
            or (e.closed_at is not None and e.closed_at >= closed_since)
        )

    async def get_signal(self, signal_id: UUID) -> Signal | None:
        await self._enter("get_signal")
        return self._t.signals.get(signal_id)

    async def get_approval(self, approval_id: UUID) -> Approval | None:
        await self._enter("get_approval")
        row = self._t.approvals.get(approval_id)
        return None if row is None else row.approval

    async def approve(self, signal_id: UUID, approved_by: str) -> UUID:
        await self._enter("approve")
        candidates = [
            row.approval
            for row in self._t.approvals.values()
            if row.approval.signal_id == signal_id and row.approval.approved
        ]
        if candidates:
            first = min(candidates, key=_approval_order).id
            assert first is not None  # rows of trade_approvals always have an id
            return first
        return self.add_approval(signal_id, True, approved_by=approved_by)

    async def trade_for_signal(self, signal_id: UUID) -> Trade | None:
        await self._enter("trade_for_signal")
        for trade in self._t.trades.values():
            if trade["signal_id"] != signal_id:
                continue
            execution = self._execution_by_text(trade["id"])
            if execution is None:
                continue  # the inner join drops a trade without its execution
            signal = self._t.signals.get(signal_id)
            return Trade(
                {
                    "trade_id": trade["id"],
                    "signal_id": trade["signal_id"],
                    "order_id": execution.order_id,
                    "symbol": trade["symbol"],
                    "direction": trade["direction"],
                    "quantity": execution.quantity,
                    "entry_price": trade["entry"],
                    "stop_loss": trade["stop"],
                    "take_profit": execution.take_profit,
                    "strategy_id": signal.strategy_id if signal is not None else None,
                    "status": execution.state.value,
                    "broker_status": execution.broker_status,
                    "filled_qty": execution.filled_qty,
                    "avg_fill_price": execution.avg_fill_price,
                    "risk_amount": execution.risk_amount,
                    "risk_percent": execution.risk_percent,
                    "position_value": execution.position_value,
                    "submitted_at": execution.submitted_at,
                    "reason": execution.reason,
                }
            )
        return None

    async def control(self) -> ControlState:
        await self._enter("control")
        return self._control

    async def set_control(self, halted: bool, reason: str | None, changed_by: str) -> None:
        await self._enter("set_control")
        self._control = ControlState(halted, reason, self._clock(), changed_by)
        if self.original.audit_events:
            self._t.audit_events.append(audit_for_control(halted, reason, changed_by))
        self._notify(CONTROL_CHANNEL, json.dumps({"halted": halted, "reason": reason}))

    async def announce_change(self, execution_id: UUID) -> None:
        await self._enter("announce_change")
        self._notify(CONTROL_CHANNEL, json.dumps({"execution_id": str(execution_id)}))

    async def ping(self) -> None:
        await self._enter("ping")

    async def find_executions(self, low: UUID, high: UUID, limit: int) -> list[Execution]:
        await self._enter("find_executions")
        found = [
            e
            for e in self._t.executions.values()
            if low <= e.id <= high or low <= e.signal_id <= high
        ]
        return self._by_creation(found)[: max(limit, 0)]

    async def execution_events(self, execution_id: UUID) -> list[StoredEvent]:
        await self._enter("execution_events")
        return [
            StoredEvent(e.id, e.execution_id, e.at, e.kind, dict(e.detail))
            for e in self.events_of(execution_id)
        ]

    async def acknowledge_control(
        self, changed_at: datetime | None, halted: bool, instance: str
    ) -> None:
        await self._enter("acknowledge_control")
        payload = {
            "changed_at": changed_at.isoformat() if changed_at else None,
            "halted": halted,
            "instance": instance,
        }
        self._notify(CONTROL_ACK_CHANNEL, json.dumps(payload))

    # -- internals -------------------------------------------------------------------------------

    # -- reconciliation with the broker ----------------------------------------------------------

    async def executions_for_reconcile(self, order_ids: Sequence[int]) -> list[Execution]:
        await self._enter("executions_for_reconcile")
        listed = frozenset(order_ids)
        in_flight = {
            ExecutionState.SUBMITTING,
            ExecutionState.SUBMITTED,
            ExecutionState.PARTIALLY_FILLED,
            ExecutionState.UNKNOWN,
        }

        def wanted(e: Execution) -> bool:
            if e.state in in_flight:
                return True
            holding = e.state in (ExecutionState.FILLED, ExecutionState.CANCELLED)
            if holding and e.filled_qty > 0 and e.position_state != "closed":
                return True
            return e.state is ExecutionState.CANCELLED and e.order_id in listed

        return self._by_creation(e for e in self._t.executions.values() if wanted(e))

    async def record_breaks(self, breaks: Sequence[ReconcileBreak], now: datetime) -> None:
        await self._enter("record_breaks")
        seen = {b.key: b for b in breaks}
        kept: list[RecordedBreak] = []
        for recorded in self.breaks:
            key = (recorded.kind, recorded.symbol, recorded.execution_id)
            if recorded.cleared_at is not None:
                kept.append(recorded)
            elif key in seen:
                found = seen.pop(key)
                kept.append(
                    replace(recorded, last_seen=now, order_id=found.order_id, detail=found.detail)
                )
            else:
                kept.append(replace(recorded, cleared_at=now))
        for found in breaks:
            if found.key in seen:
                kept.append(
                    RecordedBreak(
                        kind=found.kind.value,
                        symbol=found.symbol,
                        execution_id=found.execution_id,
                        order_id=found.order_id,
                        detail=dict(found.detail),
                        first_seen=now,
                        last_seen=now,
                    )
                )
        self.breaks = kept

    async def open_breaks(self) -> list[RecordedBreak]:
        await self._enter("open_breaks")
        return [b for b in self.breaks if b.cleared_at is None]

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

    def _write_original(
        self,
        before: Execution,
        after: Execution,
        transition: Transition,
        detail: dict[str, Any] | None,
        now: datetime,
    ) -> None:
        """The original's tables, as `PgStore` writes them in the transition's transaction."""
        key = str(after.id)
        if self.original.order_intents:
            if transition is Transition.BEGIN_SUBMIT:
                self._t.order_intents.append(
                    {
                        "signal_id": after.signal_id,
                        "symbol": after.symbol,
                        "side": after.action,
                        "quantity": after.quantity,
                        "order_type": after.order_type,
                        "status": "pending",
                        "metadata": {"executionId": key, "clientOrderId": after.client_order_id},
                        "created_at": now,
                    }
                )
            else:
                for intent in self._t.order_intents:
                    if intent["metadata"].get("executionId") != key:
                        continue
                    failed = after.state.value in ("failed", "unknown", "rejected")
                    intent["status"] = (
                        after.state.value
                        if failed or after.broker_status is None
                        else after.broker_status
                    )
                    if after.order_id is not None:
                        intent["metadata"]["brokerOrderId"] = str(after.order_id)
                    intent["metadata"]["filledQty"] = after.filled_qty
        if self.original.fills and after.filled_qty > before.filled_qty:
            delta = fill_delta(
                before.filled_qty, before.avg_fill_price, after.filled_qty, after.avg_fill_price
            )
            if delta is not None:
                self._t.fills.append(
                    {
                        "trade_id": key if key in self._t.trades else None,
                        "broker_order_id": str(after.order_id),
                        "symbol": after.symbol,
                        "side": after.action,
                        "filled_qty": delta[0],
                        "avg_fill_price": delta[1],
                    }
                )
        if self.original.audit_events:
            entry = audit_for_transition(after, transition, detail)
            if entry is not None:
                self._t.audit_events.append(entry)

    def _write_trade(self, trade: TradeRecord, now: datetime) -> None:
        order_id = str(trade.order_id) if trade.order_id is not None else None
        risk = {
            "amount": trade.risk_amount,
            "percent": trade.risk_percent,
            "position_value": trade.position_value,
            "quantity": trade.quantity,
            "order_id": order_id,
            "status": trade.order_status,
        }
        existing = self._t.trades.get(trade.trade_id)
        if existing is not None:
            existing.update(order_status=trade.order_status, risk=risk, updated_at=now)
        else:
            self._t.trades[trade.trade_id] = {
                "id": trade.trade_id,
                "signal_id": trade.signal_id,
                "symbol": trade.symbol,
                "direction": trade.direction,
                "entry": trade.entry,
                "stop": trade.stop,
                "targets": [trade.take_profit],
                "strategy_id": trade.strategy_id,
                "notes": trade.notes,
                "risk": risk,
                "order_status": trade.order_status,
                "filled_qty": 0,
                "avg_fill_price": None,
                "created_at": now,
                "updated_at": now,
            }
        if order_id is not None:
            for row in self._t.approvals.values():
                if row.approval.signal_id == trade.signal_id and row.approval.approved:
                    row.approval = replace(row.approval, order_id=order_id)

    def _update_trade_status(self, trade_id: str, changes: Changes, now: datetime) -> None:
        row = self._t.trades.get(trade_id)
        if row is None:
            return
        row["order_status"] = _keep(changes.broker_status, row["order_status"])
        row["filled_qty"] = _keep(changes.filled_qty, row["filled_qty"])
        row["avg_fill_price"] = _keep(changes.avg_fill_price, row["avg_fill_price"])
        if row["risk"] is not None:
            risk = dict(row["risk"])
            risk["status"] = _keep(changes.broker_status, risk.get("status"))
            row["risk"] = risk
        row["updated_at"] = now

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


def _keep(value: T | None, current: T) -> T:
    """SQL's `COALESCE(new, current)`."""
    return current if value is None else value


def _decimal(value: str | Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _status_approval(signal_id: UUID, approved_at: datetime) -> Approval:
    return Approval(
        id=None,
        signal_id=signal_id,
        approved=True,
        approved_at=approved_at,
        approved_by=None,
        created_at=approved_at,
        source="signal_status",
    )


def _approval_order(approval: Approval) -> tuple[bool, datetime, datetime]:
    """`ORDER BY approved_at NULLS LAST, created_at`."""
    epoch = datetime.min.replace(tzinfo=UTC)
    return (
        approval.approved_at is None,
        approval.approved_at or epoch,
        approval.created_at or epoch,
    )


if TYPE_CHECKING:  # both implement their protocols: mypy checks it here
    from trade_executor.store.protocol import Store

    def _is_a_store(store: MemoryStore) -> Store:
        return store
