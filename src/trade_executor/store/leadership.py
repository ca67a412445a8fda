"""Leadership: the active instance holds a session-level advisory lock on its own connection.

If that connection dies the lock is gone (another instance may take over at once), so the holder
checks it periodically and the supervisor stops acting the moment it is lost.
"""

from __future__ import annotations

import anyio
import asyncpg

from trade_executor.store.pgerrors import translating

LEADER_LOCK_KEY = 0x7472_6164_6578_6563  # "tradexec"


class LeadershipLost(Exception):
    """The connection holding the leader lock is gone: this process must stop acting."""


class PgLeaderLock:
    def __init__(self, dsn: str, key: int = LEADER_LOCK_KEY) -> None:
        self._dsn = dsn
        self._key = key
        self._conn: asyncpg.Connection | None = None

    @translating
    async def try_acquire(self) -> bool:
        """Take the lock if it is free; keep the connection that holds it. Raises
        `StoreUnavailable` while the database cannot be reached."""
        if self._conn is None or self._conn.is_closed():
            # Keepalives let the server notice a dead holder (and free the lock) in ~30 s even
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
        acquired = bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key))
        if not acquired:
            await self._close()
        return acquired

    async def check(self, timeout: float) -> None:
        """Raise LeadershipLost unless the lock's connection still answers."""
        conn = self._conn
        if conn is None or conn.is_closed():
            raise LeadershipLost("the leader lock's connection is closed")
        try:
            with anyio.fail_after(timeout):
                await conn.fetchval("SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise LeadershipLost(f"the leader lock's connection failed: {error}") from error

    async def release(self) -> None:
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                with anyio.move_on_after(2):
                    await conn.close()
            finally:
                if not conn.is_closed():
                    conn.terminate()
