"""`migrate` adds no index that duplicates the original's `idx_trades_signal_id` (review finding:
it added trades_signal_id_idx beside it, a second index every write of the original maintains).
On the original's database ours is never created; where an earlier version created it beside the
original's, 0007 drops it; where ours is the only one, it stays."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from trade_executor.store.migrate import MigrationError, migrate, pending

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
INDEXES_ON_SIGNAL_ID = """
SELECT c.relname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = 'trades'::regclass AND i.indnatts = 1 AND a.attname = 'signal_id'
ORDER BY c.relname
"""


async def indexes(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [row["relname"] for row in await conn.fetch(INDEXES_ON_SIGNAL_ID)]
    finally:
        await conn.close()


async def execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.mark.parametrize("fixture", ["jax_golang_migrate.sql", "jax_compose_init.sql"])
async def test_on_the_originals_database_ours_is_never_created(
    fresh_database_url: str, fixture: str
) -> None:
    await execute(fresh_database_url, (FIXTURES / fixture).read_text(encoding="utf-8"))
    await migrate(fresh_database_url)
    assert await indexes(fresh_database_url) == ["idx_trades_signal_id"]


async def test_ours_beside_the_originals_is_dropped(fresh_database_url: str) -> None:
    """As an earlier version left it: 0001 ran (and created ours) before the original's index was
    looked for, so the database holds both until 0007."""
    url = fresh_database_url
    await execute(url, (FIXTURES / "jax_golang_migrate.sql").read_text(encoding="utf-8"))
    await execute(url, "CREATE INDEX trades_signal_id_idx ON trades (signal_id)")
    assert await indexes(url) == ["idx_trades_signal_id", "trades_signal_id_idx"]
    await migrate(url)
    assert await indexes(url) == ["idx_trades_signal_id"]


async def test_where_ours_is_the_only_one_it_stays(fresh_database_url: str) -> None:
    await migrate(fresh_database_url)
    assert await indexes(fresh_database_url) == ["trades_signal_id_idx"]


async def test_a_database_migrated_with_0001s_earlier_text_is_not_refused(
    fresh_database_url: str,
) -> None:
    await migrate(fresh_database_url)
    await execute(
        fresh_database_url,
        "UPDATE trade_executor_migrations SET checksum ="
        " '4660726f5be582953d9fd26c6ba5a9b545a7e95e7d38b46263f1ac16103ec66d' WHERE version = 1",
    )
    assert await pending(fresh_database_url) == []
    assert await migrate(fresh_database_url) == []
    await execute(
        fresh_database_url,
        "UPDATE trade_executor_migrations SET checksum = 'other' WHERE version = 1",
    )
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await pending(fresh_database_url)
