"""The real bridge client with chosen methods replaced, for tests that fault one broker call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trade_executor.broker.client import BrokerClient


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
