"""`MemoryStore`'s test helpers that insert rows as a test states them (each one committed
transaction): signals, approvals and status approvals, notified like the triggers do."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from trade_executor.domain.models import Approval, Signal
from trade_executor.store.errors import StoreConflict
from trade_executor.store.notifications import APPROVALS_CHANNEL
from trade_executor_dev.testing.memory_base import ApprovalRow, MemoryBase


class MemorySeed(MemoryBase):
    """Rows a test inserts (a mixin of `MemoryStore`)."""

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
        self._t.approvals[new_id] = ApprovalRow(approval)
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


def _decimal(value: str | Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value)
