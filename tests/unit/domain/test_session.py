"""The trading session (issue 19, finding 7): the exchange calendar's regular session, holidays
and early closes included, or a fixed weekday window; closed beyond the table."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from trade_executor.config.session_calendar import trading_session
from trade_executor.domain.session import SessionSpecError, TradingSession, check_spec

NY = ZoneInfo("America/New_York")
TODAY = date(2026, 12, 7)  # the table is built around this day: the tests do not age


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NY)


@pytest.fixture(scope="module")
def xnys() -> TradingSession:
    return trading_session("XNYS", "America/New_York", today=TODAY)


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        ("2026-12-12 11:00", False),  # a Saturday
        ("2026-12-25 11:00", False),  # Christmas
        ("2026-12-08 09:29:59", False),
        ("2026-12-08 09:30", True),
        ("2026-12-08 15:59:59", True),
        ("2026-12-08 16:00", False),
        ("2026-12-08 16:01", False),
        ("2026-12-24 12:59", True),  # Christmas Eve closes at 13:00
        ("2026-12-24 13:00", False),
    ],
)
def test_the_new_york_session_with_its_holidays_and_early_closes(
    xnys: TradingSession, moment: str, open_: bool
) -> None:
    assert xnys.is_open(at(moment)) is open_


def test_the_day_after_thanksgiving_closes_at_13_00() -> None:
    session = trading_session("XNYS", "America/New_York", today=date(2026, 11, 20))
    assert session.is_open(at("2026-11-27 12:59"))
    assert not session.is_open(at("2026-11-27 13:00"))
    assert not session.is_open(at("2026-11-26 11:00"))  # Thanksgiving


def test_next_open_last_close_and_the_sentence(xnys: TradingSession) -> None:
    session = xnys
    friday_evening = at("2026-12-11 18:00")
    assert session.next_open(friday_evening) == at("2026-12-14 09:30")
    assert session.last_close(friday_evening) == at("2026-12-11 16:00")
    assert session.describe(at("2026-12-08 10:00")) == ("open until 16:00 America/New_York (XNYS)")
    assert session.describe(friday_evening) == (
        "closed, opens Mon 2026-12-14 09:30 America/New_York (XNYS)"
    )


def test_beyond_the_table_is_closed(xnys: TradingSession) -> None:
    far = at("2026-12-08 10:00") + timedelta(days=800)
    assert not xnys.is_open(far)
    assert "beyond the XNYS calendar" in xnys.describe(far)


def test_a_fixed_window_on_weekdays() -> None:
    session = trading_session("08:00-12:00", "Europe/Berlin", today=TODAY)
    berlin = ZoneInfo("Europe/Berlin")
    assert session.is_open(datetime(2026, 12, 25, 8, 0, tzinfo=berlin))  # no holidays: as said
    assert not session.is_open(datetime(2026, 12, 26, 9, 0, tzinfo=berlin))  # Saturday
    assert not session.is_open(datetime(2026, 12, 8, 12, 0, tzinfo=berlin))


@pytest.mark.parametrize(
    ("spec", "sentence"),
    [
        ("16:00-09:30", "the open must be before the close"),
        ("9:30-16", "neither an exchange calendar code"),
        ("nyse!", "neither an exchange calendar code"),
    ],
)
def test_a_bad_spec_is_one_sentence(spec: str, sentence: str) -> None:
    with pytest.raises(SessionSpecError, match=sentence):
        check_spec(spec)


def test_an_unknown_calendar_is_one_sentence() -> None:
    with pytest.raises(SessionSpecError, match="not an exchange calendar the exchange-calendars"):
        trading_session("NOSUCH", "America/New_York", today=TODAY)


def test_last_open_is_the_open_of_the_session_in_progress_or_the_latest_before(
    xnys: TradingSession,
) -> None:
    assert xnys.last_open(at("2026-12-08 12:00")) == at("2026-12-08 09:30")
    assert xnys.last_open(at("2026-12-08 09:29")) == at("2026-12-07 09:30")
    # Over Christmas the last open is the early-closing 24th's: no re-protection on the 25th.
    assert xnys.last_open(at("2026-12-25 11:00")) == at("2026-12-24 09:30")
    assert not xnys.is_open(at("2026-12-25 11:00"))


def test_next_close_honours_early_closes_and_skips_holidays(xnys: TradingSession) -> None:
    assert xnys.next_close(at("2026-12-08 12:00")) == at("2026-12-08 16:00")
    assert xnys.next_close(at("2026-12-08 16:00")) == at("2026-12-09 16:00")
    assert xnys.next_close(at("2026-12-24 08:00")) == at("2026-12-24 13:00")  # early close
    assert xnys.next_close(at("2026-12-24 13:30")) == at("2026-12-28 16:00")  # over Christmas
