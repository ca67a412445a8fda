"""One sentence for the failures an operator meets first (CONTRACT section 2): a database that
does not exist, a refused login, a schema not yet migrated, a database that cannot be reached, a
port in use. The command line prints it on stderr (exit 1) and `run` logs it, never a traceback.

`explain` looks through task groups' exception groups and through the store's translation to the
driver's SQLSTATE (asyncpg's exceptions carry `sqlstate`), so no asyncpg import is needed here.
"""

from __future__ import annotations

import errno

from trade_executor.config.dburl import DatabaseUrlError, parse_database_url
from trade_executor.store.errors import LockBlocked, SchemaMissing, StoreError, StoreUnavailable

# SQLSTATEs (PostgreSQL, Appendix A).
INVALID_CATALOG_NAME = "3D000"
INVALID_AUTHORIZATION = "28000"
INVALID_PASSWORD = "28P01"  # noqa: S105 - a SQLSTATE, not a secret
UNDEFINED_TABLE = "42P01"
UNDEFINED_COLUMN = "42703"
UNDEFINED_FUNCTION = "42883"
INSUFFICIENT_PRIVILEGE = "42501"


def leaf(error: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups (what a task group raises)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _sqlstate(error: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str):
            return state
        current = current.__cause__ or current.__context__
    return None


def where(dsn: str | None) -> str:
    """`host:port/db` of a DSN (`a:5432,b:5433/db` with several hosts), without user or
    password (for messages)."""
    if not dsn:
        return "the database"
    try:
        url = parse_database_url(dsn)
    except DatabaseUrlError:
        return "the database"
    return f"{url.hosts_text()}/{url.database or '(default database)'}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__


def explain(
    error: BaseException, *, dsn: str | None = None, http: tuple[str, int] | None = None
) -> str | None:
    """The sentence for a failure we know, or None (then it is a bug: keep the traceback)."""
    error = leaf(error)
    state = _sqlstate(error)
    target = where(dsn)
    user = ""
    if dsn:
        try:
            user = parse_database_url(dsn).user or ""
        except DatabaseUrlError:
            user = ""
    if state == INVALID_CATALOG_NAME:
        name = target.rsplit("/", 1)[-1]
        return (
            f'database "{name}" does not exist on {target.rsplit("/", 1)[0]}: '
            "create it (createdb), then run trade-executor migrate"
        )
    if state in (INVALID_AUTHORIZATION, INVALID_PASSWORD):
        who = f' as "{user}"' if user else ""
        return (
            f"the database at {target} refused the login{who} ({_first_line(error)}): "
            "check DATABASE_URL and DATABASE_PASSWORD"
        )
    if isinstance(error, SchemaMissing) or state in (UNDEFINED_TABLE, UNDEFINED_COLUMN):
        # What is missing (a table, a column of a newer version) changes nothing for the
        # operator: the answer is the same command.
        return (
            f"the database {target} has no trade-executor schema, or an older one: "
            "run trade-executor migrate"
        )
    if state == INSUFFICIENT_PRIVILEGE:
        return (
            f"the database {target} refused the command ({_first_line(error)}): "
            "grant this role the rights in docs/RUNBOOK.md"
        )
    if isinstance(error, StoreUnavailable):
        return f"cannot reach the database at {target} ({_first_line(error)})"
    if isinstance(error, LockBlocked):  # its own sentence names the session in the way
        return f"the database {target}: {error}"
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE and http is not None:
        host, port = http
        return (
            f"HTTP_PORT {port} on {host} is already in use (another instance on this host?): "
            "stop it or set another HTTP_PORT"
        )
    if isinstance(error, StoreError):
        return f"the database {target} refused the command ({_first_line(error)})"
    return None
