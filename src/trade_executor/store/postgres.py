"""The asyncpg implementation of `Store`. asyncpg runs on asyncio only: every asyncpg call of
the project lives under `store/`, so the actors stay backend-neutral.

`PgStore` is assembled from one mixin per concern over `PgBase` (pool, fence, which of the
original's tables exist): `pgoriginal` (the original service's tables), `pgoperator` (kill switch
and operator reads), `pgexits` (exits), `pgbreaks` (reconciliation). Claims, transitions and the
ledger's reads are here."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from trade_executor.domain.attention import RECOVERY_NOT_PLACED, Bounds
from trade_executor.domain.execution import Changes, Execution, TradeRecord
from trade_executor.domain.ledger import BUDGET_STATES
from trade_executor.domain.models import Approval, Signal
from trade_executor.domain.states import (
    FINAL_STATES,
    NOT_FINAL_STATES,
    ExecutionState,
    IllegalTransition,
    Transition,
)
from trade_executor.store import queries as q
from trade_executor.store.jsonb import to_json
from trade_executor.store.pgbreaks import PgBreaks
from trade_executor.store.pgerrors import translated, translating
from trade_executor.store.pgexits import PgExits
from trade_executor.store.pgoperator import PgOperator
from trade_executor.store.pgoriginal import PgOriginalTables, writes_original
from trade_executor.store.pgrows import (
    approval_from_row,
    changes_to_db,
    execution_from_row,
    signal_from_row,
)
from trade_executor.store.protocol import (
    APPROVAL_SOURCES,
    AlreadyClaimed,
    Claimed,
    ClaimOutcome,
    LedgerGauges,
    NotClaimable,
    PendingApproval,
    Trade,
    claimed_execution,
    status_approval,
)

__all__ = [
    "FINAL_STATE_VALUES",
    "PgStore",
    "approval_from_row",
    "create_pool",
    "execution_from_row",
    "signal_from_row",
    "to_json",
]

FINAL_STATE_VALUES = sorted(state.value for state in FINAL_STATES)


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, application_name: str | None = None
) -> asyncpg.Pool:
    """A connection pool; raises the store's own errors (`StoreUnavailable`, ...).
    `application_name` names its sessions in `pg_stat_activity` (`status` finds instances so)."""
    settings = {"application_name": application_name[:63]} if application_name else None
    with translated():
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=30,
            server_settings=settings,
        )
    assert pool is not None
    return pool


class PgStore(PgOriginalTables, PgOperator, PgExits, PgBreaks):
    """`Store` over an asyncpg pool. Each method is one transaction and raises only the store's
    own errors (`store.errors`) or `IllegalTransition`.

    Fencing: once `fence(epoch)` is called, every claim and every intent write
    (`Transition.BEGIN_SUBMIT`) succeeds only while `executor_control.leader_epoch` equals
    `epoch`, checked in the same statement; otherwise it changes nothing and raises `Fenced`.
    Unfenced (the default) stores, as used by operator commands and store tests, check nothing."""

    @translating
    async def claim(
        self, approval_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        row = await self._claim_row(q.CLAIM, approval_id, execution_id, client_order_id)
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
        return _claimed(row, approval, client_order_id)

    @translating
    async def claim_status(
        self, signal_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        row = await self._claim_row(q.CLAIM_STATUS, signal_id, execution_id, client_order_id)
        if row is None:
            return NotClaimable("approval not found")
        if row["s_id"] is None:
            return NotClaimable("signal not found")
        if row["e_id"] is None:
            existing = await self._pool.fetchrow(q.EXECUTION_BY_SIGNAL, signal_id)
            if existing is not None:
                return AlreadyClaimed(execution_from_row(existing))
            return NotClaimable("not_approved")  # the signal is no longer `approved`
        approval = status_approval(signal_id, row["a_approved_at"])
        return _claimed(row, approval, client_order_id)

    async def _claim_row(
        self, query: str, key: UUID, execution_id: UUID, client_order_id: str
    ) -> asyncpg.Record | None:
        """The claim statement's answer (None: no such approval); raises `Fenced` when the
        fence refused it."""
        row = await self._pool.fetchrow(query, key, execution_id, client_order_id, self._epoch)
        if row is not None and not row["fence_ok"]:
            raise self._fenced(await self._pool.fetchval(q.READ_LEADER_EPOCH))
        return row

    @translating
    async def pending_approvals(
        self, limit: int, sources: Collection[str] = APPROVAL_SOURCES
    ) -> list[PendingApproval]:
        found: list[PendingApproval] = []
        if "trade_approvals" in sources:
            rows = await self._pool.fetch(q.PENDING_APPROVALS, limit)
            found += [PendingApproval(row["approval_id"], row["signal_id"]) for row in rows]
        if "signal_status" in sources:
            rows = await self._pool.fetch(q.PENDING_STATUS_APPROVALS, limit)
            found += [PendingApproval(None, row["signal_id"], "signal_status") for row in rows]
        return found

    @translating
    async def status_approval(self, signal_id: UUID) -> Approval | None:
        row = await self._pool.fetchrow(q.READ_STATUS_APPROVAL, signal_id)
        return status_approval(signal_id, row["approved_at"]) if row is not None else None

    @translating
    async def apply(
        self,
        execution_id: UUID,
        transition: Transition,
        changes: Changes,
        detail: dict[str, Any] | None = None,
        trade: TradeRecord | None = None,
        *,
        trade_notes: str | None = None,
        announce: bool = False,
    ) -> Execution:
        target = transition.target
        values: dict[str, Any] = {
            "execution_id": execution_id,
            "target": target.value if target is not None else None,
            "sources": [state.value for state in transition.sources],
            "final_states": FINAL_STATE_VALUES,
            "event": transition.event,
            "detail": to_json(detail),
            **changes_to_db(changes),
        }
        # The intent write is the last step before the POST: fenced, a deposed leader's one
        # changes nothing, so it never sends.
        fenced = transition is Transition.BEGIN_SUBMIT and self._epoch is not None
        query = q.APPLY_FENCED if fenced else q.APPLY
        if fenced:
            values["fence_epoch"] = self._epoch
        args = query.args(values)
        tables = await self.original_tables()
        writes_original_tables = writes_original(tables, transition, changes)
        if trade is None and trade_notes is None and not writes_original_tables and not announce:
            # One statement, one round trip: the hot path of every poll.
            row = await self._pool.fetchrow(query.sql, *args)
        else:
            async with self._pool.acquire() as conn, conn.transaction():
                before = None
                if tables.fills and changes.filled_qty is not None:
                    before = await conn.fetchrow(q.FILL_BEFORE, execution_id)
                row = await conn.fetchrow(query.sql, *args)
                if row is not None:
                    if trade is not None:
                        await self._write_trade(conn, trade, tables)
                    if trade is not None or writes_original_tables:
                        await self._write_original(conn, tables, transition, row, before, detail)
                    if trade_notes is not None:  # an exit, on the original's trade list
                        await conn.execute(q.SET_TRADE_NOTES, str(execution_id), trade_notes)
                    if announce:  # delivered by PostgreSQL at the commit: never lost, never early
                        await conn.execute(q.ANNOUNCE_CHANGE, str(execution_id))
        if row is None:
            if fenced:
                leader_epoch = await self._pool.fetchval(q.READ_LEADER_EPOCH)
                if leader_epoch != self._epoch:
                    raise self._fenced(leader_epoch)
            current = await self._pool.fetchval(q.EXECUTION_STATE, execution_id)
            raise IllegalTransition(
                transition, ExecutionState(current) if current is not None else None
            )
        return execution_from_row(row)

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
    async def execution_ids_in(self, states: Sequence[ExecutionState]) -> list[UUID]:
        rows = await self._pool.fetch(q.EXECUTION_IDS_IN_STATES, [s.value for s in states])
        return [row["id"] for row in rows]

    @translating
    async def executions_on(self, trading_day: date) -> list[Execution]:
        rows = await self._pool.fetch(q.EXECUTIONS_ON_DAY, trading_day)
        return [execution_from_row(row) for row in rows]

    @translating
    async def ledger_gauges(self, today: date, now: datetime, bounds: Bounds) -> LedgerGauges:
        row = await self._pool.fetchrow(
            q.LEDGER_GAUGES,
            today,
            now,
            RECOVERY_NOT_PLACED,
            bounds.received,
            bounds.submitting,
            bounds.working,
            sorted(NOT_FINAL_STATES),
            sorted(BUDGET_STATES),
        )
        assert row is not None  # an aggregate always has its row
        return LedgerGauges(row["needing_operator"], Decimal(row["daily_risk_used"]))

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


def _claimed(row: asyncpg.Record, approval: Approval, client_order_id: str) -> Claimed:
    """A successful claim's answer: the inserted execution (`e_*`), its signal (`s_*`)."""
    execution = claimed_execution(
        row["e_id"],
        approval,
        client_order_id,
        symbol=row["e_symbol"],
        action=row["e_action"],
        created_at=row["e_created_at"],
        updated_at=row["e_updated_at"],
    )
    return Claimed(execution, signal_from_row(row, prefix="s_"), approval)
