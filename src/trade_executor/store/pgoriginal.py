"""`PgStore`'s side of the original service's tables (CONTRACT section 4): whether they exist,
its orders and trades, its guardrails' facts, and our writes to `order_intents`, `fills`,
`audit_events` and `trades` in the transition's transaction."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from trade_executor.domain.execution import Changes, TradeRecord
from trade_executor.domain.guardrails import GuardrailFacts, InstanceRow, UsageItem
from trade_executor.domain.ledger import OriginalTrade
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.store import queries as q
from trade_executor.store.original import audit_for_transition, fill_delta
from trade_executor.store.pgbase import PgBase
from trade_executor.store.pgerrors import translating
from trade_executor.store.pgrows import execution_from_row, instance_config
from trade_executor.store.protocol import AuditEntry, OriginalTables


def writes_original(tables: OriginalTables, transition: Transition, changes: Changes) -> bool:
    """Whether the transition writes one of the original's tables (then it needs a transaction)."""
    if tables.order_intents and transition not in (Transition.REJECT, Transition.DRY_RUN):
        order_news = (
            changes.order_id is not None
            or changes.broker_status is not None
            or changes.filled_qty is not None
            or changes.reason is not None
        )
        target = transition.target
        if (
            transition in (Transition.BEGIN_SUBMIT, Transition.RETRY_UNSENT)
            or order_news
            or (target is not None and (target.is_final or target is ExecutionState.UNKNOWN))
        ):
            return True
    if tables.fills and changes.filled_qty is not None:
        return True
    return tables.audit_events and (
        transition in (Transition.REJECT, Transition.HOLD_BACK)
        or transition.name.startswith("RESOLVE")
    )


class PgOriginalTables(PgBase):
    """The original's tables, read and written (a mixin of `PgStore`)."""

    @translating
    async def original_order(self, signal_id: UUID) -> str | None:
        tables = await self.original_tables()
        query = q.ORIGINAL_ORDER_WITH_INTENTS if tables.order_intents else q.ORIGINAL_ORDER
        evidence = await self._pool.fetchval(query, signal_id)
        return str(evidence) if evidence is not None else None

    @translating
    async def original_trades_since(self, since: datetime) -> list[OriginalTrade]:
        rows = await self._pool.fetch(q.ORIGINAL_TRADES_SINCE, since)
        return [
            OriginalTrade(
                trade_id=row["id"],
                symbol=(row["symbol"] or "").strip().upper(),
                risk_amount=row["risk_amount"],
                order_status=row["order_status"],
                created_at=row["created_at"],
            )
            for row in rows
        ]

    @translating
    async def guardrail_facts(
        self,
        signal_id: UUID,
        *,
        instances: bool,
        artifacts: bool,
        day_start: datetime,
        trading_day: date,
    ) -> GuardrailFacts:
        if not instances and not artifacts:
            return GuardrailFacts()
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            signal = await conn.fetchrow(q.SIGNAL_PROVENANCE, signal_id)
            instance_id = signal["instance_id"] if signal is not None else None
            artifact_id = signal["artifact_id"] if signal is not None else None
            instance: InstanceRow | None = None
            usage: tuple[UsageItem, ...] = ()
            if instances and instance_id is not None:
                row = await conn.fetchrow(q.READ_INSTANCE, instance_id)
                if row is not None:
                    instance = InstanceRow(
                        id=row["id"],
                        enabled=bool(row["enabled"]),
                        session_timezone=row["session_timezone"],
                        flatten_by_close_time=row["flatten_by_close_time"],
                        config=instance_config(row["config"]),
                    )
                rows = await conn.fetch(q.INSTANCE_USAGE, instance_id, day_start, trading_day)
                usage = tuple(
                    UsageItem(r["key"], r["symbol"] or "", r["risk_amount"], bool(r["open"]))
                    for r in rows
                )
            state = None
            if artifacts and artifact_id is not None:
                state = await conn.fetchval(q.ARTIFACT_STATE, artifact_id)
        return GuardrailFacts(
            instance_checked=instances,
            instance_id=instance_id,
            instance=instance,
            usage=usage,
            artifact_checked=artifacts,
            artifact_id=artifact_id,
            artifact_state=state,
        )

    @translating
    async def record_audit(self, entry: AuditEntry) -> None:
        if (await self.original_tables()).audit_events:
            await self._insert_audit(self._pool, entry)

    async def _write_original(
        self,
        conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        tables: OriginalTables,
        transition: Transition,
        row: asyncpg.Record,
        before: asyncpg.Record | None,
        detail: dict[str, Any] | None,
    ) -> None:
        """The original's own tables, in the transition's transaction (CONTRACT section 4):
        the intent before the POST, kept up to date; a fill per delta; the audit trail."""
        execution_id = row["id"]
        if tables.order_intents:
            if transition is Transition.BEGIN_SUBMIT:
                await conn.execute(q.INSERT_ORDER_INTENT, execution_id)
            elif transition is Transition.RETRY_UNSENT:
                # Proven never sent: the intent goes, the next decision writes its own (one
                # intent row per execution, as the original's UI expects).
                await conn.execute(q.DELETE_ORDER_INTENT, execution_id)
            else:
                await conn.execute(q.UPDATE_ORDER_INTENT, execution_id)
        if tables.fills and before is not None:
            delta = fill_delta(
                before["filled_qty"],
                before["avg_fill_price"],
                row["filled_qty"],
                row["avg_fill_price"],
            )
            if delta is not None:
                await conn.execute(q.INSERT_FILL, execution_id, delta[0], delta[1])
        if tables.audit_events:
            entry = audit_for_transition(execution_from_row(row), transition, detail)
            if entry is not None:
                await self._insert_audit(conn, entry)

    @staticmethod
    async def _write_trade(
        conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        trade: TradeRecord,
        tables: OriginalTables | None = None,
    ) -> None:
        order_id = str(trade.order_id) if trade.order_id is not None else None
        await conn.execute(
            q.UPSERT_TRADE,
            trade.trade_id,
            trade.signal_id,
            trade.symbol,
            trade.direction,
            trade.entry,
            trade.stop,
            trade.take_profit,
            trade.strategy_id,
            trade.notes,
            trade.risk_amount,
            trade.risk_percent,
            trade.position_value,
            trade.quantity,
            order_id,
            trade.order_status,
        )
        if order_id is not None:
            await conn.execute(q.LINK_APPROVALS, trade.signal_id, order_id)
        await conn.execute(q.TRADE_PROVENANCE, trade.trade_id)
        if tables is not None and tables.strategy_artifacts:
            await conn.execute(q.TRADE_ARTIFACT_HASH, trade.trade_id)
