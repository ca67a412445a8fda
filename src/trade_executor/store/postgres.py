"""The asyncpg implementation of `Store`. asyncpg runs on asyncio only: every asyncpg call of
the project lives under `store/`, so the actors stay backend-neutral."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from trade_executor.domain.execution import Changes, Execution, TradeRecord
from trade_executor.domain.models import Approval, Signal
from trade_executor.domain.states import FINAL_STATES, ExecutionState, guard
from trade_executor.store import queries as q
from trade_executor.store.protocol import (
    AlreadyClaimed,
    Claimed,
    ClaimOutcome,
    ControlState,
    NotClaimable,
    PendingApproval,
    Trade,
)

FINAL_STATE_VALUES = sorted(state.value for state in FINAL_STATES)


def _json_default(value: object) -> str:
    if isinstance(value, Decimal | UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(detail: dict[str, Any] | None) -> str:
    return json.dumps(detail or {}, default=_json_default)


def execution_from_row(row: asyncpg.Record) -> Execution:
    return Execution(
        id=row["id"],
        signal_id=row["signal_id"],
        approval_id=row["approval_id"],
        state=ExecutionState(row["state"]),
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        reason=row["reason"],
        action=row["action"],
        order_type=row["order_type"],
        order_id=row["order_id"],
        child_order_ids=tuple(row["child_order_ids"] or ()),
        quantity=row["quantity"],
        entry_price=row["entry_price"],
        stop_loss=row["stop_loss"],
        take_profit=row["take_profit"],
        risk_amount=row["risk_amount"],
        risk_percent=row["risk_percent"],
        position_value=row["position_value"],
        filled_qty=row["filled_qty"],
        avg_fill_price=row["avg_fill_price"],
        broker_status=row["broker_status"],
        trading_day=row["trading_day"],
        attempted_at=row["attempted_at"],
        created_at=row["created_at"],
        submitted_at=row["submitted_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
    )


def signal_from_row(row: asyncpg.Record, prefix: str = "") -> Signal:
    return Signal(
        id=row[f"{prefix}id"],
        symbol=row[f"{prefix}symbol"],
        signal_type=row[f"{prefix}signal_type"],
        entry_price=row[f"{prefix}entry_price"],
        stop_loss=row[f"{prefix}stop_loss"],
        take_profit=row[f"{prefix}take_profit"],
        strategy_id=row[f"{prefix}strategy_id"],
        confidence=row[f"{prefix}confidence"],
        reasoning=row[f"{prefix}reasoning"],
        generated_at=row[f"{prefix}generated_at"],
        expires_at=row[f"{prefix}expires_at"],
        status=row[f"{prefix}status"],
        created_at=row[f"{prefix}created_at"],
    )


def approval_from_row(row: asyncpg.Record, prefix: str = "") -> Approval:
    return Approval(
        id=row[f"{prefix}id"],
        signal_id=row[f"{prefix}signal_id"],
        approved=bool(row[f"{prefix}approved"]),
        approved_at=row[f"{prefix}approved_at"],
        approved_by=row[f"{prefix}approved_by"],
        created_at=row[f"{prefix}created_at"],
        order_id=row[f"{prefix}order_id"],
    )


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=30)
    assert pool is not None
    return pool


class PgStore:
    """`Store` over an asyncpg pool. Each method is one transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def claim(
        self, approval_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        row = await self._pool.fetchrow(q.CLAIM, approval_id, execution_id, client_order_id)
        if row is None:
            return NotClaimable("approval not found")
        approval = approval_from_row(row, prefix="a_")
        if not approval.approved:
            return NotClaimable("not_approved")
        if row["s_id"] is None:
            return NotClaimable("signal not found")
        if row["e_id"] is None:
            existing = await self._pool.fetchrow(q.EXECUTION_BY_SIGNAL, approval.signal_id)
            if existing is None:  # claimed and gone (a concurrent test clean-up): nothing to do
                return NotClaimable("execution vanished")
            return AlreadyClaimed(execution_from_row(existing))
        execution = Execution(
            id=row["e_id"],
            signal_id=approval.signal_id,
            approval_id=approval.id,
            state=ExecutionState.RECEIVED,
            client_order_id=client_order_id,
            symbol=row["e_symbol"],
            action=row["e_action"],
            created_at=row["e_created_at"],
            updated_at=row["e_updated_at"],
        )
        return Claimed(execution, signal_from_row(row, prefix="s_"), approval)

    async def pending_approvals(self, limit: int) -> list[PendingApproval]:
        rows = await self._pool.fetch(q.PENDING_APPROVALS, limit)
        return [PendingApproval(row["approval_id"], row["signal_id"]) for row in rows]

    async def apply(
        self,
        execution_id: UUID,
        transition_name: str | None,
        changes: Changes,
        event: str,
        detail: dict[str, Any] | None = None,
        trade: TradeRecord | None = None,
    ) -> Execution | None:
        sources, target = guard(transition_name)
        args = (
            execution_id,
            target.value if target is not None else None,
            [state.value for state in sources],
            changes.reason,
            changes.action,
            changes.order_type,
            changes.order_id,
            list(changes.child_order_ids) if changes.child_order_ids is not None else None,
            changes.quantity,
            changes.entry_price,
            changes.stop_loss,
            changes.take_profit,
            changes.risk_amount,
            changes.risk_percent,
            changes.position_value,
            changes.filled_qty,
            changes.avg_fill_price,
            changes.broker_status,
            changes.trading_day,
            changes.attempted_at,
            changes.submitted_at,
            FINAL_STATE_VALUES,
            event,
            to_json(detail),
        )
        if trade is None:
            row = await self._pool.fetchrow(q.APPLY, *args)
            return execution_from_row(row) if row is not None else None
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q.APPLY, *args)
            if row is None:
                return None
            await self._write_trade(conn, trade)
            return execution_from_row(row)

    @staticmethod
    async def _write_trade(
        conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record], trade: TradeRecord
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

    async def add_event(self, execution_id: UUID, event: str, detail: dict[str, Any]) -> None:
        await self._pool.execute(q.INSERT_EVENT, execution_id, event, to_json(detail))

    async def get_execution(self, execution_id: UUID) -> Execution | None:
        row = await self._pool.fetchrow(q.EXECUTION_BY_ID, execution_id)
        return execution_from_row(row) if row is not None else None

    async def execution_for_signal(self, signal_id: UUID) -> Execution | None:
        row = await self._pool.fetchrow(q.EXECUTION_BY_SIGNAL, signal_id)
        return execution_from_row(row) if row is not None else None

    async def executions_in(self, states: Sequence[ExecutionState]) -> list[Execution]:
        rows = await self._pool.fetch(q.EXECUTIONS_IN_STATES, [s.value for s in states])
        return [execution_from_row(row) for row in rows]

    async def executions_on(self, trading_day: date) -> list[Execution]:
        rows = await self._pool.fetch(q.EXECUTIONS_ON_DAY, trading_day)
        return [execution_from_row(row) for row in rows]

    async def get_signal(self, signal_id: UUID) -> Signal | None:
        row = await self._pool.fetchrow(q.READ_SIGNAL, signal_id)
        return signal_from_row(row) if row is not None else None

    async def get_approval(self, approval_id: UUID) -> Approval | None:
        row = await self._pool.fetchrow(q.READ_APPROVAL, approval_id)
        return approval_from_row(row) if row is not None else None

    async def approve(self, signal_id: UUID, approved_by: str) -> UUID:
        async with self._pool.acquire() as conn, conn.transaction():
            # Serialise concurrent approvals of one signal so that only one row is inserted.
            await conn.execute(q.SIGNAL_LOCK, signal_id)
            existing = await conn.fetchval(q.APPROVAL_FOR_SIGNAL, signal_id)
            if existing is not None:
                return UUID(str(existing))
            inserted = await conn.fetchval(q.INSERT_APPROVAL, signal_id, approved_by)
            return UUID(str(inserted))

    async def trade_for_signal(self, signal_id: UUID) -> Trade | None:
        row = await self._pool.fetchrow(q.TRADE_FOR_SIGNAL, signal_id)
        return Trade(dict(row.items())) if row is not None else None

    async def control(self) -> ControlState:
        row = await self._pool.fetchrow(q.READ_CONTROL)
        if row is None:
            return ControlState(halted=False)
        return ControlState(row["halted"], row["reason"], row["changed_at"], row["changed_by"])

    async def set_control(self, halted: bool, reason: str | None, changed_by: str) -> None:
        await self._pool.execute(q.SET_CONTROL, halted, reason, changed_by)

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")
