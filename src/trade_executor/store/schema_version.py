"""The schema version of a database, for `check-config --connect` (reads only)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from trade_executor.store.migrate import MIGRATIONS_TABLE, load_migrations, pending
from trade_executor.store.pgerrors import translated
from trade_executor.store.sqlfiles import load

_SQL = load("schema.sql")

_TABLE_EXISTS = _SQL.text("table_exists")
_LATEST = _SQL.text("latest")


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """`applied`: the highest version recorded in trade_executor_migrations (None: the project
    never migrated this database); `pending`: versions this code has that are not applied."""

    applied: int | None
    latest_known: int
    pending: tuple[int, ...]


async def schema_version(dsn: str) -> SchemaVersion:
    """Raises the store's errors (`StoreUnavailable` for a server that cannot be reached or a
    refused login, `StoreError` otherwise)."""
    known = load_migrations()
    latest_known = known[-1].version if known else 0
    with translated():
        conn: asyncpg.Connection = await asyncpg.connect(dsn, timeout=10)
        try:
            exists = await conn.fetchval(_TABLE_EXISTS, MIGRATIONS_TABLE)
            applied = await conn.fetchval(_LATEST) if exists else None
        finally:
            await conn.close()
        waiting = await pending(dsn)
    return SchemaVersion(applied, latest_known, tuple(waiting))
