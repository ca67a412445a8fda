"""`MemoryStore`'s kill switch, its notifications and the operator's reads."""

from __future__ import annotations

import json
from datetime import datetime
from uuid import UUID

from trade_executor.domain.execution import Execution
from trade_executor.store.control_payloads import execution_payload, kill_switch_payload
from trade_executor.store.notifications import CONTROL_ACK_CHANNEL, CONTROL_CHANNEL
from trade_executor.store.protocol import ControlState, StoredEvent
from trade_executor_dev.testing.memory_base import MemoryBase


class MemoryOperator(MemoryBase):
    """The kill switch and the operator's reads (a mixin of `MemoryStore`)."""

    async def control(self) -> ControlState:
        await self._enter("control")
        return self._control

    async def set_control(self, halted: bool, reason: str | None, changed_by: str) -> None:
        await self._enter("set_control")
        self._control = ControlState(halted, reason, self._clock(), changed_by)
        self._notify(CONTROL_CHANNEL, kill_switch_payload(halted, reason))

    async def announce_change(self, execution_id: UUID) -> None:
        await self._enter("announce_change")
        self._announce(execution_id)

    def _announce(self, execution_id: UUID) -> None:
        self._notify(CONTROL_CHANNEL, execution_payload(execution_id))

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
