"""The tap on the structured log: how events reach the notifier without touching the hot path.

The service already logs every event a person is told about (`order.filled`,
`position.closed`, `executor.breaker_tripped`, ...), with the numbers in the line. `notify_tap` is
a structlog processor, placed in the chain by `logging.configure_logging` after the context is
merged (so the line's `symbol` and ids are there) and before the level filter (so a notification
does not depend on LOG_LEVEL). For a tapped event it hands a shallow copy of the event's
dictionary to each registered sink and returns; a sink only puts it in a bounded queue
(`NotifierQueue.offer`). No I/O, no await, no lock: the executor logging an order costs one
dictionary look-up more. A sink that raises is ignored: logging never fails because of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from structlog.typing import EventDict, WrappedLogger

from trade_executor.notify.messages import TAPPED_EVENTS

Sink = Callable[[Mapping[str, Any]], None]
_sinks: list[Sink] = []


def add_sink(sink: Sink) -> None:
    """Receive every tapped log event from now on (until `remove_sink`)."""
    _sinks.append(sink)


def remove_sink(sink: Sink) -> None:
    if sink in _sinks:
        _sinks.remove(sink)


def notify_tap(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: offer a tapped event to the sinks; the event itself is unchanged."""
    if _sinks and event_dict.get("event") in TAPPED_EVENTS:
        copy = dict(event_dict)
        for sink in tuple(_sinks):
            with contextlib.suppress(Exception):  # a notifier must never break a log call
                sink(copy)
    return event_dict


__all__ = ["Sink", "add_sink", "notify_tap", "remove_sink"]
