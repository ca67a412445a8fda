"""Which PostgreSQL server a connection landed on, for `status` and the logs: with a
DATABASE_URL naming several hosts, the answer changes with a promotion."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from trade_executor.store.pgerrors import translating
from trade_executor.store.sqlfiles import load

_SQL = load("server.sql")

SERVER_QUERY = _SQL.text("server_query")


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


DURABILITY_QUERY = _SQL.text("durability_query")

# synchronous_commit values that wait for a synchronous standby (remote_write: in its memory,
# enough for a promotion after the primary's loss; on, the default: flushed to its disk).
WAITS_FOR_STANDBY = ("on", "remote_write", "remote_apply")


@dataclass(frozen=True, slots=True)
class Durability:
    """What the server says about the survival of a commit through a promotion."""

    synchronous_commit: str
    standby_names: str
    standbys: int  # streaming replicas
    synchronous: int  # of which synchronous (sync or quorum)
    hidden: int  # whose state this role may not read

    def problem(self) -> str | None:
        """None when a committed intent survives the promotion of a standby; else one
        sentence saying why it may not (CONTRACT section 5, "Database failover")."""
        lost = "a commit (an intent, a claim, a new epoch) may be lost if a standby is promoted"
        if self.synchronous_commit not in WAITS_FOR_STANDBY:
            return f"synchronous_commit is {self.synchronous_commit}: {lost}"
        if not self.standby_names.strip():
            return f"synchronous_standby_names is empty (replication is asynchronous): {lost}"
        if self.synchronous == 0 and self.hidden > 0:
            return (
                "the replication state is not visible to this role (grant it pg_monitor), so "
                "no synchronous standby is known: " + lost
            )
        if self.synchronous == 0:
            return (
                "no synchronous standby is streaming now (commits wait for one, or it is "
                f"mistyped in synchronous_standby_names): {lost}"
            )
        return None


@translating
async def durability(conn: asyncpg.Connection | asyncpg.Pool) -> Durability:
    row = await conn.fetchrow(DURABILITY_QUERY)
    assert row is not None
    return Durability(
        synchronous_commit=str(row["synchronous_commit"]),
        standby_names=str(row["standby_names"]),
        standbys=int(row["standbys"]),
        synchronous=int(row["synchronous"]),
        hidden=int(row["hidden"]),
    )
