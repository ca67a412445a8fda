"""Account snapshots for risk decisions: the account and the positions, read from the bridge.

A decision needs a snapshot read *after* its approvals were seen. Reading it only once the
claim is done puts a bridge round trip on every approval's path, so the executor starts a read
as soon as an approval is seen (`prefetch`) and the decision then takes that read (`fresh`),
which by then has usually finished. One read at a time; failures are never cached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from trade_executor.broker.errors import BrokerError
from trade_executor.broker.protocol import Broker
from trade_executor.domain.models import Account, Position

Snapshot = tuple[Account, list[Position]]


@dataclass(eq=False)
class _Read:
    started: float
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Snapshot | None = None
    error: BrokerError | None = None


class AccountSnapshots:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._latest: _Read | None = None  # the newest read, finished or not

    def prefetch(self, tg: TaskGroup) -> None:
        """Start a read unless one is already under way."""
        if self._latest is None or self._latest.done.is_set():
            self._start(tg)

    async def fresh(self, since: float, tg: TaskGroup) -> Snapshot:
        """A snapshot whose read started at or after `since` (anyio clock); raises BrokerError."""
        read = self._latest
        if read is None or read.started < since or (read.done.is_set() and read.error):
            read = self._start(tg)
        await read.done.wait()
        if read.error is not None:
            raise read.error
        assert read.result is not None
        return read.result

    def _start(self, tg: TaskGroup) -> _Read:
        read = _Read(anyio.current_time())
        self._latest = read
        tg.start_soon(self._fill, read)
        return read

    async def _fill(self, read: _Read) -> None:
        try:
            read.result = await self._read_both()
        except BrokerError as error:
            read.error = error
        finally:
            read.done.set()

    async def _read_both(self) -> Snapshot:
        """Both reads concurrently; a failure raises the BrokerError itself, not a group."""
        results: dict[str, Any] = {}

        async def fetch(name: str, call: Callable[[], Awaitable[Any]]) -> None:
            results[name] = await call()

        failed: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(fetch, "account", self._broker.account)
                tg.start_soon(fetch, "positions", self._broker.positions)
        except* BrokerError as group:
            # Raised after the block, not in it: a read failing while the task is cancelled
            # (trio) leaves the cancellation in the group, and a raise here would wrap the
            # error in a new group that `_fill` does not catch.
            failed = group.exceptions[0]
        if failed is not None:
            raise failed from None
        return results["account"], results["positions"]
