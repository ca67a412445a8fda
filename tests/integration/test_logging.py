"""Logging (CONTRACT section 9): JSON lines, context, and secrets that never reach a line."""

from __future__ import annotations

import ast
import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import anyio
import anyio.lowlevel
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from trade_executor.config.redact import redact_dsn, redact_text
from trade_executor.observability import logging as te_logging
from trade_executor.observability.logging import (
    RepeatLimiter,
    bind_context,
    clear_repeated,
    configure_logging,
    get_logger,
    log_repeated,
    register_secrets,
    syslog_priority,
)

DSN = "postgresql://trader:hunter2pw@db.internal:5432/trading"
DSN_SHOWN = "postgresql://***:***@db.internal:5432/trading"


@pytest.fixture(autouse=True)
def isolated_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test configures logging afresh; the process-wide state is put back afterwards."""
    monkeypatch.setattr(te_logging, "_known_secrets", [])
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def json_logging(level: str = "info", secrets: tuple[str, ...] = ()) -> io.StringIO:
    stream = io.StringIO()
    configure_logging("json", level, stream=stream, secrets=secrets)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_shape() -> None:
    stream = json_logging()
    get_logger("test").info("order.submitted", order_id=1001, symbol="AAPL")

    [line] = lines(stream)
    assert list(line)[:3] == ["timestamp", "level", "event"]
    assert line["level"] == "info" and line["event"] == "order.submitted"
    assert line["order_id"] == 1001 and line["symbol"] == "AAPL"
    # RFC 3339 in UTC, e.g. 2024-05-01T14:30:00.123456Z
    assert line["timestamp"].endswith("Z")
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == timedelta(0)


def test_one_json_object_per_line() -> None:
    stream = json_logging()
    log = get_logger()
    log.info("approval.received", note="two\nlines")
    log.warning("poller.timeout")
    assert [line["event"] for line in lines(stream)] == ["approval.received", "poller.timeout"]


def test_level_filtering() -> None:
    stream = json_logging("warning")
    log = get_logger()
    log.debug("hidden.debug")
    log.info("hidden.info")
    log.error("execution.failed")
    assert [(line["level"], line["event"]) for line in lines(stream)] == [
        ("error", "execution.failed")
    ]


def test_values_render_plainly() -> None:
    stream = json_logging()
    execution_id = uuid.uuid4()
    at = datetime(2024, 5, 1, 14, 30, tzinfo=UTC)
    get_logger().info("x", execution_id=execution_id, risk=Decimal("665.00"), at=at, ids={1, 2})
    [line] = lines(stream)
    assert line["execution_id"] == str(execution_id)
    assert line["risk"] == "665.00"
    assert line["at"] == "2024-05-01T14:30:00+00:00"
    assert sorted(line["ids"]) == [1, 2]


def test_bound_context_appears_and_unbinds() -> None:
    stream = json_logging()
    log = get_logger()
    execution_id, signal_id = uuid.uuid4(), uuid.uuid4()
    bind_context(execution_id=execution_id, signal_id=signal_id, approval_id=None, symbol="MSFT")
    log.info("execution.claimed")
    structlog.contextvars.unbind_contextvars("execution_id", "signal_id", "symbol")
    log.info("after")

    first, second = lines(stream)
    assert first["execution_id"] == str(execution_id) and first["signal_id"] == str(signal_id)
    assert first["symbol"] == "MSFT"
    assert "approval_id" not in first  # None is not bound
    assert not {"execution_id", "signal_id", "symbol"} & set(second)


def test_dsn_password_masked_in_message_and_fields() -> None:
    stream = json_logging()
    get_logger().info(f"connecting to {DSN}", dsn=DSN, urls=[DSN], nested={"inner": {"d": DSN}})
    [line] = lines(stream)
    text = json.dumps(line)
    assert "hunter2pw" not in text and "trader" not in text
    assert line["event"] == f"connecting to {DSN_SHOWN}"
    assert line["dsn"] == DSN_SHOWN
    assert line["urls"] == [DSN_SHOWN]
    assert line["nested"] == {"inner": {"d": DSN_SHOWN}}


def test_registered_secret_masked_everywhere() -> None:
    stream = json_logging(secrets=("s3cr3t-value",))
    register_secrets(["another-one", ""])
    get_logger().info(
        "secret s3cr3t-value in text",
        detail={"list": ["x another-one y"], "tuple": ("s3cr3t-value",)},
    )
    text = stream.getvalue()
    assert "s3cr3t-value" not in text and "another-one" not in text
    assert lines(stream)[0]["detail"] == {"list": ["x *** y"], "tuple": ["***"]}


def test_bearer_and_keyword_secrets_masked() -> None:
    stream = json_logging()
    get_logger().info(
        "request",
        headers={"Authorization": "Bearer xyz.abc-123"},
        message="sent Authorization: Bearer xyz.abc-123",
        config="password=p4ss API_TOKEN=t0k DATABASE_PASSWORD=dbp4ss",
        body='{"password": "jsonp4ss"}',
    )
    text = stream.getvalue()
    for secret in ("xyz.abc-123", "p4ss", "t0k", "dbp4ss", "jsonp4ss"):
        assert secret not in text, secret
    [line] = lines(stream)
    assert line["message"] == "sent Authorization: Bearer ***"
    assert line["config"] == "password=*** API_TOKEN=*** DATABASE_PASSWORD=***"


def test_fields_named_like_secrets_are_masked() -> None:
    stream = json_logging()
    get_logger().info("settings", password="plain", api_token="tkn", settings={"secret": 42})
    [line] = lines(stream)
    assert (line["password"], line["api_token"], line["settings"]) == (
        "***",
        "***",
        {"secret": "***"},
    )


def fail_to_connect() -> None:
    dsn = DSN  # a local holding the secret: must never be printed (show_locals is off)
    raise ConnectionError(f"could not connect to {dsn} with token s3cr3t-value")


def test_exception_traceback_masked_json() -> None:
    stream = json_logging(secrets=("s3cr3t-value",))
    try:
        fail_to_connect()
    except ConnectionError:
        get_logger().exception("listener.reconnect_failed")
    [line] = lines(stream)
    assert line["level"] == "error"
    assert "Traceback" in line["exception"] and "ConnectionError" in line["exception"]
    assert DSN_SHOWN in line["exception"]
    assert "hunter2pw" not in stream.getvalue() and "s3cr3t-value" not in stream.getvalue()


def test_exception_object_as_field_masked() -> None:
    stream = json_logging()
    error = ValueError(f"bad {DSN}")
    get_logger().warning("x", error=error, exc_info=error)
    text = stream.getvalue()
    assert "hunter2pw" not in text
    assert lines(stream)[0]["error"] == f"ValueError: bad {DSN_SHOWN}"


def test_stdlib_records_are_json_and_masked() -> None:
    stream = json_logging()
    logging.getLogger("asyncpg").warning("lost connection to %s", DSN)
    logging.getLogger("hypercorn").info("below the library threshold")
    [line] = lines(stream)
    assert line["level"] == "warning"
    assert line["event"] == f"lost connection to {DSN_SHOWN}"


def test_console_format() -> None:
    stream = io.StringIO()  # not a tty: no colour codes
    configure_logging("console", "info", stream=stream, secrets=("s3cr3t-value",))
    bind_context(execution_id="e-1")
    log = get_logger()
    log.info("order.filled", symbol="AAPL", dsn=DSN)
    try:
        fail_to_connect()
    except ConnectionError:
        log.exception("listener.reconnect_failed")

    text = stream.getvalue()
    assert "order.filled" in text and "symbol=AAPL" in text and "execution_id=e-1" in text
    assert "listener.reconnect_failed" in text and "Traceback" in text
    assert "\x1b[" not in text
    assert "hunter2pw" not in text and "s3cr3t-value" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


@pytest.mark.anyio
async def test_context_is_per_task(anyio_backend: str) -> None:
    """Ids bound in one task reach its own lines only, on asyncio and trio alike."""
    stream = json_logging()
    log = get_logger()
    bind_context(approval_id="shared")

    async def work(execution_id: str) -> None:
        bind_context(execution_id=execution_id)
        await anyio.lowlevel.checkpoint()
        log.info("execution.step")

    async with anyio.create_task_group() as tg:
        tg.start_soon(work, "e-1")
        tg.start_soon(work, "e-2")
    log.info("parent")

    seen = {(line.get("execution_id"), line["approval_id"]) for line in lines(stream)}
    assert seen == {("e-1", "shared"), ("e-2", "shared"), (None, "shared")}


def test_redact_dsn_forms() -> None:
    assert redact_dsn(DSN) == DSN_SHOWN
    assert redact_dsn("postgresql://db/x") == "postgresql://***:***@db/x"
    assert redact_dsn("postgresql://u:p@[::1]:5432/x") == "postgresql://***:***@[::1]:5432/x"
    assert redact_dsn("postgresql://u:pw@db:5432/x?password=q") == "postgresql://***:***@db:5432/x"
    assert "pw" not in redact_dsn("postgresql://u:pw@db:notaport/x")  # never raises


@given(
    password=st.text(
        alphabet=st.characters(codec="ascii", categories=["L", "N"], include_characters="!$*+~@"),
        min_size=4,
        max_size=24,
    )
)
def test_dsn_password_never_survives(password: str) -> None:
    password = f"Q{password}Z"  # cannot occur in the surrounding text by chance
    text = f"error: connect postgresql://user:{password}@db.internal:5432/trading failed"
    assert password not in redact_text(text)


# ---- journald priority prefixes (CONTRACT section 9, version 2) -------------------------------


def journal_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, matching: bool) -> TextIO:
    """A real file as the output stream; JOURNAL_STREAM names it (as systemd names the journal
    socket it connects) or, with `matching=False`, another file (a variable inherited by a
    process whose output was redirected)."""
    out = (tmp_path / "out.log").open("w+", encoding="utf-8")
    named = out if matching else (tmp_path / "elsewhere").open("w")
    stat = os.fstat(named.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    return out


def written(out: TextIO) -> list[str]:
    out.flush()
    out.seek(0)
    return out.read().splitlines()


def log_every_level() -> None:
    log = get_logger()
    log.debug("d.event")
    log.info("i.event")
    log.warning("w.event")
    log.error("e.event")
    log.critical("c.event")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("x.event")
    logging.getLogger("asyncpg").error("library error")


def test_journald_lines_carry_their_syslog_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = journal_file(tmp_path, monkeypatch, matching=True)
    configure_logging("json", "debug", stream=out)
    log_every_level()
    found = []
    for line in written(out):
        match = re.fullmatch(r"<(\d)>(\{.*\})", line)
        assert match, line
        found.append((json.loads(match.group(2))["event"], int(match.group(1))))
    assert found == [
        ("d.event", 7),
        ("i.event", 6),
        ("w.event", 4),
        ("e.event", 3),
        ("c.event", 2),
        ("x.event", 3),
        ("library error", 3),
    ]


def test_journald_console_format_prefixes_every_line_of_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = journal_file(tmp_path, monkeypatch, matching=True)
    configure_logging("console", "info", stream=out)
    get_logger().info("i.event")
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger().exception("x.event")
    text = written(out)
    assert text[0].startswith("<6>") and "i.event" in text[0]
    assert len(text) > 3  # the traceback spans lines
    assert all(line.startswith("<3>") for line in text[1:]), text


@pytest.mark.parametrize("journal", ["unset", "another stream", "garbage"])
def test_no_prefix_unless_the_stream_is_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal: str
) -> None:
    out = journal_file(tmp_path, monkeypatch, matching=False)
    if journal == "unset":
        monkeypatch.delenv("JOURNAL_STREAM")
    elif journal == "garbage":
        monkeypatch.setenv("JOURNAL_STREAM", "not:a-number")
    configure_logging("json", "debug", stream=out)
    log_every_level()
    text = written(out)
    assert len(text) == 7
    assert all(line.startswith("{") for line in text), text


def test_no_prefix_on_a_stream_without_a_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    stream = json_logging()
    get_logger().error("e.event")
    assert stream.getvalue().startswith("{")


def test_journald_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream, journald=True)
    get_logger().warning("w.event", password="hunter2pw")
    [line] = stream.getvalue().splitlines()
    assert line.startswith('<4>{"timestamp"') and "hunter2pw" not in line


def test_a_real_process_under_journald(fresh_database_url: str) -> None:
    """`trade-executor migrate` with its stderr a pipe that JOURNAL_STREAM names: every log line
    it writes carries its priority, and its stdout holds only its answer (the JSON of what it
    applied), never a log line."""
    read_end, write_end = os.pipe()
    stat = os.fstat(write_end)
    env = {k: v for k, v in os.environ.items() if k.upper() not in _setting_names()}
    env.update(
        JOURNAL_STREAM=f"{stat.st_dev}:{stat.st_ino}",
        DATABASE_URL=fresh_database_url,
        LOG_LEVEL="info",
    )
    script = Path(sys.executable).with_name("trade-executor")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "trade_executor"]
    with os.fdopen(read_end, encoding="utf-8") as reader:
        process = subprocess.Popen(
            [*command, "migrate"], env=env, stderr=write_end, stdout=subprocess.PIPE
        )
        os.close(write_end)
        output = reader.read()
        answer, _ = process.communicate(timeout=60)
        assert process.returncode == 0
    from trade_executor.store.migrate import load_migrations

    assert json.loads(answer) == {"applied": [m.version for m in load_migrations()]}
    log_lines = [line for line in output.splitlines() if '"event"' in line]
    assert log_lines, output
    for line in log_lines:
        match = re.fullmatch(r"<(\d)>(\{.*\})", line)
        assert match, line
        assert (
            int(match.group(1))
            == {"info": 6, "warning": 4, "error": 3}[json.loads(match.group(2))["level"]]
        )


def _setting_names() -> set[str]:
    from trade_executor.config.sources import Settings

    return {name.upper() for name in Settings.model_fields} | {"TRADE_EXECUTOR_ENV_FILE"}


def test_syslog_priority_table() -> None:
    assert [syslog_priority(level) for level in ("debug", "info", "warning", "error")] == [
        7,
        6,
        4,
        3,
    ]
    assert syslog_priority("CRITICAL") == 2 and syslog_priority("exception") == 3
    assert syslog_priority("something else") == 6


# ---- repeated warnings -----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_repeating_warning_is_logged_on_change_then_once_a_minute_with_a_count() -> None:
    clock = FakeClock()
    limiter = RepeatLimiter(clock=clock)
    with structlog.testing.capture_logs() as logs:
        written_now = []
        for second in range(0, 130, 10):  # the bridge fails every 10 s for two minutes
            clock.now = 1000.0 + second
            written_now.append(limiter.log("bridge", "bridge.down", error=f"timeout #{second}"))
    # t=0 (new), t=60 (a minute later: 6 occurrences since), t=120 (6 more).
    assert written_now == [True] + [False] * 5 + [True] + [False] * 5 + [True]
    assert [(e["event"], e["log_level"], e.get("repeated")) for e in logs] == [
        ("bridge.down", "warning", None),
        ("bridge.down", "warning", 6),
        ("bridge.down", "warning", 6),
    ]
    assert logs[1]["error"] == "timeout #60"  # the fields of the occurrence that was written


def test_a_change_is_logged_at_once() -> None:
    clock = FakeClock()
    limiter = RepeatLimiter(clock=clock)
    with structlog.testing.capture_logs() as logs:
        limiter.log("bridge", "bridge.down", fingerprint="timeout")
        clock.now += 1
        limiter.log("bridge", "bridge.down", fingerprint="timeout")
        clock.now += 1
        limiter.log("bridge", "bridge.down", fingerprint="refused")  # a different failure
        clock.now += 1
        limiter.log("bridge", "bridge.degraded", level="error")  # another event: a change too
        limiter.log("other", "poller.status_unknown", order_id=7)  # keys are independent
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("bridge.down", "warning"),
        ("bridge.down", "warning"),
        ("bridge.degraded", "error"),
        ("poller.status_unknown", "warning"),
    ]
    assert not any("repeated" in e for e in logs)


def test_clear_marks_the_end_once_with_what_was_not_reported() -> None:
    clock = FakeClock()
    limiter = RepeatLimiter(clock=clock)
    with structlog.testing.capture_logs() as logs:
        assert limiter.clear("bridge", "bridge.up") is False  # was not down: no line
        limiter.log("bridge", "bridge.down")
        for _ in range(4):
            clock.now += 5
            limiter.log("bridge", "bridge.down")
        assert "bridge" in limiter
        assert limiter.clear("bridge", "bridge.up", url="http://bridge") is True
        assert "bridge" not in limiter
        assert limiter.clear("bridge", "bridge.up") is False  # one transition, one line
        limiter.log("bridge", "bridge.down")  # down again: a change, logged at once
    assert [(e["event"], e.get("repeated")) for e in logs] == [
        ("bridge.down", None),
        ("bridge.up", 4),
        ("bridge.down", None),
    ]
    assert logs[1]["log_level"] == "info" and logs[1]["url"] == "http://bridge"


def test_keys_are_bounded() -> None:
    limiter = RepeatLimiter(clock=FakeClock(), max_keys=3)
    with structlog.testing.capture_logs() as logs:
        for order_id in range(5):
            limiter.log(("poller", order_id), "poller.read_failed")
        limiter.log(("poller", 0), "poller.read_failed")  # forgotten: logged as new
        limiter.log(("poller", 4), "poller.read_failed")  # remembered: suppressed
    assert len(logs) == 6
    assert ("poller", 0) in limiter and ("poller", 1) not in limiter


def test_log_repeated_goes_through_the_configured_logging() -> None:
    stream = json_logging()
    key = object()  # unique: the process-wide limiter is shared
    assert log_repeated(key, "status.unreadable", order_id=5)
    assert not log_repeated(key, "status.unreadable", order_id=5)
    assert clear_repeated(key, "status.readable")
    assert [(line["event"], line["level"], line.get("repeated")) for line in lines(stream)] == [
        ("status.unreadable", "warning", None),
        ("status.readable", "info", 1),
    ]


# ---- docs/LOG_EVENTS.md tells each event's real level -----------------------------------------

SRC = Path(__file__).resolve().parents[2] / "src" / "trade_executor"
LOG_EVENTS = Path(__file__).resolve().parents[2] / "docs" / "LOG_EVENTS.md"
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}


def _is_logger(node: ast.expr) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name in ("log", "logger", "_log", "_logger")


def logged_events() -> set[tuple[str, str]]:
    """(event, level) of every `log.<level>("event", ...)` in the package, both branches of a
    conditional event name included; `exception` logs at error."""
    found: set[tuple[str, str]] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and _is_logger(node.func.value)
                and node.args
            ):
                continue
            first = node.args[0]
            names = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
            level = "error" if node.func.attr == "exception" else node.func.attr
            for name in names:
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    found.add((name.value, level))
    return found


def documented_levels() -> dict[str, set[str]]:
    levels: dict[str, set[str]] = {}
    for line in LOG_EVENTS.read_text().splitlines():
        match = re.match(r"\| `([a-z_.]+)` \| ([a-z /-]+) \|", line)
        if match:
            levels[match.group(1)] = {part.strip() for part in match.group(2).split("/")}
    return levels


def test_log_events_doc_gives_each_event_its_real_level() -> None:
    logged = logged_events()
    assert ("supervisor.child_restarted", "error") in logged  # the scan sees real calls
    assert ("executor.halted", "warning") in logged  # and conditional names
    documented = documented_levels()
    wrong = sorted(
        f"{event}: logged at {level}, documented as {documented.get(event) or 'nothing'}"
        for event, level in logged
        if "." in event and level not in documented.get(event, set())
    )
    assert not wrong, "docs/LOG_EVENTS.md is out of date:\n" + "\n".join(wrong)
