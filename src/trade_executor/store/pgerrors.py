"""asyncpg's exceptions, translated into the store's own (`store.errors`) at the edge."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import asyncpg

from trade_executor.store.errors import SchemaMissing, StoreConflict, StoreError, StoreUnavailable

P = ParamSpec("P")
R = TypeVar("R")

# The connection or the server, not the statement: worth trying again later.
_UNAVAILABLE = (
    OSError,  # refused, reset, unreachable (ConnectionError is one)
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # connection closed or released under us
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, starting up, cancelled by admin
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
    # A connection left on a server that became a standby (a switch-over): a new connection
    # finds the primary (DATABASE_URL with several hosts, target_session_attrs=read-write).
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)
_CONFLICT = (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError)
_SCHEMA = (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError)
_DRIVER = (*_UNAVAILABLE, asyncpg.PostgresError)


def translate(error: BaseException) -> StoreError:
    """The store error that stands for a driver or socket error."""
    if isinstance(error, _UNAVAILABLE):
        return StoreUnavailable(str(error) or type(error).__name__)
    if isinstance(error, _CONFLICT):
        return StoreConflict(str(error))
    if isinstance(error, _SCHEMA):
        return SchemaMissing(f"{error} (run `trade-executor migrate`)")
    return StoreError(str(error) or type(error).__name__)


@contextmanager
def translated() -> Iterator[None]:
    """Raise the store's own error for any driver error inside the block."""
    try:
        yield
    except _DRIVER as error:
        raise translate(error) from error


def translating(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """`translated()` around a whole coroutine method."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translated():
            return await method(*args, **kwargs)

    return wrapper
