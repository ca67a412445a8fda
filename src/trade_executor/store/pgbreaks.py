"""`PgStore`'s side of the reconciliation with the broker (actors/reconciler.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from trade_executor.domain.breaks import ReconcileBreak, RecordedBreak
from trade_executor.domain.execution import Execution
from trade_executor.store import queries as q
from trade_executor.store.jsonb import json_object, to_json
from trade_executor.store.pgbase import PgBase
from trade_executor.store.pgerrors import translating
from trade_executor.store.pgrows import execution_from_row


class PgBreaks(PgBase):
    """What the reconciler compares and the breaks it records (a mixin of `PgStore`)."""

    @translating
    async def executions_for_reconcile(self, order_ids: Sequence[int]) -> list[Execution]:
        rows = await self._pool.fetch(q.EXECUTIONS_FOR_RECONCILE, list(order_ids))
        return [execution_from_row(row) for row in rows]

    @translating
    async def record_breaks(self, breaks: Sequence[ReconcileBreak], now: datetime) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            # One pass at a time: a deposed leader's last pass cannot interleave with ours.
            await conn.execute(q.LOCK_BREAKS)
            open_rows = await conn.fetch(q.OPEN_BREAKS)
            seen = {b.key for b in breaks}
            for row in open_rows:
                key = (row["kind"], row["symbol"], row["execution_id"])
                if key not in seen:
                    await conn.execute(q.CLEAR_BREAK, *key, now)
            already = {(r["kind"], r["symbol"], r["execution_id"]) for r in open_rows}
            for found in breaks:
                detail = to_json(found.detail)
                if found.key in already:
                    await conn.execute(q.TOUCH_BREAK, *found.key, now, found.order_id, detail)
                else:
                    await conn.execute(q.INSERT_BREAK, *found.key, found.order_id, detail, now)

    @translating
    async def open_breaks(self) -> list[RecordedBreak]:
        rows = await self._pool.fetch(q.OPEN_BREAKS)
        return [
            RecordedBreak(
                kind=row["kind"],
                symbol=row["symbol"],
                execution_id=row["execution_id"],
                order_id=row["order_id"],
                detail=json_object(row["detail"]),
                first_seen=row["first_seen"],
                last_seen=row["last_seen"],
                cleared_at=row["cleared_at"],
            )
            for row in rows
        ]
