"""`status` says whether the market is open and what an approval outside the session gets
(issue 19, finding 7; CONTRACT section 5: "`status` says whether the market is open").

The session is built around today (as in the service), so the moments are taken from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trade_executor.config.session_calendar import trading_session
from trade_executor.config.sources import load_settings
from trade_executor.ops.status import market_view


def test_status_says_the_market_is_closed_and_when_it_opens() -> None:
    settings = load_settings(environ={}, outside_session="reject")
    session = trading_session("XNYS", "America/New_York")
    opens = session.next_open(datetime.now(UTC))
    assert opens is not None
    before = opens - timedelta(minutes=1)
    view = market_view(settings, before)
    local = opens.astimezone(session.tz)
    assert view == {
        "open": False,
        "session": f"closed, opens {local:%a %Y-%m-%d} 09:30 America/New_York (XNYS)",
        "outside_session": "reject",
    }


def test_status_says_the_market_is_open_until_the_close() -> None:
    settings = load_settings(environ={}, outside_session="send")
    session = trading_session("XNYS", "America/New_York")
    opens = session.next_open(datetime.now(UTC))
    assert opens is not None
    window = session.current(opens)
    assert window is not None
    close = window.close.astimezone(session.tz)
    view = market_view(settings, opens + timedelta(minutes=1))
    assert view["open"] is True
    assert view["session"] == f"open until {close:%H:%M} America/New_York (XNYS)"
