"""The trading session: when entries may be sent (CONTRACT section 5, "Trading session").

Pure: a `TradingSession` is a table of the days the market opens, each with its open and close
as aware moments (early closes included), and the span of days the table covers. Where the
table comes from (an exchange calendar library, or a fixed `HH:MM-HH:MM` window on weekdays) is
`trade_executor.config.session_calendar`'s business. A moment outside the covered span is taken as
closed: the service never sends on a guess about a day it knows nothing of.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_CALENDAR = re.compile(r"^[A-Z0-9][A-Z0-9_]{1,15}$")


class SessionSpecError(ValueError):
    """TRADING_SESSION is neither a calendar code nor an `HH:MM-HH:MM` window."""


@dataclass(frozen=True, slots=True)
class Window:
    """One day's regular session: `open` <= t < `close` (aware, UTC)."""

    day: date
    open: datetime
    close: datetime


@dataclass(frozen=True)
class TradingSession:
    """`windows`: the session days, in order; `first` and `last`: the days the table covers (a
    day inside that span without a window is a holiday or a weekend)."""

    name: str
    tz: ZoneInfo
    windows: tuple[Window, ...]
    first: date
    last: date
    _opens: tuple[datetime, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_opens", tuple(w.open for w in self.windows))

    def covers(self, at: datetime) -> bool:
        return self.first <= at.astimezone(self.tz).date() <= self.last

    def current(self, at: datetime) -> Window | None:
        """The window `at` falls in, else None (closed)."""
        index = bisect_right(self._opens, at) - 1
        if index < 0:
            return None
        window = self.windows[index]
        return window if at < window.close else None

    def is_open(self, at: datetime) -> bool:
        return self.current(at) is not None

    def last_open(self, at: datetime) -> datetime | None:
        """The open of the session in progress at `at`, or of the latest one before it (None
        before the table): when the overnight re-protection's "this open" began."""
        index = bisect_right(self._opens, at) - 1
        return self.windows[index].open if index >= 0 else None

    def next_open(self, after: datetime) -> datetime | None:
        """The first open strictly after `after` (None beyond the table)."""
        index = bisect_right(self._opens, after)
        return self.windows[index].open if index < len(self.windows) else None

    def next_close(self, after: datetime) -> datetime | None:
        """The first close strictly after `after` (early closes included; None beyond the
        table): when the daily summary goes out."""
        index = max(0, bisect_right(self._opens, after) - 1)
        for window in self.windows[index:]:
            if window.close > after:
                return window.close
        return None

    def last_close(self, before: datetime) -> datetime | None:
        """The latest close at or before `before` (None before the table)."""
        index = bisect_right(self._opens, before) - 1
        while index >= 0:
            close = self.windows[index].close
            if close <= before:
                return close
            index -= 1
        return None

    def describe(self, at: datetime) -> str:
        """One line for `status` and the demo: "open until 16:00 America/New_York (XNYS)"."""
        window = self.current(at)
        zone = self.tz.key
        if window is not None:
            return f"open until {window.close.astimezone(self.tz):%H:%M} {zone} ({self.name})"
        if not self.covers(at):
            return f"closed: {at.astimezone(self.tz):%Y-%m-%d} is beyond the {self.name} calendar"
        opens = self.next_open(at)
        if opens is None:
            return f"closed ({self.name})"
        return f"closed, opens {opens.astimezone(self.tz):%a %Y-%m-%d %H:%M} {zone} ({self.name})"


def check_spec(spec: str) -> str:
    """TRADING_SESSION's value, normalised, or SessionSpecError with one sentence."""
    value = spec.strip()
    if _WINDOW.match(value):
        opens, closes = value.split("-")
        if opens >= closes:
            raise SessionSpecError(f"TRADING_SESSION {spec!r}: the open must be before the close")
        return value
    if _CALENDAR.match(value.upper()):
        return value.upper()
    raise SessionSpecError(
        f"TRADING_SESSION {spec!r} is neither an exchange calendar code (such as XNYS) nor a "
        "window HH:MM-HH:MM"
    )


def is_window(spec: str) -> bool:
    return bool(_WINDOW.match(spec))


def weekday_session(spec: str, tz: ZoneInfo, first: date, last: date) -> TradingSession:
    """`HH:MM-HH:MM` in `tz`, Monday to Friday, no holidays (a fixed window, as configured)."""
    opens, closes = (time.fromisoformat(part) for part in spec.split("-"))
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    windows = [
        Window(
            day,
            datetime.combine(day, opens, tz).astimezone(UTC),
            datetime.combine(day, closes, tz).astimezone(UTC),
        )
        for day in days
        if day.weekday() < 5
    ]
    return TradingSession(spec, tz, tuple(windows), first, last)


def session_from_windows(
    name: str, tz: ZoneInfo, windows: Iterable[Window], first: date, last: date
) -> TradingSession:
    """A calendar's session table (see `trade_executor.config.session_calendar`)."""
    return TradingSession(name, tz, tuple(sorted(windows, key=lambda w: w.open)), first, last)
