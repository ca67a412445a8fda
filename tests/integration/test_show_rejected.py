"""`show` on a rejected execution prints the signal's prices (it printed "BUY - META @ -  stop -"),
and average prices the bridge reports as doubles without their float noise (it printed
"96 @ 210.18447916666668"), while `--json` keeps the stored values (review findings)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg
import pytest

from tests.support import insert_signal
from trade_executor.broker.jsonnum import loads
from trade_executor.cli.main import main

REJECTED = uuid.UUID("0dd00000-0000-4000-8000-000000000001")
CLOSED = uuid.UUID("0dd00000-0000-4000-8000-000000000002")


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def ledger(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)

    async def fill() -> None:
        conn = await asyncpg.connect(db_url)
        try:
            meta = await insert_signal(conn, "META", "BUY", "210.50", "205.25", "221.75")
            await conn.execute(
                "INSERT INTO executions (id, signal_id, state, reason, symbol, action,"
                " client_order_id, filled_qty, trading_day)"
                " VALUES ($1, $2, 'rejected', 'risk: max_open_positions', 'META', 'BUY',"
                " 'te-rejected', 0, current_date)",
                REJECTED,
                meta,
            )
            aapl = await insert_signal(conn, "AAPL", "BUY", "210.00", "205.00", "220.00")
            await conn.execute(
                "INSERT INTO executions (id, signal_id, state, symbol, action, order_type,"
                " client_order_id, quantity, entry_price, stop_loss, take_profit, risk_amount,"
                " position_value, filled_qty, avg_fill_price, position_state, exit_reason,"
                " exit_qty, exit_avg_price, realized_pnl, trading_day)"
                " VALUES ($1, $2, 'filled', 'AAPL', 'BUY', 'LMT', 'te-closed', 96, 210.00,"
                " 205.00, 220.00, 480.00, 20160.00, 96, 210.18447916666668, 'closed',"
                " 'take_profit', 96, 219.99999999999997, 942.29, current_date)",
                CLOSED,
                aapl,
            )
        finally:
            await conn.close()

    asyncio.run(fill())
    return db_url


def test_show_of_a_rejection_prints_the_signals_prices(
    ledger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(REJECTED)]) == 0
    out = capsys.readouterr().out
    assert "state            rejected: risk: max_open_positions" in out
    assert "signal prices    BUY META entry 210.50  stop 205.25  target 221.75  (strategy " in out
    assert "order            none (nothing was sized or placed)" in out
    assert "@ -" not in out and "stop -" not in out


def test_show_prints_average_prices_without_float_noise(
    ledger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(CLOSED)]) == 0
    out = capsys.readouterr().out
    assert "filled           96 @ 210.1845\n" in out
    assert "exit take_profit 96 @ 220.0000, realized 942.29" in out
    assert "210.18447" not in out and "219.9999" not in out
    assert "BUY 96 AAPL LMT @ 210.00  stop 205.00  target 220.00" in out


def test_show_json_keeps_the_stored_average(
    ledger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(CLOSED), "--json"]) == 0
    body = loads(capsys.readouterr().out)
    assert body["execution"]["avg_fill_price"] == Decimal("210.18447916666668")
