"""Which PostgreSQL server a connection landed on, for `status` and the logs: with a
DATABASE_URL naming several hosts, the answer changes with a promotion."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from trade_executor.store.pgerrors import translating

# inet_server_addr() is NULL over a Unix socket; pg_is_in_recovery() is true on a standby.
SERVER_QUERY = """
SELECT host(inet_server_addr()) AS address, inet_server_port() AS port,
       pg_is_in_recovery() AS in_recovery, current_setting('server_version') AS version
"""


@dataclass(frozen=True, slots=True)
class DatabaseServer:
    """The server as it sees itself: its address and port, primary or standby, its version."""

    address: str | None
    port: int | None
    in_recovery: bool
    version: str

    @property
    def endpoint(self) -> str:
        """`host:port`, or `local socket` (a Unix-socket connection has no address)."""
        if self.address is None:
            return "local socket"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def role(self) -> str:
        return "standby" if self.in_recovery else "primary"

    def __str__(self) -> str:
        return f"{self.endpoint} ({self.role}, PostgreSQL {self.version})"


@translating
async def database_server(conn: asyncpg.Connection | asyncpg.Pool) -> DatabaseServer:
    row = await conn.fetchrow(SERVER_QUERY)
    assert row is not None
    return DatabaseServer(
        address=row["address"],
        port=row["port"],
        in_recovery=bool(row["in_recovery"]),
        version=str(row["version"]).split(" ", 1)[0],
    )
