"""The console's parts that need no service: the SVG chart, the session book, the origin check,
and positions broker beside ledger. (Pure: no database, no event loop.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request

from trade_executor.api.console.auth import COOKIE, IDLE_TIMEOUT, SessionBook, same_origin
from trade_executor.api.console.chart import Close, pnl_chart
from trade_executor.api.console.views import position_rows
from trade_executor.domain.models import Position

NOW = datetime(2026, 12, 7, 15, 30, tzinfo=UTC)
NY = ZoneInfo("America/New_York")


def request(headers: dict[str, str], scheme: str = "http") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "scheme": scheme, "method": "POST", "path": "/", "headers": raw}
    return Request(scope)


def test_the_chart_is_the_running_total_of_the_days_closes() -> None:
    closes = [
        Close(NOW - timedelta(minutes=30), "TSLA", Decimal("676.17")),
        Close(NOW - timedelta(minutes=50), "AAPL", Decimal("-195.51")),
    ]
    svg = str(pnl_chart(closes, NOW, NY))
    assert 'data-points="2"' in svg and 'data-total="480.66"' in svg
    assert "Realized P&amp;L today: +480.66 after 2 close(s)" in svg
    # Ordered by time whatever the input order: the loss first, then the gain.
    assert svg.index("AAPL -195.51 (total -195.51)") < svg.index("TSLA +676.17 (total +480.66)")
    assert "09:40:00" in svg  # the axis starts at the first close, in the trading-day zone
    assert 'class="gain" points=' in svg  # the line ends above zero


def test_the_chart_of_a_day_without_closes_says_so() -> None:
    assert 'data-chart="empty"' in str(pnl_chart([], NOW, NY))


def test_the_chart_escapes_what_it_is_given() -> None:
    svg = str(pnl_chart([Close(NOW, "<script>", Decimal("-1"))], NOW, NY))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'class="loss" points=' in svg


def test_sessions_end_when_idle_or_when_the_token_changes() -> None:
    now = [0.0]
    book = SessionBook(clock=lambda: now[0])
    sid = book.open("alice", "token-1")
    with_cookie = request({"cookie": f"{COOKIE}={sid}"})
    session = book.get(with_cookie, "token-1")
    assert session is not None and session.operator == "alice" and session.csrf != sid
    assert book.get(request({}), "token-1") is None
    now[0] += IDLE_TIMEOUT - 1
    assert book.get(with_cookie, "token-1") is not None  # seen: the idle clock restarts
    assert book.get(with_cookie, "token-2") is None  # rotated: gone for good
    assert book.get(with_cookie, "token-1") is None
    other = book.open("bob", "token-1")
    now[0] += IDLE_TIMEOUT + 1
    assert book.get(request({"cookie": f"{COOKIE}={other}"}), "token-1") is None


def test_only_the_consoles_own_origin_may_post() -> None:
    host = {"host": "127.0.0.1:8100"}
    assert same_origin(request({**host, "origin": "http://127.0.0.1:8100"}))
    assert not same_origin(request({**host, "origin": "http://evil.example"}))
    assert not same_origin(request({**host, "origin": "https://127.0.0.1:8100"}))
    assert same_origin(request({**host, "referer": "http://127.0.0.1:8100/console"}))
    assert not same_origin(request({**host, "referer": "http://127.0.0.1:8101/console"}))
    assert not same_origin(request(host))
    assert not same_origin(request({"origin": "http://127.0.0.1:8100"}))


def ledger(symbol: str, side: str, quantity: int, protection: str = "protected") -> dict[str, Any]:
    return {
        "execution_id": f"{symbol}-{side}",
        "symbol": symbol,
        "side": side,
        "quantity": quantity,
        "avg_fill_price": Decimal("100"),
        "stop_loss": Decimal("95"),
        "take_profit": Decimal("110"),
        "protection": protection,
    }


def test_positions_put_the_brokers_quantity_beside_the_ledgers() -> None:
    broker = [
        Position("AAPL", 133, Decimal("149.80"), market_price=Decimal("150.80")),
        Position("TSLA", -30, Decimal("250"), unrealized_pnl=Decimal("12.5")),
        Position("GME", 5, Decimal("20")),
    ]
    rows = {
        r.symbol: r
        for r in position_rows(
            [ledger("AAPL", "BUY", 133), ledger("TSLA", "SELL", 33), ledger("MSFT", "BUY", 1)],
            broker,
        )
    }
    assert (rows["AAPL"].broker_qty, rows["AAPL"].ledger_qty, rows["AAPL"].agrees) == (
        133,
        133,
        True,
    )
    assert rows["AAPL"].unrealized_pnl == Decimal("133.00")  # (150.80 - 149.80) * 133
    assert (rows["TSLA"].broker_qty, rows["TSLA"].ledger_qty, rows["TSLA"].agrees) == (
        -30,
        -33,
        False,
    )
    assert rows["TSLA"].unrealized_pnl == Decimal("12.5")  # the broker's own figure first
    assert (rows["MSFT"].broker_qty, rows["MSFT"].agrees) == (0, False)  # not at the broker
    assert (rows["GME"].ledger_qty, rows["GME"].protection) == (0, "not in the ledger")
    unknown = position_rows([ledger("AAPL", "BUY", 133)], None)
    assert (unknown[0].broker_qty, unknown[0].agrees) == (None, None)  # the bridge did not say
