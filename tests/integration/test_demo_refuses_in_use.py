"""`demo` with DATABASE_URL refuses a database that holds signals or executions, before writing
anything (review finding: it inserted its five signals into a database in use, whose `status`
then showed "daily risk used 3649.28 of 1000.00")."""

from __future__ import annotations

import asyncio
import io
import uuid

import asyncpg
import pytest

from trade_executor.config.sources import load_settings
from trade_executor.store.leadership import LEADER_LOCK_KEY
from trade_executor.store.migrate import migrate
from trade_executor_dev.demo.run import run_demo


async def counts(url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        signals = await conn.fetchval("SELECT count(*) FROM strategy_signals")
        if not await conn.fetchval("SELECT to_regclass('executions') IS NOT NULL"):
            return signals, -1  # not migrated
        return signals, await conn.fetchval("SELECT count(*) FROM executions")
    finally:
        await conn.close()


async def prepare(url: str, what: str) -> None:
    if what != "original":
        await migrate(url)
    conn = await asyncpg.connect(url)
    try:
        if what == "original":  # the original's own table only, not migrated yet
            await conn.execute(
                "CREATE TABLE strategy_signals (id uuid PRIMARY KEY, symbol text, signal_type text)"
            )
        signal_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO strategy_signals (id, symbol, signal_type) VALUES ($1, 'X', 'BUY')",
            signal_id,
        )
        if what == "execution":
            await conn.execute(
                "INSERT INTO executions (id, signal_id, state, client_order_id, filled_qty)"
                " VALUES ($1, $2, 'rejected', 'te-x', 0)",
                uuid.uuid4(),
                signal_id,
            )
    finally:
        await conn.close()


@pytest.mark.parametrize("what", ["signal", "execution", "original"])
def test_demo_refuses_a_database_in_use(fresh_database_url: str, what: str) -> None:
    asyncio.run(prepare(fresh_database_url, what))
    before = asyncio.run(counts(fresh_database_url))
    out = io.StringIO()
    code = run_demo(load_settings(database_url=fresh_database_url), out=out)
    assert code == 1
    text = out.getvalue()
    executions = 1 if what == "execution" else 0
    assert f"is in use (1 signal(s) and {executions} execution(s))" in text, text
    assert "give an empty database, or leave DATABASE_URL unset" in text
    assert "Traceback" not in text
    assert asyncio.run(counts(fresh_database_url)) == before  # nothing written, not migrated


def test_demo_refuses_a_database_a_service_leads_on(db_url: str) -> None:
    """Beside a running service the demo waited 60 s as its standby and died with a traceback."""

    async def leading() -> asyncpg.Connection:
        conn = await asyncpg.connect(db_url, server_settings={"application_name": "trade-executor"})
        await conn.execute("SELECT pg_advisory_lock($1)", LEADER_LOCK_KEY)
        return conn

    async def scenario() -> str:
        leader = await leading()
        try:
            out = io.StringIO()
            settings = load_settings(database_url=db_url)
            code = await asyncio.to_thread(run_demo, settings, out=out)
            assert code == 1
            return out.getvalue()
        finally:
            await leader.close()

    text = asyncio.run(scenario())
    assert "a trade-executor service leads on it (session pid " in text, text
    assert "application_name 'trade-executor'" in text
    assert "Traceback" not in text
