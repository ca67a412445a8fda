"""What the operations share: the context they run in, the refusal they answer instead of
acting, and `OperationError`.

Every operation of `ops` is an async function over a `Context` and typed arguments that returns
a result type or a `Refusal` (one sentence, nothing done): it prints nothing, parses no command
line and runs no event loop, so the command line (`trade_executor.cli.commands`), the HTTP API, the
console and the tests call the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from trade_executor.config.sources import Settings
from trade_executor.store.protocol import Store


class OperationError(Exception):
    """One clear sentence for the operator; exit code 1."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Context:
    """What an operation acts on: the database (a store), the settings (the bridge's URL, the
    state bounds), and the clock."""

    store: Store
    settings: Settings
    clock: Callable[[], datetime] = field(default=utcnow)

    @property
    def bridge_url(self) -> str:
        return self.settings.ib_bridge_url


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an operation did nothing, in one sentence (`message`), with what the bridge said on
    the way (`said`, printed before it). `not_found`: nothing matched what was named (the API
    answers 404 for it); `not_ready`: this instance cannot do it now (503)."""

    message: str
    said: tuple[str, ...] = ()
    not_found: bool = False
    not_ready: bool = False


__all__ = ["Context", "OperationError", "Refusal", "utcnow"]
