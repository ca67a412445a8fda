"""Leadership: a session-level advisory lock on a connection of its own, and a fencing epoch.

Guarantees:
- taking the lock and incrementing `executor_control.leader_epoch` happen in one transaction on
  the lock's connection, together with the leader's identity, the time, a first heartbeat and
  the limits it runs with; the new epoch is what `PgStore.fence` checks every claim and intent
  write against, so a deposed leader's writes change nothing (CONTRACT section 5, "Fencing");
- the loss of the lock is noticed within moments when the server closes the connection
  (`pg_terminate_backend`, a server restart): asyncpg calls the termination listener, which
  sets `lost`; a silent network is caught by the heartbeat, an UPDATE of the leader's own row
  (same epoch, same identity) on the lock connection under a timeout;
- a heartbeat that finds another epoch (another instance took over) is a loss as well.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import asyncpg

from trade_executor.store.pgerrors import translate, translating
from trade_executor.store.server import DatabaseServer, database_server
from trade_executor.store.sqlfiles import load

_SQL = load("leadership.sql")

LEADER_LOCK_KEY = 0x7472_6164_6578_6563  # "tradexec"

TRY_LEADER_LOCK = _SQL.text("try_leader_lock")
TAKE_OVER = _SQL.text("take_over")

HEARTBEAT = _SQL.text("heartbeat")

READ_LEADER = _SQL.text("read_leader")


def this_instance() -> str:
    """The identity a leader records: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeadershipLost(Exception):
    """The connection holding the leader lock is gone, or another instance took over: this
    process must stop acting."""


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """What `executor_control` says about the leader (for `status` and `/health`).
    `leader_id` is None when no instance ever led this database."""

    leader_id: str | None
    epoch: int
    since: datetime | None
    heartbeat_at: datetime | None
    limits: dict[str, Any] | None


def leader_from_row(row: asyncpg.Record | Mapping[str, Any]) -> LeaderRecord:
    limits = row["limits"]
    if isinstance(limits, str):  # asyncpg hands jsonb over as text
        limits = json.loads(limits)
    return LeaderRecord(
        leader_id=row["leader_id"],
        epoch=int(row["leader_epoch"]),
        since=row["leader_since"],
        heartbeat_at=row["leader_heartbeat_at"],
        limits=limits,
    )


class PgLeaderLock:
    """The leader lock of one instance. `try_acquire` takes it (and a new epoch); `hold` returns
    only by raising `LeadershipLost`; `release` gives it up."""

    def __init__(
        self,
        dsn: str,
        key: int = LEADER_LOCK_KEY,
        *,
        leader_id: str | None = None,
        limits: Mapping[str, Any] | None = None,
    ) -> None:
        self._dsn = dsn
        self._key = key
        self._conn: asyncpg.Connection | None = None
        self.leader_id = leader_id or this_instance()
        self._limits = json.dumps(dict(limits or {}))
        self.epoch: int | None = None
        self.since: datetime | None = None
        self._lost: anyio.Event | None = None
        self._lost_reason = ""
        # The server the lock is held on (after a promotion: the new primary).
        self.server: DatabaseServer | None = None

    @translating
    async def try_acquire(self) -> bool:
        """Take the lock if it is free, and with it a new epoch (`self.epoch`); keep the
        connection that holds it. Raises `StoreUnavailable` while the database cannot be
        reached."""
        if self._conn is None or self._conn.is_closed():
            # Keepalives let the server notice a dead holder (and free the lock) in ~25 s even
            # when the network dies without a FIN.
            self._conn = await asyncpg.connect(
                self._dsn,
                timeout=10,
                server_settings={
                    "application_name": "trade-executor leader",
                    "tcp_keepalives_idle": "10",
                    "tcp_keepalives_interval": "5",
                    "tcp_keepalives_count": "3",
                },
            )
        conn = self._conn
        try:
            with anyio.fail_after(30):
                # One transaction: the session lock survives the COMMIT; if the epoch cannot be
                # written, the connection is closed below, which frees the lock again.
                async with conn.transaction():
                    if not await conn.fetchval(TRY_LEADER_LOCK, self._key):
                        acquired = None
                    else:
                        acquired = await conn.fetchrow(TAKE_OVER, self.leader_id, self._limits)
                if acquired is not None:
                    self.server = await database_server(conn)
        except BaseException:
            await self._close()
            raise
        if acquired is None:
            await self._close()
            return False
        self.epoch = int(acquired["leader_epoch"])
        self.since = acquired["leader_since"]
        self._lost = anyio.Event()
        self._lost_reason = ""
        conn.add_termination_listener(self._on_terminated)
        return True

    def lose(self, reason: str) -> None:
        """Mark the leadership lost (the connection closed, a fenced write): `hold` raises at
        once. Synchronous, so it can be called from asyncpg's callbacks."""
        if self._lost is not None and not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    def _on_terminated(self, _conn: object) -> None:
        self.lose("the leader lock's connection was closed by the server")

    async def hold(self, interval: float, timeout: float) -> None:
        """Heartbeat every `interval` s until the leadership is lost, then raise
        `LeadershipLost`. Returns within moments of the connection's termination; within
        `interval + timeout` of a silent network."""
        lost = self._lost
        if lost is None:
            raise LeadershipLost("the leader lock is not held")
        while True:
            with anyio.move_on_after(interval):
                await lost.wait()
            if lost.is_set():
                raise LeadershipLost(self._lost_reason)
            await self.check(timeout)

    async def check(self, timeout: float) -> None:
        """One heartbeat. Raise LeadershipLost unless the lock's connection answers within
        `timeout` and the leader's row still carries this instance's epoch."""
        conn = self._conn
        if conn is None or conn.is_closed():
            raise LeadershipLost("the leader lock's connection is closed")
        try:
            with anyio.fail_after(timeout):
                epoch = await conn.fetchval(HEARTBEAT, self.epoch, self.leader_id)
        # InternalClientError: the connection was left mid-operation (a heartbeat cut by its
        # timeout as the server ended it): it cannot be trusted, so leadership is lost.
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ) as error:
            raise LeadershipLost(
                f"the leader lock's connection failed: {translate(error)}"
            ) from error
        if epoch is None:
            raise LeadershipLost(f"another instance took over (this one led epoch {self.epoch})")

    async def release(self) -> None:
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.remove_termination_listener(self._on_terminated)
        if not conn.is_closed():
            try:
                with anyio.move_on_after(2):
                    await conn.close()
            finally:
                if not conn.is_closed():
                    conn.terminate()


@translating
async def read_leader(conn: asyncpg.Connection | asyncpg.Pool) -> LeaderRecord | None:
    """The leader as `executor_control` records it (None: the row is missing)."""
    row = await conn.fetchrow(READ_LEADER)
    return leader_from_row(row) if row is not None else None
