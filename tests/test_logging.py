"""Logging (CONTRACT section 9): JSON lines, context, and secrets that never reach a line."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from trade_executor import logging as te_logging
from trade_executor.logging import bind_context, configure_logging, get_logger, register_secrets
from trade_executor.redact import redact_dsn, redact_text

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
