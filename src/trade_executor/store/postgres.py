"""The asyncpg implementation of `Store`. asyncpg runs on asyncio only: every asyncpg call of
the project lives under `store/`, so the actors stay backend-neutral."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from trade_executor.domain.execution import (
    CHANGE_FIELDS,
    EXECUTION_FIELDS,
    Changes,
    Execution,
    TradeRecord,
)
from trade_executor.domain.models import Approval, Signal
from trade_executor.domain.states import (
    FINAL_STATES,
    ExecutionState,
    IllegalTransition,
    Transition,
)
from trade_executor.store import queries as q
from trade_executor.store.pgerrors import translated, translating
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


# Columns whose database form differs from the dataclass's.
_FROM_DB: dict[str, Callable[[Any], Any]] = {
    "state": ExecutionState,
    "child_order_ids": lambda ids: tuple(ids or ()),
}


def execution_from_row(row: asyncpg.Record | Mapping[str, Any]) -> Execution:
    """Every field of `Execution` from the column of the same name (columns the dataclass does
    not know, added by a newer migration, are ignored)."""
    values = {name: row[name] for name in EXECUTION_FIELDS}
    for name, convert in _FROM_DB.items():
        values[name] = convert(values[name])
    return Execution(**values)


def _to_db(changes: Changes) -> dict[str, Any]:
    values = {name: getattr(changes, name) for name in CHANGE_FIELDS}
    if values["child_order_ids"] is not None:
        values["child_order_ids"] = list(values["child_order_ids"])
    return values


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
    """A connection pool; raises the store's own errors (`StoreUnavailable`, ...)."""
    with translated():
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, command_timeout=30
        )
    assert pool is not None
    return pool


class PgStore:
    """`Store` over an asyncpg pool. Each method is one transaction and raises only the store's
    own errors (`store.errors`) or `IllegalTransition`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @translating
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
            approval_source="trade_approvals",
            created_at=row["e_created_at"],
            updated_at=row["e_updated_at"],
        )
        return Claimed(execution, signal_from_row(row, prefix="s_"), approval)

    @translating
    async def pending_approvals(self, limit: int) -> list[PendingApproval]:
        rows = await self._pool.fetch(q.PENDING_APPROVALS, limit)
        return [PendingApproval(row["approval_id"], row["signal_id"]) for row in rows]

    @translating
    async def apply(
        self,
        execution_id: UUID,
        transition: Transition,
        changes: Changes,
        detail: dict[str, Any] | None = None,
        trade: TradeRecord | None = None,
    ) -> Execution:
        target = transition.target
        args = q.APPLY.args(
            {
                "execution_id": execution_id,
                "target": target.value if target is not None else None,
                "sources": [state.value for state in transition.sources],
                "final_states": FINAL_STATE_VALUES,
                "event": transition.event,
                "detail": to_json(detail),
                **_to_db(changes),
            }
        )
        if trade is None:  # one statement, one round trip: the hot path of every poll
            row = await self._pool.fetchrow(q.APPLY.sql, *args)
        else:
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(q.APPLY.sql, *args)
                if row is not None:
                    await self._write_trade(conn, trade)
        if row is None:
            current = await self._pool.fetchval(q.EXECUTION_STATE, execution_id)
            raise IllegalTransition(
                transition, ExecutionState(current) if current is not None else None
            )
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

    @translating
    async def add_event(self, execution_id: UUID, kind: str, detail: dict[str, Any]) -> None:
        await self._pool.execute(q.INSERT_EVENT, execution_id, kind, to_json(detail))

    @translating
    async def get_execution(self, execution_id: UUID) -> Execution | None:
        row = await self._pool.fetchrow(q.EXECUTION_BY_ID, execution_id)
        return execution_from_row(row) if row is not None else None

    @translating
    async def execution_for_signal(self, signal_id: UUID) -> Execution | None:
        row = await self._pool.fetchrow(q.EXECUTION_BY_SIGNAL, signal_id)
        return execution_from_row(row) if row is not None else None

    @translating
    async def executions_in(self, states: Sequence[ExecutionState]) -> list[Execution]:
        rows = await self._pool.fetch(q.EXECUTIONS_IN_STATES, [s.value for s in states])
        return [execution_from_row(row) for row in rows]

    @translating
    async def executions_by_prefix(self, prefix: str, limit: int = 2) -> list[Execution]:
        """Executions whose id or signal id starts with `prefix` (hex digits and dashes, lower
        case), oldest first, at most `limit` (2 is enough to tell an ambiguous prefix)."""
        rows = await self._pool.fetch(q.EXECUTIONS_BY_PREFIX, prefix, limit)
        return [execution_from_row(row) for row in rows]

    @translating
    async def executions_on(self, trading_day: date) -> list[Execution]:
        rows = await self._pool.fetch(q.EXECUTIONS_ON_DAY, trading_day)
        return [execution_from_row(row) for row in rows]

    @translating
    async def get_signal(self, signal_id: UUID) -> Signal | None:
        row = await self._pool.fetchrow(q.READ_SIGNAL, signal_id)
        return signal_from_row(row) if row is not None else None

    @translating
    async def get_approval(self, approval_id: UUID) -> Approval | None:
        row = await self._pool.fetchrow(q.READ_APPROVAL, approval_id)
        return approval_from_row(row) if row is not None else None

    @translating
    async def approve(self, signal_id: UUID, approved_by: str) -> UUID:
        async with self._pool.acquire() as conn, conn.transaction():
            # Serialise concurrent approvals of one signal so that only one row is inserted.
            await conn.execute(q.SIGNAL_LOCK, signal_id)
            existing = await conn.fetchval(q.APPROVAL_FOR_SIGNAL, signal_id)
            if existing is not None:
                return UUID(str(existing))
            inserted = await conn.fetchval(q.INSERT_APPROVAL, signal_id, approved_by)
            return UUID(str(inserted))

    @translating
    async def trade_for_signal(self, signal_id: UUID) -> Trade | None:
        row = await self._pool.fetchrow(q.TRADE_FOR_SIGNAL, signal_id)
        return Trade(dict(row.items())) if row is not None else None

    @translating
    async def control(self) -> ControlState:
        row = await self._pool.fetchrow(q.READ_CONTROL)
        if row is None:
            return ControlState(halted=False)
        return ControlState(row["halted"], row["reason"], row["changed_at"], row["changed_by"])

    @translating
    async def set_control(self, halted: bool, reason: str | None, changed_by: str) -> None:
        await self._pool.execute(q.SET_CONTROL, halted, reason, changed_by)

    @translating
    async def announce_change(self, execution_id: UUID) -> None:
        await self._pool.execute(q.ANNOUNCE_CHANGE, str(execution_id))

    @translating
    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")
