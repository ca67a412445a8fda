"""`PgStore`'s reads and notices for the exits (actors/exits)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from trade_executor.domain.execution import Execution
from trade_executor.store import queries as q
from trade_executor.store.jsonb import to_json
from trade_executor.store.pgbase import PgBase
from trade_executor.store.pgerrors import translating
from trade_executor.store.pgrows import execution_from_row


class PgExits(PgBase):
    """The positions the exits follow, their flatten times, `close` (a mixin of `PgStore`)."""

    @translating
    async def positions_to_follow(self, closed_since: datetime) -> list[Execution]:
        rows = await self._pool.fetch(q.POSITIONS_TO_FOLLOW, closed_since)
        return [execution_from_row(row) for row in rows]

    @translating
    async def instance_flatten_times(
        self, execution_ids: Sequence[UUID]
    ) -> dict[UUID, tuple[str, str | None, str | None]] | None:
        """Each execution's strategy instance (id, `flatten_by_close_time`, `session_timezone`);
        None when this database has no strategy instances (not the original's)."""
        if not await self._pool.fetchval(q.INSTANCE_FLATTEN_READY):
            return None
        rows = await self._pool.fetch(q.INSTANCE_FLATTEN_TIMES, list(execution_ids))
        return {r["execution_id"]: (r["instance_id"], r["at"], r["zone"]) for r in rows}

    @translating
    async def request_close(
        self, execution_ids: Sequence[UUID], detail: dict[str, Any], payload: str
    ) -> None:
        """In one transaction: a `position.close_requested` event with `detail` in each
        position's audit trail, and the request to the running service (a notification on the
        control channel, see `store.closing`, delivered at the commit: never before the events
        are in, never without them)."""
        async with self._pool.acquire() as conn, conn.transaction():
            for execution_id in execution_ids:
                await conn.execute(
                    q.INSERT_EVENT, execution_id, "position.close_requested", to_json(detail)
                )
            await conn.execute(q.ANNOUNCE_CLOSE, payload)
