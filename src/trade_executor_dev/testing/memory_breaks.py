"""`MemoryStore`'s side of the reconciliation with the broker (as `PgStore`'s `pgbreaks`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from trade_executor.domain.breaks import ReconcileBreak, RecordedBreak
from trade_executor.domain.execution import Execution
from trade_executor.domain.states import ExecutionState
from trade_executor_dev.testing.memory_base import MemoryBase


class MemoryBreaks(MemoryBase):
    """What the reconciler compares and the breaks it records (a mixin of `MemoryStore`)."""

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
