"""The asyncpg implementation of `Store`. asyncpg runs on asyncio only: every asyncpg call of
the project lives under `store/`, so the actors stay backend-neutral."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from trade_executor.domain.breaks import ReconcileBreak, RecordedBreak
from trade_executor.domain.execution import (
    CHANGE_FIELDS,
    EXECUTION_FIELDS,
    Changes,
    Execution,
    TradeRecord,
)
from trade_executor.domain.guardrails import GuardrailFacts, InstanceRow, UsageItem
from trade_executor.domain.ledger import OriginalTrade
from trade_executor.domain.models import Approval, Signal
from trade_executor.domain.states import (
    FINAL_STATES,
    ExecutionState,
    IllegalTransition,
    Transition,
)
from trade_executor.store import queries as q
from trade_executor.store.errors import Fenced
from trade_executor.store.leadership import LeaderRecord, read_leader
from trade_executor.store.original import audit_for_control, audit_for_transition, fill_delta
from trade_executor.store.pgerrors import translated, translating
from trade_executor.store.protocol import (
    APPROVAL_SOURCES,
    AlreadyClaimed,
    AuditEntry,
    Claimed,
    ClaimOutcome,
    ControlState,
    NotClaimable,
    OriginalTables,
    PendingApproval,
    StoredEvent,
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


def _status_approval(signal_id: UUID, approved_at: datetime | None) -> Approval:
    """A status approval: no row of its own, approved when the status changed, by whom unknown."""
    return Approval(
        id=None,
        signal_id=signal_id,
        approved=True,
        approved_at=approved_at,
        approved_by=None,
        created_at=approved_at,
        source="signal_status",
    )


def _config(text: str | None) -> dict[str, object]:
    """`strategy_instances.config` (jsonb as text); numbers exact. Not an object: empty (the
    guards then apply the original's defaults)."""
    try:
        value = json.loads(text or "{}", parse_float=Decimal)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _writes_original(tables: OriginalTables, transition: Transition, changes: Changes) -> bool:
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
            transition is Transition.BEGIN_SUBMIT
            or order_news
            or (target is not None and (target.is_final or target is ExecutionState.UNKNOWN))
        ):
            return True
    if tables.fills and changes.filled_qty is not None:
        return True
    return tables.audit_events and (
        transition is Transition.REJECT or transition.name.startswith("RESOLVE")
    )


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


class PgStore:
    """`Store` over an asyncpg pool. Each method is one transaction and raises only the store's
    own errors (`store.errors`) or `IllegalTransition`.

    Fencing: once `fence(epoch)` is called, every claim and every intent write
    (`Transition.BEGIN_SUBMIT`) succeeds only while `executor_control.leader_epoch` equals
    `epoch`, checked in the same statement; otherwise it changes nothing and raises `Fenced`.
    Unfenced (the default) stores, as used by operator commands and store tests, check nothing."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._original: OriginalTables | None = None  # read once (see `original_tables`)
        self._epoch: int | None = None
        self._on_fenced: Callable[[Fenced], None] | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @property
    def epoch(self) -> int | None:
        """The leadership epoch claims and intents are fenced with (None: not fenced)."""
        return self._epoch

    def fence(self, epoch: int | None, on_fenced: Callable[[Fenced], None] | None = None) -> None:
        """Fence claims and intent writes with `epoch` (the service calls this after each
        takeover). `on_fenced` is called (synchronously) each time a write is refused, so the
        service can stop acting at once rather than at its next lock check."""
        self._epoch = epoch
        self._on_fenced = on_fenced

    def _fenced(self, current: int | None) -> Fenced:
        error = Fenced(self._epoch, current)
        if self._on_fenced is not None:
            self._on_fenced(error)
        return error

    @translating
    async def claim(
        self, approval_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        row = await self._pool.fetchrow(
            q.CLAIM, approval_id, execution_id, client_order_id, self._epoch
        )
        if row is None:
            return NotClaimable("approval not found")
        if not row["fence_ok"]:
            raise self._fenced(await self._pool.fetchval(q.READ_LEADER_EPOCH))
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
    async def claim_status(
        self, signal_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        row = await self._pool.fetchrow(
            q.CLAIM_STATUS, signal_id, execution_id, client_order_id, self._epoch
        )
        if row is None:
            return NotClaimable("approval not found")
        if not row["fence_ok"]:
            raise self._fenced(await self._pool.fetchval(q.READ_LEADER_EPOCH))
        if row["s_id"] is None:
            return NotClaimable("signal not found")
        if row["e_id"] is None:
            existing = await self._pool.fetchrow(q.EXECUTION_BY_SIGNAL, signal_id)
            if existing is not None:
                return AlreadyClaimed(execution_from_row(existing))
            return NotClaimable("not_approved")  # the signal is no longer `approved`
        approval = _status_approval(signal_id, row["a_approved_at"])
        execution = Execution(
            id=row["e_id"],
            signal_id=signal_id,
            approval_id=None,
            state=ExecutionState.RECEIVED,
            client_order_id=client_order_id,
            symbol=row["e_symbol"],
            action=row["e_action"],
            approval_source="signal_status",
            created_at=row["e_created_at"],
            updated_at=row["e_updated_at"],
        )
        return Claimed(execution, signal_from_row(row, prefix="s_"), approval)

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
        return _status_approval(signal_id, row["approved_at"]) if row is not None else None

    @translating
    async def original_tables(self) -> OriginalTables:
        if self._original is None:
            row = await self._pool.fetchrow(q.ORIGINAL_TABLES)
            assert row is not None
            self._original = OriginalTables(**dict(row.items()))
        return self._original

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
                        config=_config(row["config"]),
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

    @staticmethod
    async def _insert_audit(conn: Any, entry: AuditEntry) -> None:
        await conn.execute(
            q.INSERT_AUDIT,
            str(uuid4()),
            entry.correlation_id,
            entry.category,
            entry.action,
            entry.outcome,
            entry.message,
            to_json(entry.metadata),
        )

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
    ) -> Execution:
        target = transition.target
        values: dict[str, Any] = {
            "execution_id": execution_id,
            "target": target.value if target is not None else None,
            "sources": [state.value for state in transition.sources],
            "final_states": FINAL_STATE_VALUES,
            "event": transition.event,
            "detail": to_json(detail),
            **_to_db(changes),
        }
        # The intent write is the last step before the POST: fenced, a deposed leader's one
        # changes nothing, so it never sends.
        fenced = transition is Transition.BEGIN_SUBMIT and self._epoch is not None
        query = q.APPLY_FENCED if fenced else q.APPLY
        if fenced:
            values["fence_epoch"] = self._epoch
        args = query.args(values)
        tables = await self.original_tables()
        writes_original = _writes_original(tables, transition, changes)
        if trade is None and trade_notes is None and not writes_original:
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
                    if trade is not None or writes_original:
                        await self._write_original(conn, tables, transition, row, before, detail)
                    if trade_notes is not None:  # an exit, on the original's trade list
                        await conn.execute(q.SET_TRADE_NOTES, str(execution_id), trade_notes)
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
    async def executions_on(self, trading_day: date) -> list[Execution]:
        rows = await self._pool.fetch(q.EXECUTIONS_ON_DAY, trading_day)
        return [execution_from_row(row) for row in rows]

    @translating
    async def positions_to_follow(self, closed_since: datetime) -> list[Execution]:
        rows = await self._pool.fetch(q.POSITIONS_TO_FOLLOW, closed_since)
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

    async def leader(self) -> LeaderRecord | None:
        """Who leads, since when, its last heartbeat and the limits it runs with."""
        return await read_leader(self._pool)

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
    async def announce_close(self, payload: str) -> None:
        """NOTIFY the running service of a `close` request (see `store.closing`)."""
        await self._pool.execute(q.ANNOUNCE_CLOSE, payload)

    @translating
    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    @translating
    async def find_executions(self, low: UUID, high: UUID, limit: int) -> list[Execution]:
        rows = await self._pool.fetch(q.FIND_EXECUTIONS, low, high, limit)
        return [execution_from_row(row) for row in rows]

    @translating
    async def execution_events(self, execution_id: UUID) -> list[StoredEvent]:
        rows = await self._pool.fetch(q.EXECUTION_EVENTS, execution_id)
        return [
            StoredEvent(
                row["id"], row["execution_id"], row["at"], row["kind"], _detail(row["detail"])
            )
            for row in rows
        ]

    # ---- reconciliation with the broker ------------------------------------------------------

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
                detail=_json_object(row["detail"]),
                first_seen=row["first_seen"],
                last_seen=row["last_seen"],
                cleared_at=row["cleared_at"],
            )
            for row in rows
        ]

    @translating
    async def acknowledge_control(
        self, changed_at: datetime | None, halted: bool, instance: str
    ) -> None:
        await self._pool.execute(q.ACKNOWLEDGE_CONTROL, changed_at, halted, instance)


def _detail(raw: str | None) -> dict[str, Any]:
    """A stored `jsonb` detail, fractions as Decimal; anything but an object is kept whole."""
    if raw is None:
        return {}
    value = json.loads(raw, parse_float=Decimal)
    return value if isinstance(value, dict) else {"value": value}


def _json_object(value: object) -> dict[str, Any]:
    """A jsonb column as asyncpg returns it (text, unless a codec is set) as a dict."""
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return dict(value) if isinstance(value, dict) else {}
