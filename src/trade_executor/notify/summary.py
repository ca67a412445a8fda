"""The daily summary: when the session closes, and what it says (from the report).

The session's close is TRADING_SESSION's (`domain/session.py`: the exchange calendar's early
closes included, no summary on a holiday); beyond the calendar's table, the weekday close of
`next_close_after`.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from trade_executor.config.settings import Settings
from trade_executor.notify.messages import Note
from trade_executor.ops.report import Report, build_report
from trade_executor.store.postgres import PgStore

REGULAR_CLOSE = time(16, 0)
_WINDOW = re.compile(r"\s*\d{1,2}:\d{2}\s*-\s*(\d{1,2}):(\d{2})\s*")


def next_session_close(settings: Settings, now: datetime) -> datetime:
    """The close after `now` of TRADING_SESSION (built once per process)."""
    from trade_executor.config.session_calendar import trading_session

    session = trading_session(settings.trading_session, settings.trading_day_timezone)
    close = session.next_close(now)
    if close is not None:
        return close
    return next_close_after(now, settings.timezone, session_close_time(settings))


def session_close_time(settings: Settings) -> time:
    """The time of day the session closes (see the module's docstring)."""
    session = getattr(settings, "trading_session", None)
    match = _WINDOW.fullmatch(session) if isinstance(session, str) else None
    if match is not None:
        return time(int(match[1]), int(match[2]))
    return REGULAR_CLOSE


def next_close_after(now: datetime, zone: ZoneInfo, close: time) -> datetime:
    """The first weekday close strictly after `now`."""
    local = now.astimezone(zone)
    day = local.date()
    while True:
        moment = datetime.combine(day, close, tzinfo=zone)
        if day.weekday() < 5 and moment > local:
            return moment
        day += timedelta(days=1)


def _money(value: Decimal | None) -> str:
    if value is None:
        return "-"
    text = format(value, "f")
    return text if text.startswith("-") else f"+{text}"


def summary_note(report: Report) -> Note:
    """A few lines: the day's closed trades and P&L, each strategy's, the open positions."""
    total = report.total
    title = f"Day {report.first_day}: {total.trades} closed, P&L {_money(total.realized_pnl)}" + (
        f", avg R {total.average_r}" if total.average_r is not None else ""
    )
    lines = []
    for s in report.strategies:
        rate = "-" if s.win_rate is None else f"{(s.win_rate * 100).quantize(Decimal('0.01'))}%"
        lines.append(
            f"{s.strategy}: {s.trades} trades, win {rate}, avg R {s.average_r or '-'}, "
            f"P&L {_money(s.realized_pnl)}, largest loss {s.largest_loss or '-'}"
        )
    if report.open_positions is None:
        lines.append(f"open positions: unknown ({report.bridge_error})")
    else:
        lines.append(
            f"open positions: {len(report.open_positions)}, unrealized "
            f"{_money(report.unrealized_pnl)}"
        )
    return Note("daily_summary", title, "\n".join(lines), "info")


async def daily_summary(store: PgStore, settings: Settings, day: date) -> Note:
    report = await build_report(store, settings, first=day, last=day)
    return summary_note(report)


__all__ = [
    "daily_summary",
    "next_close_after",
    "next_session_close",
    "session_close_time",
    "summary_note",
]
