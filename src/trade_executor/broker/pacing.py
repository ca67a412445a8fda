"""Pacing of order messages to the bridge (CONTRACT section 5: never more than
BRIDGE_MAX_MESSAGES_PER_SECOND order messages a second; a burst waits, it is not dropped).

IB counts messages, not HTTP requests: a bracket is three orders, a plain order or a cancel one.
`Pacer` admits a message of cost `k` only when both hold:
- the messages admitted in the last `window` seconds plus `k` stay within the limit, so no window
  of that length ever holds more (a plain token bucket would let up to twice the limit through a
  one-second window: its full bucket, then a second's refill);
- at least `k * window / limit` seconds have passed since the previous admission's share: a
  burst leaves evenly spaced instead of a whole window's worth at once, so the requests' own
  jitter on the way to the bridge (measured: tens of milliseconds on a busy machine) cannot
  push a window at the bridge's side over the limit.
Callers wait in FIFO order behind one lock: the first to arrive is the first to be sent, a
bracket is never overtaken by later plain orders, and nothing is dropped. A caller cancelled
while it waits takes nothing from the limit.

`PacedBroker` wraps any `Broker`: every order message (`BrokerOrders`: `place`, `cancel_order`,
`close_position`, `protect_position`) passes the pacer first; the reads (`BrokerReads`) are the
wrapped broker's own methods (the bridge answers them from memory, costing IB nothing). One
pacer is shared by every broker of the process that sends orders, so the executor's orders and
the pollers' cancels share one limit.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio

from trade_executor.domain.models import (
    AnyOrderRequest,
    BracketOrderRequest,
    CancelResult,
    OrderType,
    PlacedOrder,
    ProtectionPlaced,
)

from .protocol import READS

if TYPE_CHECKING:
    from .protocol import Broker

# The bridge's clock sees a request a little after we release it, and two requests released in
# order may arrive a few milliseconds apart in the other order: keep a small margin on the window
# so the limit also holds where it matters, at the bridge.
WINDOW_MARGIN = 0.05

BRACKET_MESSAGES = 3  # parent, take-profit, stop-loss
# Clock arithmetic in floats: a wait computed as `t - now` may land a hair before `t`, so every
# wait is at least this long (a microsecond, far below any network jitter): the loop always
# moves on, and a deadline is never taken as reached early.
EPSILON = 1e-6


def order_messages(request: AnyOrderRequest) -> int:
    """IB messages one order request costs: a bracket 3, a plain order 1."""
    return BRACKET_MESSAGES if isinstance(request, BracketOrderRequest) else 1


def protect_messages(*, take_profit: bool, replace_existing: bool) -> int:
    """A protection: its stop (and take-profit), plus the cancels of the stop and take-profit it
    replaces (at most two; counted whether or not they exist, which only errs on the safe side)."""
    return (2 if take_profit else 1) + (2 if replace_existing else 0)


class Pacer:
    """A sliding-window limiter: at most `limit` messages in any `window` seconds.

    `clock` and `sleep` default to anyio's; tests pass a fake pair. `on_wait(seconds)` is told
    how long each admitted call waited (0 when it went straight through)."""

    def __init__(
        self,
        limit: int,
        *,
        window: float = 1.0 + WINDOW_MARGIN,
        on_wait: Callable[[float], None] | None = None,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._on_wait = on_wait
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[tuple[float, int]] = deque()  # (admitted at, messages), oldest first
        self._in_window = 0
        self._spaced_until = -math.inf  # the earliest time the next message may leave
        self._lock = anyio.Lock()  # FIFO: waiters are admitted in the order they arrived

    @property
    def in_window(self) -> int:
        """Messages admitted within the last `window` seconds."""
        self._expire(self._clock())
        return self._in_window

    async def acquire(self, messages: int = 1) -> float:
        """Wait until `messages` more fit in the window, count them, return the wait in seconds.
        A cost above the limit is counted as the limit (it could never fit otherwise)."""
        cost = max(1, min(messages, self.limit))
        arrived = self._clock()
        async with self._lock:
            while True:
                now = self._clock()
                self._expire(now)
                if now < self._spaced_until:
                    await self._sleep(max(self._spaced_until - now, EPSILON))
                    continue
                if self._in_window + cost <= self.limit:
                    break
                # The oldest messages leave the window first: wait until enough have left.
                await self._sleep(max(self._free_at(cost) - now, EPSILON))
            self._sent.append((now, cost))
            self._in_window += cost
            self._spaced_until = now + cost * self.window / self.limit
        waited = max(0.0, now - arrived)
        if self._on_wait is not None:
            self._on_wait(waited)
        return waited

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0][0] + self.window <= now:
            _, cost = self._sent.popleft()
            self._in_window -= cost

    def _free_at(self, cost: int) -> float:
        """When enough of the oldest messages will have left the window for `cost` to fit."""
        excess = self._in_window + cost - self.limit
        for admitted_at, sent in self._sent:
            excess -= sent
            if excess <= 0:
                return admitted_at + self.window
        return self._clock()  # unreachable while the window holds what it counts


class PacedBroker:
    """A `Broker` whose order messages (`BrokerOrders`) pass `pacer` first; its reads
    (`BrokerReads`) are `inner`'s own methods, unwrapped."""

    def __init__(self, inner: Broker, pacer: Pacer) -> None:
        self.inner = inner
        self.pacer = pacer

    def __getattr__(self, name: str) -> Any:
        # Only reached for what the class does not define: the reads, straight through.
        if name in READS:
            return getattr(self.inner, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    async def admit(self, messages: int) -> Broker:
        """Wait for the pacer's turn for `messages`, and return the broker that sends them
        without pacing again: for a caller that must look at something (the kill switch) at
        the moment its order leaves the queue (see `actors/execution/wall.py`)."""
        await self.pacer.acquire(messages)
        return self.inner

    async def place(self, req: AnyOrderRequest) -> PlacedOrder:
        await self.pacer.acquire(order_messages(req))
        return await self.inner.place(req)

    async def cancel_order(self, order_id: int) -> CancelResult:
        await self.pacer.acquire(1)
        return await self.inner.cancel_order(order_id)

    async def close_position(
        self,
        symbol: str,
        *,
        quantity: int | None = None,
        order_type: OrderType = OrderType.MKT,
        limit_price: Decimal | None = None,
    ) -> PlacedOrder:
        await self.pacer.acquire(1)
        return await self.inner.close_position(
            symbol, quantity=quantity, order_type=order_type, limit_price=limit_price
        )

    async def protect_position(
        self,
        symbol: str,
        *,
        stop_loss: Decimal,
        take_profit: Decimal | None = None,
        quantity: int | None = None,
        replace_existing: bool = True,
    ) -> ProtectionPlaced:
        cost = protect_messages(
            take_profit=take_profit is not None, replace_existing=replace_existing
        )
        await self.pacer.acquire(cost)
        return await self.inner.protect_position(
            symbol,
            stop_loss=stop_loss,
            take_profit=take_profit,
            quantity=quantity,
            replace_existing=replace_existing,
        )


async def admitted(broker: Broker, messages: int) -> Broker:
    """`broker`'s pacer admitted `messages` (at once if it is not paced): the broker to send
    them through."""
    if isinstance(broker, PacedBroker):
        return await broker.admit(messages)
    return broker


def paced(broker: Broker, pacer: Pacer) -> Broker:
    """`broker` behind `pacer`, unless it already is behind one (never paced twice)."""
    if isinstance(broker, PacedBroker):
        return broker
    return PacedBroker(broker, pacer)


if TYPE_CHECKING:
    # mypy checks here that the wrapper satisfies the seam the actors depend on.
    def _satisfies_broker(broker: PacedBroker) -> Broker:
        return broker
