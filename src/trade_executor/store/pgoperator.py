"""`PgStore`'s kill switch and the operator's reads (`halt`, `resume`, `show`, `status`)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from trade_executor.domain.execution import Execution
from trade_executor.store import queries as q
from trade_executor.store.jsonb import detail_from_json
from trade_executor.store.leadership import LeaderRecord, read_leader
from trade_executor.store.original import audit_for_control
from trade_executor.store.pgbase import PgBase
from trade_executor.store.pgerrors import translating
from trade_executor.store.pgrows import execution_from_row
from trade_executor.store.protocol import ControlState, StoredEvent


class PgOperator(PgBase):
    """The kill switch, its announcements and the operator's reads (a mixin of `PgStore`)."""

    @translating
    async def control(self) -> ControlState:
        row = await self._pool.fetchrow(q.READ_CONTROL)
        if row is None:
            return ControlState(halted=False)
        return ControlState(row["halted"], row["reason"], row["changed_at"], row["changed_by"])

    @translating
    async def set_control(self, halted: bool, reason: str | None, changed_by: str) -> None:
        tables = await self.original_tables()
        if not tables.audit_events:
            await self._pool.execute(q.SET_CONTROL, halted, reason, changed_by)
            return
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(q.SET_CONTROL, halted, reason, changed_by)
            await self._insert_audit(conn, audit_for_control(halted, reason, changed_by))

    @translating
    async def announce_change(self, execution_id: UUID) -> None:
        await self._pool.execute(q.ANNOUNCE_CHANGE, str(execution_id))

    @translating
    async def acknowledge_control(
        self, changed_at: datetime | None, halted: bool, instance: str
    ) -> None:
        await self._pool.execute(q.ACKNOWLEDGE_CONTROL, changed_at, halted, instance)

    async def leader(self) -> LeaderRecord | None:
        """Who leads, since when, its last heartbeat and the limits it runs with."""
        return await read_leader(self._pool)

    @translating
    async def ping(self) -> None:
        await self._pool.fetchval(q.PING)

    @translating
    async def find_executions(self, low: UUID, high: UUID, limit: int) -> list[Execution]:
        rows = await self._pool.fetch(q.FIND_EXECUTIONS, low, high, limit)
        return [execution_from_row(row) for row in rows]

    @translating
    async def execution_events(self, execution_id: UUID) -> list[StoredEvent]:
        rows = await self._pool.fetch(q.EXECUTION_EVENTS, execution_id)
        return [
            StoredEvent(
                row["id"],
                row["execution_id"],
                row["at"],
                row["kind"],
                detail_from_json(row["detail"]),
            )
            for row in rows
        ]
