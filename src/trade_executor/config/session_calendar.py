"""Where the trading session's table comes from: an exchange calendar (the `exchange-calendars`
library: holidays and early closes as the exchange publishes them), or a fixed weekday window.

The library (and pandas under it) takes about half a second to import and to build a calendar,
so it is imported here only, lazily, and each session is built once per process and cached: the
service builds it at start (`preload`), never on an approval's path.
"""

from __future__ import annotations

import warnings
from datetime import UTC, date, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from trade_executor.clock import utcnow
from trade_executor.domain.session import (
    SessionSpecError,
    TradingSession,
    Window,
    check_spec,
    is_window,
    session_from_windows,
    weekday_session,
)

# The span a session table covers, around the day it is built. The library's own calendars reach
# about a year ahead; a process running longer than that rebuilds nothing and sees "closed".
# Two years back lets `status` and the tests speak of recent past days (about 500 windows).
BEHIND = timedelta(days=730)
AHEAD = timedelta(days=366)


def trading_session(spec: str, timezone: str, today: date | None = None) -> TradingSession:
    """The session TRADING_SESSION names, in TRADING_DAY_TIMEZONE, built once per process
    (around the day of the first call; `today` builds an uncached one around that day, for
    tests); SessionSpecError with one sentence for an unknown calendar."""
    if today is not None:
        return _build(check_spec(spec), timezone, today)
    return _cached(check_spec(spec), timezone)


@lru_cache(maxsize=8)
def _cached(spec: str, timezone: str) -> TradingSession:
    return _build(spec, timezone, utcnow().date())


def _build(spec: str, timezone: str, today: date) -> TradingSession:
    tz = ZoneInfo(timezone)
    if is_window(spec):
        return weekday_session(spec, tz, today - BEHIND, today + AHEAD)
    return _calendar_session(spec, tz, today)


def _calendar_session(code: str, tz: ZoneInfo, today: date) -> TradingSession:
    # pandas warns of its own future inside the library: nothing the operator can act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_calendar(code, tz, today)


def _read_calendar(code: str, tz: ZoneInfo, today: date) -> TradingSession:
    import exchange_calendars  # slow: see the module's docstring

    try:
        calendar = exchange_calendars.get_calendar(code)
    except exchange_calendars.errors.InvalidCalendarName:
        raise SessionSpecError(
            f"TRADING_SESSION {code!r} is not an exchange calendar the exchange-calendars "
            "library knows (XNYS: the New York Stock Exchange)"
        ) from None
    first = max(today - BEHIND, calendar.first_session.date())
    last = min(today + AHEAD, calendar.last_session.date())
    sessions = calendar.sessions_in_range(first.isoformat(), last.isoformat())
    windows = [
        Window(
            label.date(),
            calendar.session_open(label).to_pydatetime().astimezone(UTC),
            calendar.session_close(label).to_pydatetime().astimezone(UTC),
        )
        for label in sessions
    ]
    return session_from_windows(code, tz, windows, first, last)
