"""Every named query of `store/sql/*.sql` parses on PostgreSQL: PREPAREd (asyncpg's Parse) on
the migrated schema of the original service's database, where every table any query names
exists, and on our own migrated schema, where only the queries of the original's tables may
fail, for want of those tables (ORIGINAL_ONLY: the list is checked both ways)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.integration.dropin_support import build_original_database
from trade_executor.store import sqlfiles
from trade_executor.store.named import NamedQuery

pytestmark = pytest.mark.anyio

ALL = [(f, name) for f in sqlfiles.filenames() for name in sqlfiles.load(f).queries]

# The queries that read or write tables (or columns) only the original's schema has.
ORIGINAL_ONLY = {
    ("exits.sql", "instance_flatten_times"),
    ("original.sql", "original_order_with_intents"),
    ("original.sql", "read_instance"),
    ("original.sql", "artifact_state"),
    ("original.sql", "trade_artifact_hash"),
    ("original.sql", "insert_order_intent"),
    ("original.sql", "delete_order_intent"),
    ("original.sql", "update_order_intent"),
    ("original.sql", "insert_fill"),
    ("original.sql", "insert_audit"),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # asyncpg


def text_of(filename: str, name: str) -> str:
    """The text as sent: a query with `:name` parameters numbered, as `SqlFile.named` does."""
    loaded = sqlfiles.load(filename)
    named = NamedQuery.parse(loaded.text(name))
    return loaded.named(name).sql if named.names else loaded.text(name)


@pytest.fixture
async def original(fresh_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    await build_original_database(fresh_database_url)
    conn = await asyncpg.connect(fresh_database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def ours(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def test_every_query_parses_on_the_originals_migrated_schema(
    original: asyncpg.Connection,
) -> None:
    failed = {}
    for filename, name in ALL:
        try:
            await original.prepare(text_of(filename, name))
        except asyncpg.PostgresError as error:
            failed[f"{filename}:{name}"] = str(error)
    assert failed == {}
    assert len(ALL) > 60  # every file was read


async def test_on_our_own_schema_only_the_originals_queries_lack_their_tables(
    ours: asyncpg.Connection,
) -> None:
    missing = set()
    for filename, name in ALL:
        try:
            await ours.prepare(text_of(filename, name))
        except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
            missing.add((filename, name))
    assert missing == ORIGINAL_ONLY


def test_the_list_names_queries_that_exist() -> None:
    assert set(ALL) >= ORIGINAL_ONLY
