"""structlog set-up (CONTRACT section 9): JSON lines on stdout, contextvars, secret redaction.

The redaction processor runs last before rendering, over every string value of the event
dictionary (and the rendered traceback), so a DSN password or token logged by mistake is masked.
`show_locals` is off: a password held in a stack frame must never be printed.

Under journald (the output stream is the one `JOURNAL_STREAM` names) every line starts with its
syslog priority, `<3>` for an error, so `journalctl -p err` selects by level; anywhere else the
lines are plain. `RepeatLimiter` / `log_repeated` keep a warning that repeats (the bridge down, a
status that cannot be read) to one line on change and then one a minute with a count.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO
from uuid import UUID

import structlog
from structlog.typing import EventDict, ExcInfo, Processor, WrappedLogger

from trade_executor.config.redact import MASK, SECRET_KEY, UNSET, redact_text

if TYPE_CHECKING:
    pass

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
    # An unset one (None, or the redacted view's "(unset)") is shown as such: nothing to hide.
    if value is not None and value != UNSET and SECRET_KEY.search(key):
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


# The syslog priority of each level (RFC 5424 severities), as journald reads it from a `<N>`
# line prefix. `exception` logs at error; anything unrecognised counts as info.
SYSLOG_PRIORITY: Mapping[str, int] = {
    "debug": 7,
    "info": 6,
    "notice": 5,
    "warning": 4,
    "warn": 4,
    "error": 3,
    "exception": 3,
    "critical": 2,
    "fatal": 2,
}


def syslog_priority(level: str) -> int:
    """The syslog priority of a log level name (`"error"` -> 3); info (6) when unknown."""
    return SYSLOG_PRIORITY.get(level.lower(), 6)


def journald_stream(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when `stream` is the journal stream systemd connected the service to.

    systemd sets `JOURNAL_STREAM=<device>:<inode>` of that stream. The variable is inherited by
    children whose output goes elsewhere (a pipe, a file), so, as systemd advises, the stream's
    own device and inode are compared: only a line that journald reads gets a priority prefix.
    A stream without a file descriptor (StringIO) is never the journal.
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":", 1))
        stat = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):  # unset, malformed, or no descriptor
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


class _SyslogPrefixed:
    """Wraps the final renderer: every line of its output starts with `<N>`, the event's syslog
    priority. Every line, not only the first: journald stores each line as its own entry, and a
    console traceback's lines must keep the error priority of the event they belong to."""

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        prefix = f"<{syslog_priority(str(event_dict.get('level', method_name)))}>"
        rendered = str(self._renderer(logger, method_name, event_dict))
        return "\n".join(prefix + line for line in rendered.split("\n"))


def shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _uppercase_free_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


class CurrentStream:
    """`sys.stdout` or `sys.stderr` as it is at the time of each write, not at configuration:
    a replaced stream (a test's capture, later closed) must not keep receiving every later
    line. The default sink of `configure_logging`; `CurrentStream("stderr")` for commands
    whose stdout is their answer."""

    def __init__(self, name: Literal["stdout", "stderr"]) -> None:
        self.name = name

    def resolve(self) -> TextIO:
        stream: TextIO = getattr(sys, self.name)
        return stream

    def write(self, text: str) -> int:
        return self.resolve().write(text)

    def flush(self) -> None:
        self.resolve().flush()


def configure_logging(
    log_format: str = "json",
    log_level: str = "info",
    stream: TextIO | CurrentStream | None = None,
    secrets: Iterable[str] = (),
    journald: bool | None = None,
) -> None:
    """Configure structlog (and the stdlib root logger, for libraries) once per process.

    `journald`: prefix each line with its syslog priority; `None` (the default) decides by
    `journald_stream(stream)`, so it is on exactly when systemd connected the stream to journald.
    """
    register_secrets(secrets)
    level = logging.getLevelNamesMapping()[log_level.upper()]
    sink = stream if stream is not None else CurrentStream("stdout")
    out = sink.resolve() if isinstance(sink, CurrentStream) else sink  # for its tty and journal
    renderer: Processor
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=_redacting_traceback
        )
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    if journald_stream(out) if journald is None else journald:
        renderer = _SyslogPrefixed(renderer)
    # The notifier's tap sees every event at info and above, whatever LOG_LEVEL says (a fill is
    # told even when info lines are not written); the lines below LOG_LEVEL are dropped after it.
    from trade_executor.observability.tap import log_tap

    tapped = min(level, logging.INFO)
    gate: list[Processor] = [log_tap]
    if level > tapped:
        gate.append(_below(level))
    tail: list[Processor]
    if log_format == "console":
        tail = [redact_secrets, renderer]
    else:
        tail = [structlog.processors.format_exc_info, redact_secrets, _leading_keys, renderer]
    structlog.configure(
        processors=[
            *shared_processors(),
            *gate,
            structlog.processors.StackInfoRenderer(),
            *tail,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(tapped),
        logger_factory=structlog.PrintLoggerFactory(file=sink),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Libraries (asyncpg, hypercorn, httpx) log through the standard library: same format.
    handler: logging.StreamHandler[Any] = logging.StreamHandler(sink)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors(),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))


_LEVEL_NUMBERS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def _below(level: int) -> Processor:
    """A processor that drops the lines below `level` (after the notifier's tap saw them)."""

    def drop(_: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        name = str(event_dict.get("level", method_name)).lower()
        if _LEVEL_NUMBERS.get(name, logging.INFO) < level:
            raise structlog.DropEvent
        return event_dict

    return drop


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


class Identified(Protocol):
    """What names an execution in a log line: an `Execution`, or a poller's slim view of one."""

    @property
    def id(self) -> UUID: ...
    @property
    def signal_id(self) -> UUID: ...
    @property
    def symbol(self) -> str | None: ...
    @property
    def order_id(self) -> int | None: ...


def log_context(execution: Identified) -> dict[str, Any]:
    """The ids every log line about an execution carries (its order id once it has one): the
    one helper the executor, the pollers and the exits use, so a line is found by any of them."""
    context: dict[str, Any] = {
        "execution_id": str(execution.id),
        "signal_id": str(execution.signal_id),
        "symbol": execution.symbol,
    }
    if execution.order_id is not None:
        context["order_id"] = execution.order_id
    return context


def bind_context(**values: Any) -> Mapping[str, Any]:
    """Bind ids (execution_id, signal_id, ...) to every log line of the current task."""
    return structlog.contextvars.bind_contextvars(
        **{k: v for k, v in values.items() if v is not None}
    )


@dataclass(slots=True)
class _Repeating:
    fingerprint: Hashable
    written_at: float
    unreported: int  # occurrences since the last line written for this key


class RepeatLimiter:
    """Keeps a condition that repeats to one line on change and then one per `interval`.

    `log(key, event, **fields)` writes a line at once when `key` is new or its `fingerprint`
    differs from the previous call's (a change); a repetition writes only once `interval`
    seconds have passed since the key's last line, and that line carries `repeated=N`: the
    occurrences since the previous line, this one included. Nothing is lost but the duplicates:
    every `interval` with occurrences yields a line with their count. `clear(key, event)` ends the
    condition, writing `event` (with `repeated=` for occurrences not yet reported) only if the
    condition was active, so a recovery line (`bridge.up`) marks exactly one transition.

    The default fingerprint is the event name and level: fields that vary between occurrences
    (an error text, an attempt number) do not count as a change. Pass `fingerprint=` to make a
    field part of the change. At most `max_keys` keys are remembered (the oldest is forgotten
    first), so keys per order cannot grow without bound. Not thread-safe; the service logs from
    one event loop.
    """

    def __init__(
        self,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
        logger: Any = None,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._max_keys = max_keys
        self._logger = logger
        self._seen: dict[Hashable, _Repeating] = {}

    def __contains__(self, key: Hashable) -> bool:
        """Whether `key`'s condition is active (logged and not cleared)."""
        return key in self._seen

    def log(
        self,
        key: Hashable,
        event: str,
        *,
        level: str = "warning",
        fingerprint: Hashable | None = None,
        **fields: Any,
    ) -> bool:
        """Record one occurrence of `key`'s condition; True if a line was written."""
        now = self._clock()
        mark = (event, level) if fingerprint is None else fingerprint
        seen = self._seen.get(key)
        if seen is None or seen.fingerprint != mark:
            self._remember(key, _Repeating(mark, now, 0))
            self._write(level, event, fields)
            return True
        seen.unreported += 1
        if now - seen.written_at < self.interval:
            return False
        repeated, seen.unreported, seen.written_at = seen.unreported, 0, now
        self._write(level, event, {**fields, "repeated": repeated})
        return True

    def clear(
        self, key: Hashable, event: str | None = None, *, level: str = "info", **fields: Any
    ) -> bool:
        """End `key`'s condition; writes `event` (if given) only when the condition was active.

        Returns whether the condition was active."""
        seen = self._seen.pop(key, None)
        if seen is None:
            return False
        if event is not None:
            extra = {"repeated": seen.unreported} if seen.unreported else {}
            self._write(level, event, {**fields, **extra})
        return True

    def _remember(self, key: Hashable, seen: _Repeating) -> None:
        self._seen.pop(key, None)  # re-inserted last: the oldest key is the first to forget
        self._seen[key] = seen
        while len(self._seen) > self._max_keys:
            del self._seen[next(iter(self._seen))]

    def _write(self, level: str, event: str, fields: Mapping[str, Any]) -> None:
        logger = self._logger if self._logger is not None else get_logger("trade_executor")
        getattr(logger, level)(event, **fields)


_repeats = RepeatLimiter()


def log_repeated(
    key: Hashable,
    event: str,
    *,
    level: str = "warning",
    fingerprint: Hashable | None = None,
    **fields: Any,
) -> bool:
    """`RepeatLimiter.log` on the process-wide limiter (one minute); True if a line was written."""
    return _repeats.log(key, event, level=level, fingerprint=fingerprint, **fields)


def clear_repeated(
    key: Hashable, event: str | None = None, *, level: str = "info", **fields: Any
) -> bool:
    """`RepeatLimiter.clear` on the process-wide limiter: ends `key`'s condition."""
    return _repeats.clear(key, event, level=level, **fields)
