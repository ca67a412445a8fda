"""What the operator commands read and write besides the `Store` protocol: the whole
`executor_control` row (the kill switch and what the running service publishes there: its
identity, heartbeat and effective limits), the instances connected to the database, and the kill
switch changed under a row lock so that a halt is never overwritten unseen.

Every function raises only the store's own errors (`store.errors`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import anyio
import asyncpg

from trade_executor.store.notifications import CONTROL_ACK_CHANNEL, PgNotificationSource
from trade_executor.store.pgerrors import translated, translating
from trade_executor.store.sqlfiles import load

_SQL = load("control.sql")

# Every instance names its pool connections "trade-executor <host>:<pid>" (service.py), the id
# the leader columns use; the listener and the leader lock have names of their own.
INSTANCE_APPLICATION_PREFIX = "trade-executor "

READ_CONTROL_ROW = _SQL.text("read_control_row")
LOCK_CONTROL_ROW = _SQL.text("lock_control_row")
WRITE_SWITCH = _SQL.text("write_switch")
INSERT_CONTROL_ROW = _SQL.text("insert_control_row")
CONNECTED_INSTANCES = _SQL.text("connected_instances")
DATABASE_NOW = _SQL.text("database_now")


@dataclass(frozen=True, slots=True)
class ControlRow:
    """`executor_control`: the kill switch, and the leader's columns (0003) when present."""

    halted: bool
    reason: str | None
    changed_at: datetime | None
    changed_by: str | None
    leader_id: str | None = None
    leader_epoch: int | None = None
    leader_since: datetime | None = None
    leader_heartbeat_at: datetime | None = None
    limits: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Instance:
    """A trade-executor process connected to this database (from `pg_stat_activity`)."""

    instance: str  # host:pid
    connections: int
    since: datetime | None
    client_addr: str | None


@dataclass(frozen=True, slots=True)
class SwitchChange:
    """The kill switch before a `halt`/`resume`, and the change made (None: nothing written)."""

    before: ControlRow
    changed_at: datetime | None


def _limits(raw: object) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, str):
        raw = json.loads(raw, parse_float=Decimal)
    return dict(raw) if isinstance(raw, dict) else {}


def _control(row: asyncpg.Record | None) -> ControlRow:
    if row is None:
        return ControlRow(halted=False, reason=None, changed_at=None, changed_by=None)
    keys = set(row.keys())

    def get(name: str) -> Any:
        return row[name] if name in keys else None

    return ControlRow(
        halted=bool(row["halted"]),
        reason=row["reason"],
        changed_at=row["changed_at"],
        changed_by=row["changed_by"],
        leader_id=get("leader_id"),
        leader_epoch=get("leader_epoch"),
        leader_since=get("leader_since"),
        leader_heartbeat_at=get("leader_heartbeat_at"),
        limits=_limits(get("limits")),
    )


@translating
async def read_control(pool: asyncpg.Pool) -> ControlRow:
    return _control(await pool.fetchrow(READ_CONTROL_ROW))


@translating
async def database_now(pool: asyncpg.Pool) -> datetime:
    """The database's clock: heartbeat ages are measured against it, not this host's."""
    now: datetime = await pool.fetchval(DATABASE_NOW)
    return now


@translating
async def connected_instances(pool: asyncpg.Pool) -> list[Instance] | None:
    """Instances with a connection to this database, or None when `pg_stat_activity` cannot
    tell (a role that may not see other sessions' application names)."""
    try:
        rows = await pool.fetch(CONNECTED_INSTANCES, INSTANCE_APPLICATION_PREFIX)
    except asyncpg.InsufficientPrivilegeError:
        return None
    return [
        Instance(row["instance"], row["connections"], row["since"], row["client_addr"])
        for row in rows
    ]


@translating
async def change_switch(
    pool: asyncpg.Pool,
    halted: bool,
    reason: str | None,
    changed_by: str,
    *,
    replace_reason: bool = False,
) -> SwitchChange:
    """Set the kill switch under the row's lock, so two operators cannot overwrite each other
    unseen. A halt while already halted with another reason changes nothing unless
    `replace_reason`; the same state again changes nothing (`changed_at` None). The trigger
    on the row notifies the running service."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(INSERT_CONTROL_ROW)
        before = _control(await conn.fetchrow(LOCK_CONTROL_ROW))
        if before.halted == halted and (not halted or before.reason == reason):
            return SwitchChange(before, None)
        if halted and before.halted and not replace_reason:
            return SwitchChange(before, None)
        changed_at: datetime = await conn.fetchval(WRITE_SWITCH, halted, reason, changed_by)
        return SwitchChange(before, changed_at)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    changed_at: datetime | None
    halted: bool
    instance: str


def _parse_ack(payload: str) -> Acknowledgement | None:
    try:
        data = json.loads(payload)
        changed_at = data.get("changed_at")
        return Acknowledgement(
            datetime.fromisoformat(changed_at) if changed_at else None,
            bool(data["halted"]),
            str(data["instance"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class AckListener:
    """Listens for the running service's acknowledgements of kill-switch changes. Open it
    before writing the change, so that an acknowledgement cannot arrive unheard."""

    def __init__(self, source: PgNotificationSource) -> None:
        self._source = source

    async def wait_for(self, changed_at: datetime, timeout: float) -> Acknowledgement | None:
        """The first acknowledgement of the change written at `changed_at` (or of a later
        one), or None after `timeout` seconds."""
        with anyio.move_on_after(timeout):
            async for note in self._source.notifications:
                ack = _parse_ack(note.payload)
                if ack is not None and ack.changed_at is not None and ack.changed_at >= changed_at:
                    return ack
        return None


@asynccontextmanager
async def listening_for_acks(dsn: str) -> AsyncIterator[AckListener]:
    with translated():
        source = await PgNotificationSource.connect(dsn, [CONTROL_ACK_CHANNEL], timeout=10)
    try:
        yield AckListener(source)
    finally:
        with anyio.CancelScope(shield=True):
            await source.aclose()
