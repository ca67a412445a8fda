"""Where the trading session's table comes from: an exchange calendar (the `exchange-calendars`
library: holidays and early closes as the exchange publishes them), or a fixed weekday window.

The library (and pandas and numpy under it) takes over half a second to import and to build a
calendar, and about 50 MB that a process never gives back (measured: bench/ANALYSIS.md, issue
22). So a calendar's table is built in a child process
(`python -m trade_executor.config.session_calendar CODE TIMEZONE DAY`, which prints it as
JSON), read back once and cached for the process: the service never imports the library.
`preload` starts that child early (`run` does so before it imports the service), so it builds
the table while the parent goes on; the first `trading_session` call collects it. A child
that cannot run (no interpreter, a crash) is replaced by building the table in this process,
as before. Nothing is ever built on an approval's path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from datetime import UTC, date, datetime, timedelta
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
# The child's exit status for an unknown calendar code (its stdout is the sentence).
UNKNOWN_CALENDAR = 3
# A child that has not answered within this many seconds is replaced by an in-process build.
CHILD_TIMEOUT = 120.0

_pending: dict[tuple[str, str], tuple[date, subprocess.Popen[str]]] = {}


def trading_session(spec: str, timezone: str, today: date | None = None) -> TradingSession:
    """The session TRADING_SESSION names, in TRADING_DAY_TIMEZONE, built once per process
    (around the day of the first call; `today` builds an uncached one around that day, for
    tests); SessionSpecError with one sentence for an unknown calendar."""
    if today is not None:
        return _build(check_spec(spec), timezone, today)
    return _cached(check_spec(spec), timezone)


def preload(spec: str, timezone: str) -> None:
    """Start building the table TRADING_SESSION names in a child process, unless it is a
    window (no library needed), invalid (the first `trading_session` call says why) or under
    way already. Returns at once."""
    try:
        code = check_spec(spec)
    except SessionSpecError:
        return
    if is_window(code) or (code, timezone) in _pending:
        return
    today = utcnow().date()
    _pending[(code, timezone)] = (today, _start_child(code, timezone, today))


@lru_cache(maxsize=8)
def _cached(spec: str, timezone: str) -> TradingSession:
    if is_window(spec):
        return _build(spec, timezone, utcnow().date())
    started = _pending.pop((spec, timezone), None)
    if started is None:
        today = utcnow().date()
        started = (today, _start_child(spec, timezone, today))
    today, child = started
    return _from_child(child, spec, ZoneInfo(timezone), today)


def _start_child(code: str, timezone: str, today: date) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", __name__, code, timezone, today.isoformat()]
    return subprocess.Popen(  # noqa: S603 - our own interpreter and a checked code, no shell
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _from_child(
    child: subprocess.Popen[str], code: str, tz: ZoneInfo, today: date
) -> TradingSession:
    """The child's table; SessionSpecError for an unknown code; any other failure of the child
    builds the table here instead (slower, never wrong)."""
    try:
        out, _ = child.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return _calendar_session(code, tz, today)
    if child.returncode == UNKNOWN_CALENDAR:
        raise SessionSpecError(out.strip())
    if child.returncode == 0:
        try:
            return table_from_json(code, tz, out)
        except (ValueError, KeyError, TypeError):
            pass
    return _calendar_session(code, tz, today)


def table_to_json(session: TradingSession) -> str:
    return json.dumps(
        {
            "first": session.first.isoformat(),
            "last": session.last.isoformat(),
            "windows": [
                [w.day.isoformat(), w.open.isoformat(), w.close.isoformat()]
                for w in session.windows
            ],
        }
    )


def table_from_json(code: str, tz: ZoneInfo, text: str) -> TradingSession:
    data = json.loads(text)
    windows = [
        Window(
            date.fromisoformat(day),
            datetime.fromisoformat(opens).astimezone(UTC),
            datetime.fromisoformat(closes).astimezone(UTC),
        )
        for day, opens, closes in data["windows"]
    ]
    first, last = date.fromisoformat(data["first"]), date.fromisoformat(data["last"])
    return session_from_windows(code, tz, windows, first, last)


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


def _child_main(argv: list[str]) -> int:
    """`python -m trade_executor.config.session_calendar CODE TIMEZONE DAY`: the table as JSON."""
    code, timezone, day = argv
    try:
        session = _calendar_session(code, ZoneInfo(timezone), date.fromisoformat(day))
    except SessionSpecError as error:
        print(str(error))
        return UNKNOWN_CALENDAR
    print(table_to_json(session))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
