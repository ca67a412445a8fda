"""Schema migrations: numbered plain `.sql` files applied in order, recorded in
`trade_executor_migrations`.

Guarantees:
- `migrate()` is safe to run from several processes at once: each takes the session-level advisory
  lock `MIGRATION_LOCK_KEY` before reading or creating its table, so exactly one applies a given
  migration and the others then find it recorded.
- Each migration runs in its own transaction together with its record: a failing migration leaves
  neither a half-applied schema nor a record.
- On a database in use (the original's, live) no schema change waits more than a second for a
  lock, so the original's readers are never held back longer per attempt; after a few attempts
  `LockBlocked` names the session in the way (`store.lockwait`).
- A recorded migration whose file has changed since is refused (`MigrationError`), before anything
  is applied: edit the schema with a new numbered file, never by rewriting an applied one. (One
  exception, `REVISED`: an earlier text listed there is accepted.)
- `schema_migrations` belongs to golang-migrate on databases built by jax-trading-assistant's
  scripts (`version bigint, dirty bool`): it is never created, written, renamed or dropped here.
- Takeover: trade-executor before version 2 kept its records in a `schema_migrations` of its own
  shape (`version, name, checksum, applied_at`, no `dirty`). Such a table is copied into
  `trade_executor_migrations` and renamed to `trade_executor_migrations_legacy` (its constraints
  too), in one transaction, so the name is free again for golang-migrate: a user of the original
  who later runs its `migrate up` gets its own table instead of an error on a missing `dirty`.
  Renamed rather than dropped, so nothing recorded is ever lost.

Files are named `NNNN_name.sql` and live in the package's `migrations/` directory.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from importlib import resources

import asyncpg

from trade_executor.observability.logging import get_logger
from trade_executor.store.lockwait import (
    LOCK_ATTEMPTS,
    LOCK_TIMEOUT,
    RETRY_PAUSE,
    set_lock_timeout,
    with_lock_retries,
)
from trade_executor.store.server import database_server

# Fixed key of the migration advisory lock ("te-migr" in ASCII); distinct from any other lock key
# of the service, so a standby instance waiting for the active lock never blocks a migration.
MIGRATION_LOCK_KEY: int = 0x74_65_2D_6D_69_67_72

MIGRATIONS_TABLE = "trade_executor_migrations"
# The name trade-executor used before version 2, and golang-migrate's on the original's databases.
SHARED_NAME = "schema_migrations"
LEGACY_TABLE = "trade_executor_migrations_legacy"

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS trade_executor_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
# Tables are looked up in current_schema(), where the unqualified names of the migrations land
# (and where golang-migrate keeps its table), not anywhere on the search path.
_TABLE_EXISTS = """
SELECT EXISTS (
    SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relname = $1 AND c.relkind IN ('r', 'p')
)
"""
_TABLE_COLUMNS = """
SELECT a.attname FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = $1 AND a.attnum > 0 AND NOT a.attisdropped
"""
_TABLE_CONSTRAINTS = """
SELECT con.conname FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = $1
"""
_APPLIED = "SELECT version, name, checksum FROM trade_executor_migrations ORDER BY version"
_APPLIED_BEFORE_V2 = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
_RECORD = "INSERT INTO trade_executor_migrations (version, name, checksum) VALUES ($1, $2, $3)"
_COPY_BEFORE_V2 = """
INSERT INTO trade_executor_migrations (version, name, checksum, applied_at)
SELECT version, name, checksum, {applied_at} FROM schema_migrations
ON CONFLICT (version) DO NOTHING
"""
_LOCK = "SELECT pg_advisory_lock($1)"
_UNLOCK = "SELECT pg_advisory_unlock($1)"

# The columns that identify trade-executor's own table of before version 2.
_OUR_OLD_COLUMNS = frozenset({"version", "name", "checksum"})

log = get_logger(__name__)


class MigrationError(Exception):
    """The migrations on disk and those recorded in the database disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str  # sha256 of the file's text


class SharedTable(Enum):
    """Who owns the table named `schema_migrations` in the current schema, judged by its columns."""

    ABSENT = "absent"
    GOLANG_MIGRATE = "golang-migrate"  # has `dirty`: jax-trading-assistant's; never touched
    TRADE_EXECUTOR = "trade-executor"  # our shape of before version 2: taken over
    FOREIGN = "foreign"  # anything else: someone else's; never touched


def load_migrations() -> list[Migration]:
    """The migrations shipped in the package, sorted by version.

    A `.sql` file with a malformed name or a duplicated version raises `MigrationError`, rather
    than being skipped silently.
    """
    found: dict[int, Migration] = {}
    for entry in resources.files("trade_executor.store").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name}: expected NNNN_name.sql")
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"migration version {version} appears twice")
        sql = entry.read_text(encoding="utf-8")
        checksum = hashlib.sha256(sql.encode("utf-8")).hexdigest()
        found[version] = Migration(version, match["name"], sql, checksum)
    return [found[version] for version in sorted(found)]


async def _exists(conn: asyncpg.Connection, table: str) -> bool:
    return bool(await conn.fetchval(_TABLE_EXISTS, table))


async def shared_table_owner(conn: asyncpg.Connection) -> SharedTable:
    """Whose `schema_migrations` is in the current schema (`ABSENT` when there is none)."""
    columns = {row["attname"] for row in await conn.fetch(_TABLE_COLUMNS, SHARED_NAME)}
    if not columns:
        return SharedTable.ABSENT
    if "dirty" in columns:
        return SharedTable.GOLANG_MIGRATE
    if columns >= _OUR_OLD_COLUMNS:
        return SharedTable.TRADE_EXECUTOR
    return SharedTable.FOREIGN


async def _recorded(conn: asyncpg.Connection) -> dict[int, str]:
    """version -> checksum of the migrations already applied (empty if none ever was).

    Reads our table and, when it has not been taken over yet, our table of before version 2;
    on a version recorded in both, `trade_executor_migrations` wins (as the takeover does).
    """
    recorded: dict[int, str] = {}
    if await shared_table_owner(conn) is SharedTable.TRADE_EXECUTOR:
        recorded.update({r["version"]: r["checksum"] for r in await conn.fetch(_APPLIED_BEFORE_V2)})
    if await _exists(conn, MIGRATIONS_TABLE):
        recorded.update({r["version"]: r["checksum"] for r in await conn.fetch(_APPLIED)})
    return recorded


async def _free_legacy_name(conn: asyncpg.Connection) -> str:
    # Taken already only if an older trade-executor ran again after an upgrade and created a
    # new table of the old shape: keep both, numbered.
    name, number = LEGACY_TABLE, 1
    while await _exists(conn, name):
        number += 1
        name = f"{LEGACY_TABLE}_{number}"
    return name


async def _take_over_predecessor(conn: asyncpg.Connection) -> None:
    """Copy our table of before version 2 into `trade_executor_migrations`, then rename it.

    Call inside the migration lock with `trade_executor_migrations` created. One transaction: a
    crash leaves either the old state or the new one. Does nothing unless `schema_migrations`
    has our old shape, so golang-migrate's table is never touched.
    """
    if await shared_table_owner(conn) is not SharedTable.TRADE_EXECUTOR:
        return
    async with conn.transaction():
        columns = {row["attname"] for row in await conn.fetch(_TABLE_COLUMNS, SHARED_NAME)}
        applied_at = "COALESCE(applied_at, now())" if "applied_at" in columns else "now()"
        copied = await conn.execute(_COPY_BEFORE_V2.format(applied_at=applied_at))
        target = await _free_legacy_name(conn)
        constraints = [row["conname"] for row in await conn.fetch(_TABLE_CONSTRAINTS, SHARED_NAME)]
        # Identifiers cannot be bind parameters; every name here comes from the catalog or from
        # our constants, and is quoted.
        await conn.execute(f"ALTER TABLE {_quote(SHARED_NAME)} RENAME TO {_quote(target)}")
        for constraint in constraints:
            # `schema_migrations_pkey` would otherwise block golang-migrate's own primary key:
            # index names are unique per schema.
            if constraint.startswith(f"{SHARED_NAME}_"):
                renamed = target + constraint[len(SHARED_NAME) :]
                await conn.execute(
                    f"ALTER TABLE {_quote(target)} RENAME CONSTRAINT"
                    f" {_quote(constraint)} TO {_quote(renamed)}"
                )
    log.info("migration.table_taken_over", renamed_to=target, copied=copied)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# Earlier texts of a migration, recorded where they were applied, that its current text replaces
# with the same effect on those databases (so they are not refused as "changed"). Only for a
# change that a database having applied the old text needs nothing for, or gets from a later
# migration. 0001: its index on trades (signal_id) is created only where the original's
# idx_trades_signal_id is not there; 0007 drops ours where both exist.
REVISED: dict[int, frozenset[str]] = {
    1: frozenset({"4660726f5be582953d9fd26c6ba5a9b545a7e95e7d38b46263f1ac16103ec66d"}),
}


def _unapplied(migrations: list[Migration], recorded: dict[int, str]) -> list[Migration]:
    for migration in migrations:
        checksum = recorded.get(migration.version)
        if checksum in REVISED.get(migration.version, frozenset()):
            continue
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} was changed after it was "
                "applied (checksum mismatch): add a new migration instead"
            )
    # A recorded version unknown here means the database is newer than this code: leave it be.
    return [m for m in migrations if m.version not in recorded]


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    async with conn.transaction():
        await conn.execute(migration.sql)  # no arguments: multi-statement script
        await conn.execute(_RECORD, migration.version, migration.name, migration.checksum)


async def migrate(
    dsn: str,
    *,
    lock_timeout: float = LOCK_TIMEOUT,
    attempts: int = LOCK_ATTEMPTS,
    pause: float = RETRY_PAUSE,
) -> list[int]:
    """Apply every unapplied migration; return their versions (empty when up to date).

    On a database in use each schema change waits at most `lock_timeout` for its locks, tried
    `attempts` times `pause` apart (`store.lockwait`); then `LockBlocked` names the session in
    the way."""
    migrations = load_migrations()
    conn: asyncpg.Connection = await asyncpg.connect(dsn)

    async def retried(what: str, attempt: Callable[[], Awaitable[object]]) -> None:
        await with_lock_retries(
            conn, dsn, what, attempt, attempts=attempts, pause=pause, lock_timeout=lock_timeout
        )

    try:
        # With several hosts, the one migrated is the primary asyncpg found: say which.
        log.info("migration.database", database=str(await database_server(conn)))
        # Session-level lock, taken before even creating our table: concurrent
        # CREATE TABLE IF NOT EXISTS can itself fail on a unique violation in the catalog. It
        # waits as long as another migrate runs: the lock timeout is set only once it is held.
        await conn.execute(_LOCK, MIGRATION_LOCK_KEY)
        try:
            await set_lock_timeout(conn, lock_timeout)
            await conn.execute(_CREATE_TABLE)
            await retried("taking over schema_migrations", lambda: _take_over_predecessor(conn))
            owner = await shared_table_owner(conn)
            if owner is SharedTable.FOREIGN:
                log.warning("migration.foreign_schema_migrations_left_alone", table=SHARED_NAME)
            todo = _unapplied(migrations, await _recorded(conn))
            for migration in todo:
                name = f"migration {migration.version:04d}_{migration.name}"
                await retried(name, functools.partial(_apply, conn, migration))
                log.info("migration.applied", version=migration.version, name=migration.name)
            return [migration.version for migration in todo]
        finally:
            # Ending the session releases the lock anyway: an unlock that fails (the connection
            # broke) must not hide the error that brought us here.
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.execute(_UNLOCK, MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def pending(dsn: str) -> list[int]:
    """Versions not yet applied; raises `MigrationError` if an applied one has changed.

    Reads only: a table of before version 2 is counted as it stands, not taken over.
    """
    migrations = load_migrations()
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        return [m.version for m in _unapplied(migrations, await _recorded(conn))]
    finally:
        await conn.close()
