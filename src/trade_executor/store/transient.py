"""Which database errors are worth retrying: the connection or the server, not the query."""

from __future__ import annotations

import asyncpg

_TRANSIENT = (
    OSError,  # refused, reset, unreachable (ConnectionError is one)
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # connection closed or released under us
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, starting up, cancelled by admin
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
)


def is_transient(error: BaseException) -> bool:
    """True when the same statement may succeed if tried again later; False for a bug (a bad
    query, a constraint) that retrying would only repeat."""
    return isinstance(error, _TRANSIENT)
