"""The tap on the structured log: how events reach the notifier without touching the hot path.

It knows no notifier: a sink registers with the event names it wants (the notifier's are
`notify.messages.TAPPED_EVENTS`), so observability imports nothing above it.

The service already logs every event a person is told about (`order.filled`,
`position.closed`, `executor.breaker_tripped`, ...), with the numbers in the line. `log_tap` is
a structlog processor, placed in the chain by `logging.configure_logging` after the context is
merged (so the line's `symbol` and ids are there) and before the level filter (so a notification
does not depend on LOG_LEVEL). For a tapped event it hands a shallow copy of the event's
dictionary to each registered sink and returns; a sink only puts it in a bounded queue
(`NotifierQueue.offer`). No I/O, no await, no lock: the executor logging an order costs one
dictionary look-up more. A sink that raises is ignored: logging never fails because of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Mapping
from typing import Any

from structlog.typing import EventDict, WrappedLogger

Sink = Callable[[Mapping[str, Any]], None]
_sinks: list[tuple[Sink, Collection[str]]] = []


def add_sink(sink: Sink, events: Collection[str]) -> None:
    """Receive every log event named in `events` from now on (until `remove_sink`)."""
    _sinks.append((sink, events))


def remove_sink(sink: Sink) -> None:
    _sinks[:] = [(s, events) for s, events in _sinks if s is not sink]


def log_tap(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: offer a tapped event to its sinks; the event itself is unchanged."""
    if _sinks:
        name = event_dict.get("event")
        copy: dict[str, Any] | None = None
        for sink, events in tuple(_sinks):
            if name in events:
                copy = dict(event_dict) if copy is None else copy
                with contextlib.suppress(Exception):  # a notifier must never break a log call
                    sink(copy)
    return event_dict


__all__ = ["Sink", "add_sink", "log_tap", "remove_sink"]
