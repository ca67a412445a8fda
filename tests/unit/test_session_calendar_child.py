"""The exchange calendar's table is built in a child process (issue 22: the library and pandas
cost the service about 50 MB and half a second): the same table as an in-process build, the
parent never imports the library, an unknown code is the same one sentence, and a child that
fails is replaced by an in-process build."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from trade_executor.config import session_calendar
from trade_executor.domain.session import SessionSpecError

NY = "America/New_York"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    session_calendar._cached.cache_clear()
    session_calendar._pending.clear()
    yield
    session_calendar._cached.cache_clear()
    session_calendar._pending.clear()


def test_the_childs_table_is_the_in_process_one() -> None:
    today = datetime.now(UTC).date()
    expected = session_calendar._calendar_session("XNYS", ZoneInfo(NY), today)
    session_calendar.preload("xnys", NY)
    assert ("XNYS", NY) in session_calendar._pending
    built = session_calendar.trading_session("XNYS", NY)
    assert not session_calendar._pending  # the preloaded child was the one collected
    assert built == expected
    assert len(built.windows) > 500  # three years of sessions, not an empty table


def test_the_parent_never_imports_the_library() -> None:
    script = (
        "import sys\n"
        "from trade_executor.config.session_calendar import trading_session\n"
        f"session = trading_session('XNYS', {NY!r})\n"
        "print(len(session.windows), 'pandas' in sys.modules, 'exchange_calendars' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(out[0]) > 500
    assert out[1:] == ["False", "False"]


def test_an_unknown_calendar_is_one_sentence() -> None:
    session_calendar.preload("NOPE", NY)
    with pytest.raises(SessionSpecError, match="not an exchange calendar the exchange-calendars"):
        session_calendar.trading_session("NOPE", NY)


def test_a_failing_child_is_replaced_by_an_in_process_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(code: str, timezone: str, today: object) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", "print('not json')"], stdout=subprocess.PIPE, text=True
        )

    monkeypatch.setattr(session_calendar, "_start_child", broken)
    today = datetime.now(UTC).date()
    built = session_calendar.trading_session("XNYS", NY)
    assert built == session_calendar._calendar_session("XNYS", ZoneInfo(NY), today)


def test_a_window_needs_no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object) -> subprocess.Popen[str]:
        raise AssertionError("no child for a fixed window")

    monkeypatch.setattr(session_calendar, "_start_child", refused)
    session_calendar.preload("09:30-16:00", NY)
    assert session_calendar.trading_session("09:30-16:00", NY).name == "09:30-16:00"
