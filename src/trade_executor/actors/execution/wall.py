"""The kill switch as a wall in front of the bridge (CONTRACT v3 section 5, "Kill switch").

A halt is decided against at the decide step, but an entry decided just before it may still be
waiting in the pacing queue (at 9 messages a second, 50 entries wait up to ~5.5 s). The wall
looks at the trading state again at the moment an entry leaves the queue.

Guarantees:
- `send` never starts an entry's POST while the service is halted: an entry that meets the halt
  before its POST (waiting for the pacer, or leaving it) comes back `HELD_BACK`, and nothing of
  it reached the bridge;
- `close` (called as the service halts, by the operator's switch or the breaker) wakes every
  entry waiting for the pacer at once, so they end now rather than at their turn; a waiter
  cancelled so takes nothing from the pacer's limit;
- `wait_clear` returns once no entry POST that passed the wall is still on the wire: after it,
  nothing decided before the halt can reach the bridge, so only then is the halt acknowledged
  (`halt --wait` returns). A POST on the wire is bounded by IB_BRIDGE_TIMEOUT (a deadline for
  the whole request), so this wait is too.
Only entries pass here: exits, closes, protective orders and cancels are never stopped by a halt.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Final

import anyio

from trade_executor.broker.pacing import admitted, order_messages
from trade_executor.broker.protocol import Broker
from trade_executor.domain.models import AnyOrderRequest, PlacedOrder


class _Held(Enum):
    HELD_BACK = "held_back"


HELD_BACK: Final = _Held.HELD_BACK
HeldBack = _Held


class HaltWall:
    def __init__(self, halted: Callable[[], bool]) -> None:
        self._halted = halted
        self._waiting: set[anyio.CancelScope] = set()
        self._on_wire = 0
        self._clear = anyio.Event()
        self._clear.set()

    @property
    def on_wire(self) -> int:
        """Entry POSTs past the wall whose answer has not come back yet."""
        return self._on_wire

    async def send(self, broker: Broker, order: AnyOrderRequest) -> PlacedOrder | HeldBack:
        """The entry's one POST through the pacer, unless the service is halted by the time it
        leaves the queue. The bridge's errors are raised as `broker.place` raises them."""
        if self._halted():
            return HELD_BACK
        with anyio.CancelScope() as waiting:
            self._waiting.add(waiting)
            try:
                sender = await admitted(broker, order_messages(order))
            finally:
                self._waiting.discard(waiting)
        # No checkpoint from here to the POST's start: a halt applied before this line is seen,
        # one applied after it finds the POST counted on the wire (and waits for it).
        if waiting.cancelled_caught or self._halted():
            return HELD_BACK
        self._enter()
        try:
            return await sender.place(order)
        finally:
            self._leave()

    def close(self) -> None:
        """The service just halted: every entry waiting for the pacer stops waiting now."""
        for scope in list(self._waiting):
            scope.cancel()

    async def wait_clear(self) -> None:
        """Until no entry POST that passed the wall is on the wire."""
        while self._on_wire:
            await self._clear.wait()

    def _enter(self) -> None:
        if self._on_wire == 0:
            self._clear = anyio.Event()
        self._on_wire += 1

    def _leave(self) -> None:
        self._on_wire -= 1
        if self._on_wire == 0:
            self._clear.set()
