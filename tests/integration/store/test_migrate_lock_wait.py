"""`migrate` on the original's live database (review finding: it waited forever behind an open
transaction that had read `trades`, and meanwhile blocked the original's own
`SELECT count(*) FROM trades`, with no word of who held the lock). Real PostgreSQL sessions: one
holds the lock in an open transaction, another reads as the original does."""

from __future__ import annotations

from pathlib import Path

import anyio
import asyncpg
import pytest

from trade_executor.store.errors import LockBlocked
from trade_executor.store.failures import explain
from trade_executor.store.migrate import load_migrations, migrate

pytestmark = pytest.mark.anyio
ORIGINAL = Path(__file__).resolve().parents[2] / "fixtures" / "jax_golang_migrate.sql"
WAITING = """
SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND l.locktype = 'relation' AND a.application_name = 'te-migrate-under-test'
"""


@pytest.fixture
async def original(fresh_database_url: str) -> str:
    conn = await asyncpg.connect(fresh_database_url)
    try:
        await conn.execute(ORIGINAL.read_text(encoding="utf-8"))
    finally:
        await conn.close()
    return fresh_database_url


def named(url: str) -> str:
    return url + ("&" if "?" in url else "?") + "application_name=te-migrate-under-test"


async def test_a_blocked_migrate_names_the_session_and_lets_readers_through(
    original: str,
) -> None:
    holder = await asyncpg.connect(original, server_settings={"application_name": "jax-api"})
    reader = await asyncpg.connect(original)
    watcher = await asyncpg.connect(original)
    outcome: list[BaseException] = []
    read_while_migrating: list[int] = []
    try:
        holder_pid = holder.get_server_pid()
        transaction = holder.transaction()
        await transaction.start()
        await holder.fetchval("SELECT count(*) FROM trades")  # and stays open: idle in transaction

        async def run_migrate() -> None:
            try:
                await migrate(named(original), lock_timeout=0.5, attempts=3, pause=0.5)
            except LockBlocked as error:
                outcome.append(error)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_migrate)
            with anyio.fail_after(10):  # migrate's ALTER now waits for trades' lock
                while not await watcher.fetchval(WAITING):
                    await anyio.sleep(0.02)
            # The original's reader queues behind that wait, and gets through when the attempt
            # gives up: before migrate has given up altogether.
            read_while_migrating.append(await reader.fetchval("SELECT count(*) FROM trades"))
            assert not outcome, "the reader waited for the whole migrate"
        await transaction.rollback()
    finally:
        for conn in (holder, reader, watcher):
            await conn.close()

    assert read_while_migrating and read_while_migrating[0] >= 0
    [error] = outcome
    message = str(error)
    assert "migration 0001_initial could not get its lock in 3 attempts of 0.5 s" in message
    assert f"session pid {holder_pid} (application_name 'jax-api'" in message
    assert "idle in transaction since " in message and " UTC)" in message
    assert f"pg_terminate_backend({holder_pid})" in message
    assert "\n" not in message
    sentence = explain(error, dsn=original)
    assert sentence is not None and sentence.endswith("run trade-executor migrate again")

    # Nothing was half-applied, and with the session gone the same migrate goes through.
    assert await migrate(original) == [m.version for m in load_migrations()]


async def test_without_a_blocker_nothing_waits(original: str) -> None:
    applied = await migrate(original, lock_timeout=0.5, attempts=1, pause=0)
    assert applied and applied[0] == 1
