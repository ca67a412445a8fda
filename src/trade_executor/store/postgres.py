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
from trade_executor.domain.states import ExecutionState, guard
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


def signal_from_row(row: asyncpg.Record) -> Signal:
    return Signal(
        id=row["id"],
        symbol=row["symbol"],
        signal_type=row["signal_type"],
        entry_price=row["entry_price"],
        stop_loss=row["stop_loss"],
        take_profit=row["take_profit"],
        strategy_id=row["strategy_id"],
        confidence=row["confidence"],
        reasoning=row["reasoning"],
        generated_at=row["generated_at"],
        expires_at=row["expires_at"],
        status=row["status"],
        created_at=row["created_at"],
    )


def approval_from_row(row: asyncpg.Record) -> Approval:
    return Approval(
        id=row["id"],
        signal_id=row["signal_id"],
        approved=bool(row["approved"]),
        approved_at=row["approved_at"],
        approved_by=row["approved_by"],
        created_at=row["created_at"],
        order_id=row["order_id"],
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
        async with self._pool.acquire() as conn, conn.transaction():
            approval_row = await conn.fetchrow(q.CLAIM_READ_APPROVAL, approval_id)
            if approval_row is None:
                return NotClaimable("approval not found")
            approval = approval_from_row(approval_row)
            if not approval.approved:
                return NotClaimable("not_approved")
            signal_row = await conn.fetchrow(q.READ_SIGNAL, approval.signal_id)
            if signal_row is None:
                return NotClaimable("signal not found")
            signal = signal_from_row(signal_row)
            action = signal.signal_type if signal.signal_type in ("BUY", "SELL") else None
            symbol = signal.symbol[:64] if signal.symbol else None
            row = await conn.fetchrow(
                q.CLAIM_INSERT,
                execution_id,
                signal.id,
                approval.id,
                client_order_id,
                symbol,
                action,
            )
            if row is None:
                existing = await conn.fetchrow(q.EXECUTION_BY_SIGNAL, signal.id)
                assert existing is not None  # the conflict proves it exists
                return AlreadyClaimed(execution_from_row(existing))
            await conn.execute(
                q.INSERT_EVENT,
                execution_id,
                "claimed",
                to_json({"approval_id": approval.id, "approved_by": approval.approved_by}),
            )
            return Claimed(execution_from_row(row), signal, approval)

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
        allowed = [state.value for state in sources]
        async with self._pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval(
                "SELECT state FROM executions WHERE id = $1 FOR UPDATE", execution_id
            )
            if current is None or current not in allowed:
                return None
            new_state = target.value if target is not None else current
            row = await conn.fetchrow(
                q.APPLY,
                execution_id,
                new_state,
                allowed,
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
                ExecutionState(new_state).is_final,
            )
            assert row is not None
            execution = execution_from_row(row)
            await conn.execute(
                q.INSERT_EVENT,
                execution_id,
                event,
                to_json({"state": new_state, **(detail or {})}),
            )
            if trade is not None:
                await self._write_trade(conn, trade)
            elif execution.order_id is not None and (
                changes.filled_qty is not None or changes.broker_status is not None
            ):
                await conn.execute(
                    q.UPDATE_TRADE_STATUS,
                    str(execution_id),
                    changes.broker_status,
                    changes.filled_qty,
                    changes.avg_fill_price,
                )
            return execution

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
        row = await self._pool.fetchrow(q.CLAIM_READ_APPROVAL, approval_id)
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
