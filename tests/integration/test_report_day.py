"""`report` over a scripted day on the real service (issue 23): three trades entered and closed
through the jax paper bridge (a stop, a take-profit, a stop, two strategies), then
`trade-executor report --format csv` and `--format json`: every trade's figures equal the
ledger's rows, the CSV parses, and the per-strategy totals equal sums computed here from the
ledger, independently of the report's code."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import anyio
import asyncpg
import pytest

from tests.support import approve, insert_signal, make_settings, running_service, threaded_bridge
from trade_executor.cli.main import main
from trade_executor_dev.paper import Faults

pytestmark = pytest.mark.anyio

D = Decimal
# symbol, strategy, the price that ends it (145 stop, 160 take-profit)
SCRIPT = [("RPTA", "momo", "144.00"), ("RPTB", "momo", "161.00"), ("RPTC", "revert", "144.00")]
LEDGER = """
SELECT x.id, x.symbol, x.action, x.exit_qty, x.avg_fill_price, x.exit_avg_price, x.exit_reason,
       x.realized_pnl, x.r_multiple, s.strategy_id
FROM executions x JOIN strategy_signals s ON s.id = x.signal_id
WHERE x.position_state = 'closed'
"""

SET_STRATEGY = "UPDATE strategy_signals SET strategy_id = $2 WHERE id = $1"
SUBMITTED = "SELECT state = 'submitted' FROM executions WHERE signal_id = $1"
FILLED = "SELECT state = 'filled' FROM executions WHERE signal_id = $1"


async def until(conn: asyncpg.Connection, query: str, *args: object) -> None:
    with anyio.fail_after(30):  # guards against a hang only
        while not await conn.fetchval(query, *args):
            await anyio.sleep(0.02)


def run_report(
    fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: Any
) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert main(["report", "--format", fmt]) == 0
    return capsys.readouterr().out


async def test_the_report_of_a_scripted_day_is_the_ledgers(
    db_url: str,
    conn: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with threaded_bridge(profile="jax", faults=Faults(latency_scale=0)) as bridge:
        settings = make_settings(db_url, bridge, max_daily_loss=10000)  # room for three trades
        async with running_service(settings):
            ids = []
            for symbol, strategy, _ in SCRIPT:
                signal_id = await insert_signal(conn, symbol)
                await conn.execute(
                    "UPDATE strategy_signals SET strategy_id = $2 WHERE id = $1",
                    signal_id,
                    strategy,
                )
                await approve(conn, signal_id)
                ids.append(signal_id)
            for signal_id, (symbol, _, _) in zip(ids, SCRIPT, strict=True):
                await until(
                    conn,
                    "SELECT state = 'submitted' FROM executions WHERE signal_id = $1",
                    signal_id,
                )
                bridge.set_price(symbol, "149.50")  # the LMT 150 entry fills
                await until(conn, FILLED, signal_id)
            for signal_id, (symbol, _, price) in zip(ids, SCRIPT, strict=True):
                bridge.set_price(symbol, price)
                await until(
                    conn,
                    "SELECT position_state = 'closed' FROM executions WHERE signal_id = $1",
                    signal_id,
                )
            ledger = {str(r["id"]): r for r in await conn.fetch(LEDGER)}
        env = {"DATABASE_URL": db_url, "IB_BRIDGE_URL": bridge.url}
        text = await anyio.to_thread.run_sync(lambda: run_report("csv", capsys, monkeypatch, env))
        report = json.loads(
            await anyio.to_thread.run_sync(lambda: run_report("json", capsys, monkeypatch, env))
        )

    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["execution_id"] for r in rows) == sorted(ledger)
    for row in rows:
        mine = ledger[row["execution_id"]]
        assert (row["symbol"], row["side"], int(row["quantity"])) == (
            mine["symbol"],
            mine["action"],
            mine["exit_qty"],
        )
        assert (
            D(row["entry"]) == mine["avg_fill_price"] and D(row["exit"]) == mine["exit_avg_price"]
        )
        assert D(row["pnl"]) == mine["realized_pnl"] and D(row["r"]) == mine["r_multiple"]
        assert row["reason"] == mine["exit_reason"] and row["strategy"] == mine["strategy_id"]
    reasons = sorted(r["reason"] for r in rows)
    assert reasons == ["stop_loss", "stop_loss", "take_profit"]

    totals = {s["strategy"]: s for s in report["strategies"]}
    for strategy in ("momo", "revert"):
        closed = [r for r in ledger.values() if r["strategy_id"] == strategy]
        pnl = [r["realized_pnl"] for r in closed]
        assert totals[strategy]["trades"] == len(closed)
        assert D(str(totals[strategy]["realized_pnl"])) == sum(pnl, D(0))
        assert totals[strategy]["wins"] == len([p for p in pnl if p > 0])
        losses = [p for p in pnl if p < 0]
        assert D(str(totals[strategy]["largest_loss"])) == min(losses)
    everything = [r["realized_pnl"] for r in ledger.values()]
    assert D(str(report["total"]["realized_pnl"])) == sum(everything, D(0))
