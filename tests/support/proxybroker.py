"""The real bridge client with chosen methods replaced, for tests that fault one broker call.

`locate_submission` and `order_index` are functions over a `Broker`, not methods of it: a test
that replaces one of them on its broker (a `ProxyBroker` override, or a fake broker's own
method of that name) runs its actors inside `broker_functions_overridable()`, which makes the
actors' calls of those functions ask the broker (under its pacing wrapper) for a replacement
first, and run the real function when it has none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from trade_executor.actors.account_snapshot import NotingBroker
from trade_executor.actors.execution import submit
from trade_executor.actors.exits import closing
from trade_executor.actors.exits import shared as exits_shared
from trade_executor.actors.following import reads
from trade_executor.broker import locate, orderbook
from trade_executor.broker.client import BrokerClient
from trade_executor.broker.pacing import PacedBroker

# The functions over a broker a test may replace, and the modules that call them.
OVERRIDABLE: dict[str, tuple[Callable[..., Any], tuple[object, ...]]] = {
    "locate_submission": (locate.locate_submission, (submit, closing)),
    "order_index": (orderbook.order_index, (reads, exits_shared)),
}


class ProxyBroker:
    """The real client, with chosen methods replaced (`override`); `calls` counts each
    replaced method's calls."""

    def __init__(self, inner: BrokerClient) -> None:
        self._inner = inner
        self.calls: dict[str, int] = {}

    def override(self, name: str, replacement: Callable[..., Any]) -> None:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return await replacement(*args, **kwargs)

        setattr(self, name, counted)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _replacement(broker: object, name: str) -> Callable[..., Any] | None:
    while isinstance(broker, PacedBroker | NotingBroker):  # the wiring's wrappers
        broker = broker.inner
    try:
        found = getattr(broker, name)
    except AttributeError:  # the real client has no such method: the function is not replaced
        return None
    return found if callable(found) else None


def _dispatcher(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
    async def call(broker: object, *args: Any, **kwargs: Any) -> Any:
        replacement = _replacement(broker, name)
        if replacement is None:
            return await real(broker, *args, **kwargs)
        return await replacement(*args, **kwargs)

    return call


@contextmanager
def broker_functions_overridable() -> Iterator[None]:
    """Within: the actors' `locate_submission(broker, ...)` and `order_index(broker)` run the
    broker's own replacement of that name when it has one (see the module docstring)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, (real, callers) in OVERRIDABLE.items():
            for module in callers:
                patch.setattr(module, name, _dispatcher(name, real))
        yield
