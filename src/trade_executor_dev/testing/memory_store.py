"""An in-memory `Store`, for running the actors on both anyio backends (the LISTEN/NOTIFY hub
is `testing.notifications`).

`MemoryStore` reproduces `PgStore`'s semantics (see `store/sql/`), not just its signatures:

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
- the original's tables: `original` says which exist (none by default); its orders and trades
  are test inputs: `original_orders`, `original_trades`, and the guardrail facts per signal,
  `guardrails`. Our writes to its `order_intents`, `fills` and `audit_events` are not kept
  (PostgreSQL's: tests/integration/test_dropin_original_tables.py, test_dropin.py).
- no fencing: the leadership epoch is PostgreSQL's alone (`PgStore.fence`; its tests are
  tests/integration/test_fencing.py and tests/integration/actors/test_fencing_actors_pg.py).

Every method is atomic: it does all its work between two checkpoints, as one transaction would.
Faults for tests: `down = True` fails every call (an outage), `fail_next("apply")` fails the next
call of one method; `MemoryNotifications.drop_all()` / `hang_all()` kill the LISTEN sessions.
Only anyio primitives are used, so this runs on asyncio and trio alike.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from trade_executor.domain.attention import Bounds, needing_operator
from trade_executor.domain.execution import CHANGE_FIELDS, Changes, Execution, TradeRecord
from trade_executor.domain.ledger import todays_risk
from trade_executor.domain.models import Approval, Signal
from trade_executor.domain.states import EventKind, ExecutionState, IllegalTransition, Transition
from trade_executor.store.errors import StoreConflict
from trade_executor.store.protocol import (
    APPROVAL_SOURCES,
    AlreadyClaimed,
    Claimed,
    ClaimOutcome,
    LedgerGauges,
    NotClaimable,
    PendingApproval,
    Trade,
    claimed_execution,
    status_approval,
)
from trade_executor_dev.testing.memory_base import MemoryEvent, approval_order, as_json
from trade_executor_dev.testing.memory_breaks import MemoryBreaks
from trade_executor_dev.testing.memory_operator import MemoryOperator
from trade_executor_dev.testing.memory_original import MemoryOriginal
from trade_executor_dev.testing.memory_seed import MemorySeed

__all__ = ["MemoryEvent", "MemoryStore", "as_json"]


class MemoryStore(MemorySeed, MemoryOriginal, MemoryOperator, MemoryBreaks):
    """`Store` in memory. Test helpers: `add_signal`, `add_approval`, `set_approved`,
    `fail_next`, `down`, and the `executions`, `events`, `trades`, `approvals` and `signals`
    views (`execution_of(signal_id)`, `events_of(execution_id)`)."""

    async def claim(
        self, approval_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        await self._enter("claim")
        row = self._t.approvals.get(approval_id)
        if row is None:
            return NotClaimable("approval not found")
        approval = row.approval
        if not approval.approved:
            return NotClaimable("not_approved")
        signal = self._t.signals.get(approval.signal_id)
        if signal is None:
            return NotClaimable("signal not found")
        existing = self._t.by_signal.get(signal.id)
        if existing is not None:
            return AlreadyClaimed(self._t.executions[existing])
        detail = {"approval_id": approval.id, "approved_by": approval.approved_by}
        return self._insert_claim(execution_id, approval, signal, client_order_id, detail)

    async def claim_status(
        self, signal_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        await self._enter("claim_status")
        approved_at = self._t.status_approvals.get(signal_id)
        if approved_at is None:
            return NotClaimable("approval not found")
        signal = self._t.signals.get(signal_id)
        if signal is None:
            return NotClaimable("signal not found")
        existing = self._t.by_signal.get(signal_id)
        if existing is not None:
            return AlreadyClaimed(self._t.executions[existing])
        if signal.status != "approved":
            return NotClaimable("not_approved")
        approval = status_approval(signal_id, approved_at)
        detail = {"approval_source": "signal_status", "approved_at": approved_at}
        return self._insert_claim(execution_id, approval, signal, client_order_id, detail)

    def _insert_claim(
        self,
        execution_id: UUID,
        approval: Approval,
        signal: Signal,
        client_order_id: str,
        detail: dict[str, Any],
    ) -> Claimed:
        """Insert the claimed execution and its `execution.claimed` event (`detail`), as the
        claim statements do; raises `StoreConflict` for a duplicate id or client order id."""
        if execution_id in self._t.executions:
            raise StoreConflict(f"executions: duplicate id {execution_id}")
        if client_order_id in self._t.client_order_ids:
            raise StoreConflict(f"executions: duplicate client_order_id {client_order_id}")
        now = self._clock()
        execution = claimed_execution(
            execution_id,
            approval,
            client_order_id,
            symbol=signal.symbol[:64] if signal.symbol else None,
            action=signal.signal_type if signal.signal_type in ("BUY", "SELL") else None,
            created_at=now,
            updated_at=now,
        )
        self._t.executions[execution_id] = execution
        self._t.by_signal[signal.id] = execution_id
        self._t.client_order_ids.add(client_order_id)
        self._append_event(execution_id, EventKind.CLAIMED, detail)
        return Claimed(execution, signal, approval)

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
                if held is None or approval_order(approval) < approval_order(held):
                    first[approval.signal_id] = approval
            chosen = sorted(first.values(), key=approval_order)[: max(limit, 0)]
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
        return None if approved_at is None else status_approval(signal_id, approved_at)

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
        await self._enter("apply")
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
        if trade is not None:
            self._write_trade(trade, now)
        elif updated.order_id is not None and (
            changes.filled_qty is not None or changes.broker_status is not None
        ):
            self._update_trade_status(str(execution_id), changes, now)
        if trade_notes is not None and str(execution_id) in self._t.trades:
            self._t.trades[str(execution_id)].update(notes=trade_notes, updated_at=now)
        if announce:  # as PostgreSQL delivers it: once the change is in
            self._announce(execution_id)
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

    async def execution_ids_in(self, states: Sequence[ExecutionState]) -> list[UUID]:
        await self._enter("execution_ids_in")
        wanted = frozenset(states)
        return [
            e.id
            for e in self._by_creation(e for e in self._t.executions.values() if e.state in wanted)
        ]

    async def executions_on(self, trading_day: date) -> list[Execution]:
        await self._enter("executions_on")
        return self._by_creation(
            e for e in self._t.executions.values() if e.trading_day == trading_day
        )

    async def ledger_gauges(self, today: date, now: datetime, bounds: Bounds) -> LedgerGauges:
        await self._enter("ledger_gauges")
        rows = [
            e for e in self._t.executions.values() if not e.state.is_final or e.trading_day == today
        ]
        return LedgerGauges(len(needing_operator(rows, bounds, now)), todays_risk(rows, today))

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
            first = min(candidates, key=approval_order).id
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


if TYPE_CHECKING:  # both implement their protocols: mypy checks it here
    from trade_executor.store.protocol import Store

    def _is_a_store(store: MemoryStore) -> Store:
        return store
