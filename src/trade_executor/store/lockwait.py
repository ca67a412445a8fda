"""Schema changes on a database in use (the original's, live): never queue its readers for
long, and say who is in the way.

An `ALTER TABLE` waits for an ACCESS EXCLUSIVE lock behind any open transaction that touched the
table, and every later reader (the original's `SELECT count(*) FROM trades`) queues behind that
wait: without a limit, `migrate` waited forever and froze the original meanwhile. Here each
attempt runs with `lock_timeout` (at most LOCK_TIMEOUT, 1 s), so readers are held at most that
long per attempt; between attempts they run freely for `pause`. While an attempt waits, a second
connection reads `pg_blocking_pids` of the waiting session, so the failure names the session in
the way: its pid, application_name, state and since when its transaction is open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import anyio
import asyncpg

from trade_executor.observability.logging import get_logger
from trade_executor.store.errors import LockBlocked
from trade_executor.store.sqlfiles import load

_SQL = load("lockwait.sql")

log = get_logger("trade_executor.store.migrate")

T = TypeVar("T")

LOCK_TIMEOUT = 1.0  # seconds an attempt may wait for a lock (and so hold readers back)
LOCK_ATTEMPTS = 5
RETRY_PAUSE = 2.0  # seconds between attempts, when readers run freely
WATCH_INTERVAL = 0.05  # how often a waiting attempt's blockers are read

_BLOCKERS = _SQL.text("blockers")
SET_LOCK_TIMEOUT = _SQL.text("set_lock_timeout")


@dataclass(frozen=True, slots=True)
class Blocker:
    pid: int
    application_name: str
    user: str | None
    state: str | None
    since: datetime | None  # when its transaction began

    def describe(self) -> str:
        app = self.application_name or "(none)"
        state = self.state or "active"
        since = (
            f" since {self.since.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC"
            if self.since
            else ""
        )
        user = f", user {self.user}" if self.user else ""
        return f"pid {self.pid} (application_name {app!r}{user}, {state}{since})"

    def fields(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "application_name": self.application_name,
            "state": self.state,
            "since": self.since.isoformat() if self.since else None,
        }


async def set_lock_timeout(conn: asyncpg.Connection, seconds: float) -> None:
    await conn.execute(SET_LOCK_TIMEOUT, f"{max(1, round(seconds * 1000))}ms")


async def _watched(
    dsn: str, pid: int, seen: list[Blocker], attempt: Callable[[], Awaitable[T]]
) -> T:
    """`attempt()`, while a second connection keeps `seen` as the sessions blocking `pid` (the
    last non-empty reading). The attempt's own exception is raised as it is, never grouped."""
    watcher: asyncpg.Connection = await asyncpg.connect(dsn)
    done: list[T] = []

    async def watch() -> None:
        while True:
            rows = await watcher.fetch(_BLOCKERS, pid)
            if rows:
                seen[:] = [
                    Blocker(
                        r["pid"], r["application_name"] or "", r["usename"], r["state"],
                        r["xact_start"],
                    )
                    for r in rows
                ]  # fmt: skip
            await anyio.sleep(WATCH_INTERVAL)

    async def run(cancel: anyio.CancelScope) -> None:
        try:
            done.append(await attempt())
        finally:
            cancel.cancel()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await run(tg.cancel_scope)
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await watcher.close()
    return done[0]


async def with_lock_retries(
    conn: asyncpg.Connection,
    dsn: str,
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    attempts: int = LOCK_ATTEMPTS,
    pause: float = RETRY_PAUSE,
    lock_timeout: float = LOCK_TIMEOUT,
) -> T:
    """`attempt()` (one transaction on `conn`, whose session has `lock_timeout` set), tried
    again while it fails for want of a lock; LockBlocked after `attempts` tries."""
    pid: int = conn.get_server_pid()
    seen: list[Blocker] = []
    for number in range(1, attempts + 1):
        try:
            if number == 1:  # most attempts get their lock at once: no second connection
                return await attempt()
            return await _watched(dsn, pid, seen, attempt)
        except asyncpg.exceptions.LockNotAvailableError:
            log.warning(
                "migration.lock_wait",
                step=what,
                attempt=number,
                attempts=attempts,
                lock_timeout=lock_timeout,
                blocking=[b.fields() for b in seen],
            )
            if number < attempts:
                await anyio.sleep(pause)
    who = (
        "session " + " and session ".join(b.describe() for b in seen) + " holds its table"
        if seen
        else "a session that ended each time before it could be named held its table"
    )
    pids = ", ".join(f"pg_terminate_backend({b.pid})" for b in seen) or "pg_terminate_backend(pid)"
    raise LockBlocked(
        f"{what} could not get its lock in {attempts} attempts of {lock_timeout:g} s (readers of "
        f"the table were held back at most that long each): {who}; end that transaction "
        f"(COMMIT or ROLLBACK there, or SELECT {pids}) and run trade-executor migrate again"
    )
