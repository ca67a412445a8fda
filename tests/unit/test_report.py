"""The report's figures (ops/report.py) over a scripted day of closed positions: every trade's
numbers are the ledger's, the CSV parses back to them, the per-strategy totals equal sums
computed here independently, and open positions carry the bridge's unrealized P&L."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from tests.support.builders import an_execution
from trade_executor.domain.execution import Execution
from trade_executor.domain.models import Position
from trade_executor.domain.states import ExecutionState
from trade_executor.ops.report import Report, Span, assemble, render_csv, render_table

D = Decimal
DAY = date(2026, 12, 7)
ZONE = ZoneInfo("America/New_York")
T0 = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)

# symbol, side, qty, entry, exit, reason, pnl, R, strategy
SCRIPT = [
    ("AAPL", "BUY", 133, "150.00", "145.00", "stop_loss", "-665.00", "-1.0000", "momo"),
    ("MSFT", "BUY", 50, "400.10", "410.35", "take_profit", "512.50", "2.0500", "momo"),
    ("TSLA", "SELL", 20, "250.00", "240.00", "close", "200.00", "0.8000", "revert"),
    ("META", "BUY", 10, "500.00", "499.99", "flatten", "-0.10", None, None),
    ("NVDA", "BUY", 7, "120.00", "130.00", "take_profit", "70.00", "0.3500", "momo"),
]


def _execution(i: int, row: tuple[object, ...]) -> Execution:
    symbol, side, qty, entry, exit_, reason, pnl, r, _ = row
    return an_execution(
        ExecutionState.FILLED,
        client_order_id=f"te-{i}",
        symbol=str(symbol),
        action=str(side),
        quantity=int(str(qty)),
        filled_qty=int(str(qty)),
        avg_fill_price=D(str(entry)),
        exit_qty=int(str(qty)),
        exit_avg_price=D(str(exit_)),
        exit_reason=str(reason),
        realized_pnl=D(str(pnl)),
        r_multiple=None if r is None else D(str(r)),
        position_state="closed",
        submitted_at=T0 + timedelta(minutes=i),
        closed_at=T0 + timedelta(minutes=30 + i),
    )


def _day() -> tuple[list[Execution], Report]:
    executions = [_execution(i, row) for i, row in enumerate(SCRIPT)]
    rows = [(e, row[8], None) for e, row in zip(executions, SCRIPT, strict=True)]
    positions = [
        Position("AMD", 100, D("100.00"), market_price=D("101.25")),
        Position("IBM", -5, D("200.00"), unrealized_pnl=D("12.34")),
        Position("OLD", 0, D("1")),
    ]
    report = assemble(Span(DAY, DAY, ZONE), None, rows, positions)
    return executions, report


def test_every_trade_is_the_ledgers_and_the_csv_parses_back() -> None:
    executions, report = _day()
    parsed = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert len(parsed) == len(executions)
    for e, row, script in zip(executions, parsed, SCRIPT, strict=True):
        assert row["execution_id"] == str(e.id)
        assert (row["symbol"], row["side"], int(row["quantity"])) == (
            e.symbol,
            e.action,
            e.exit_qty,
        )
        assert D(row["entry"]) == e.avg_fill_price and D(row["exit"]) == e.exit_avg_price
        assert D(row["pnl"]) == e.realized_pnl
        assert (D(row["r"]) if row["r"] else None) == e.r_multiple
        assert row["reason"] == e.exit_reason and (row["strategy"] or None) == script[8]
        assert datetime.fromisoformat(row["closed"]) == e.closed_at
        assert datetime.fromisoformat(row["opened"]) == e.submitted_at


def test_per_strategy_totals_equal_independent_sums() -> None:
    _, report = _day()
    by_name = {s.strategy: s for s in report.strategies}
    for name in ("momo", "revert", "(none)"):
        mine = [row for row in SCRIPT if (row[8] or "(none)") == name]
        pnl = [D(str(row[6])) for row in mine]
        rs = [D(str(row[7])) for row in mine if row[7] is not None]
        s = by_name[name]
        assert s.trades == len(mine)
        assert s.realized_pnl == sum(pnl, D(0))
        assert s.wins == len([p for p in pnl if p > 0])
        assert s.win_rate == (D(s.wins) / len(mine)).quantize(D("0.0001"))
        assert s.average_r == ((sum(rs, D(0)) / len(rs)).quantize(D("0.0001")) if rs else None)
        assert s.expectancy == (sum(pnl, D(0)) / len(mine)).quantize(D("0.01"))
        losses = [p for p in pnl if p < 0]
        assert s.largest_loss == (min(losses) if losses else None)
    total = report.total
    assert total.realized_pnl == D("117.40") and total.trades == 5
    assert total.largest_loss == D("-665.00")
    assert by_name["momo"].win_rate == D("0.6667")


def test_open_positions_carry_unrealized_pnl_from_the_bridge() -> None:
    _, report = _day()
    assert report.open_positions is not None
    held = {p.symbol: p for p in report.open_positions}
    assert set(held) == {"AMD", "IBM"}
    assert held["AMD"].unrealized_pnl == D("125.00")
    assert held["IBM"].unrealized_pnl == D("12.34")
    assert report.unrealized_pnl == D("137.34")
    text = render_table(report)
    assert "-665.00" in text and "66.67%" in text and "137.34" in text
