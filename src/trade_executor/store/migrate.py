"""Schema migrations: numbered plain `.sql` files applied in order, recorded in `schema_migrations`.

Guarantees:
- `migrate()` is safe to run from several processes at once: each takes the session-level advisory
  lock `MIGRATION_LOCK_KEY` before reading `schema_migrations`, so exactly one applies a given
  migration and the others then find it recorded.
- Each migration runs in its own transaction together with its `schema_migrations` row: a failing
  migration leaves neither a half-applied schema nor a record.
- A recorded migration whose file has changed since is refused (`MigrationError`), before anything
  is applied: edit the schema with a new numbered file, never by rewriting an applied one.

Files are named `NNNN_name.sql` and live in the package's `migrations/` directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from trade_executor.logging import get_logger

# Fixed key of the migration advisory lock ("te-migr" in ASCII); distinct from any other lock key
# of the service, so a standby instance waiting for the active lock never blocks a migration.
MIGRATION_LOCK_KEY: int = 0x74_65_2D_6D_69_67_72

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
_TABLE_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
_APPLIED = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
_RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"
_LOCK = "SELECT pg_advisory_lock($1)"
_UNLOCK = "SELECT pg_advisory_unlock($1)"

log = get_logger(__name__)


class MigrationError(Exception):
    """The migrations on disk and those recorded in the database disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str  # sha256 of the file's text


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


async def _recorded(conn: asyncpg.Connection) -> dict[int, str]:
    """version -> checksum of the migrations already applied (empty if none ever was)."""
    if not await conn.fetchval(_TABLE_EXISTS):
        return {}
    return {row["version"]: row["checksum"] for row in await conn.fetch(_APPLIED)}


def _unapplied(migrations: list[Migration], recorded: dict[int, str]) -> list[Migration]:
    for migration in migrations:
        checksum = recorded.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} was changed after it was "
                "applied (checksum mismatch): add a new migration instead"
            )
    # A recorded version unknown here means the database is newer than this code: leave it be.
    return [m for m in migrations if m.version not in recorded]


async def migrate(dsn: str) -> list[int]:
    """Apply every unapplied migration; return their versions (empty when up to date)."""
    migrations = load_migrations()
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        # Session-level lock, taken before even creating schema_migrations: concurrent
        # CREATE TABLE IF NOT EXISTS can itself fail on a unique violation in the catalog.
        await conn.execute(_LOCK, MIGRATION_LOCK_KEY)
        try:
            await conn.execute(_CREATE_TABLE)
            todo = _unapplied(migrations, await _recorded(conn))
            for migration in todo:
                async with conn.transaction():
                    await conn.execute(migration.sql)  # no arguments: multi-statement script
                    await conn.execute(
                        _RECORD, migration.version, migration.name, migration.checksum
                    )
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
    """Versions not yet applied; raises `MigrationError` if an applied one has changed."""
    migrations = load_migrations()
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        return [m.version for m in _unapplied(migrations, await _recorded(conn))]
    finally:
        await conn.close()
