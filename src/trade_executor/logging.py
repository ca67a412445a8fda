"""structlog set-up (CONTRACT section 9): JSON lines on stdout, contextvars, secret redaction.

The redaction processor runs last before rendering, over every string value of the event
dictionary (and the rendered traceback), so a DSN password or token logged by mistake is masked.
`show_locals` is off: a password held in a stack frame must never be printed.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, ExcInfo, Processor, WrappedLogger

from trade_executor.redact import MASK, SECRET_KEY, redact_text

_known_secrets: list[str] = []


def register_secrets(secrets: Iterable[str]) -> None:
    """Values (passwords, tokens) to mask wherever they appear in a log line."""
    for secret in secrets:
        if secret and secret not in _known_secrets:
            _known_secrets.append(secret)


def _redact_value(value: Any) -> Any:
    """A JSON-ready copy of `value` with secrets masked.

    Anything that is not a JSON scalar or container is turned into its string and masked too: a
    UUID or Decimal then reads plainly, and an object whose str() holds a DSN cannot slip through.
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value, _known_secrets)
    if isinstance(value, Mapping):
        return {key: _redact_field(str(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item) for item in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}", _known_secrets)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return redact_text(str(value), _known_secrets)


def _redact_field(key: str, value: Any) -> Any:
    # log.info("x", password=...) or {"api_token": ...}: the key says the value is a secret.
    if value is not None and SECRET_KEY.search(key):
        return MASK
    return _redact_value(value)


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every value.

    `exc_info` is left for the renderer, whose exception formatter masks the traceback itself.
    """
    for key, value in list(event_dict.items()):
        if key != "exc_info":
            event_dict[key] = _redact_field(key, value)
    return event_dict


def _redacting_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    """Console exception formatter: structlog's plain traceback, masked."""
    buffer = io.StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(redact_text(buffer.getvalue(), _known_secrets))


def _uppercase_free_level(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    if "level" in event_dict:
        event_dict["level"] = str(event_dict["level"]).lower()
    return event_dict


def _leading_keys(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Put timestamp, level and event first: easier to read in `journalctl -o cat`."""
    head = {
        key: event_dict.pop(key) for key in ("timestamp", "level", "event") if key in event_dict
    }
    return {**head, **event_dict}


def shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _uppercase_free_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def configure_logging(
    log_format: str = "json",
    log_level: str = "info",
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog (and the stdlib root logger, for libraries) once per process."""
    register_secrets(secrets)
    level = logging.getLevelNamesMapping()[log_level.upper()]
    out = stream if stream is not None else sys.stdout
    renderer: Processor
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=_redacting_traceback
        )
        tail: list[Processor] = [redact_secrets, renderer]
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        tail = [structlog.processors.format_exc_info, redact_secrets, _leading_keys, renderer]
    structlog.configure(
        processors=[*shared_processors(), structlog.processors.StackInfoRenderer(), *tail],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries (asyncpg, hypercorn, httpx) log through the standard library: same format.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors(),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


def bind_context(**values: Any) -> Mapping[str, Any]:
    """Bind ids (execution_id, signal_id, ...) to every log line of the current task."""
    return structlog.contextvars.bind_contextvars(
        **{k: v for k, v in values.items() if v is not None}
    )
