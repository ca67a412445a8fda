"""The pacer: never more than the limit in any window, FIFO, nothing dropped; PacedBroker paces
every order-sending call and nothing else. A fake clock that only moves when a caller sleeps
makes every assertion exact (no timing)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import anyio
import pytest

from trade_executor.broker.pacing import (
    BRACKET_MESSAGES,
    PacedBroker,
    Pacer,
    order_messages,
    paced,
)
from trade_executor.broker.protocol import ORDERS, READS, Broker
from trade_executor.domain.models import (
    Action,
    BracketOrderRequest,
    BrokerStatus,
    CancelResult,
    OrderRequest,
    OrderType,
    PlacedOrder,
    ProtectionPlaced,
)

# The core's tests run on trio too (tests/conftest.py, `both_backends`).
pytestmark = [pytest.mark.anyio, pytest.mark.both_backends]


class FakeTime:
    """A clock that moves only when someone sleeps on it; sleepers wake in deadline order."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now = max(self.now, self.now + max(0.0, seconds))
        await anyio.lowlevel.checkpoint()


def windows_within(times: list[tuple[float, int]], limit: int, window: float) -> bool:
    """No window [t, t + window) starting at an admission holds more than `limit` messages."""
    for start, _ in times:
        inside = sum(cost for at, cost in times if start <= at < start + window)
        if inside > limit:
            return False
    return True


def bracket(symbol: str = "AAPL") -> BracketOrderRequest:
    return BracketOrderRequest(
        symbol=symbol,
        action=Action.BUY,
        quantity=10,
        entry_order_type=OrderType.LMT,
        entry_limit_price=Decimal("150.00"),
        stop_loss=Decimal("145.00"),
        take_profit=Decimal("160.00"),
    )


def plain(symbol: str = "AAPL") -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        action=Action.BUY,
        quantity=10,
        order_type=OrderType.LMT,
        limit_price=Decimal("150.00"),
    )


def test_a_bracket_is_three_messages_and_a_plain_order_one() -> None:
    assert order_messages(bracket()) == BRACKET_MESSAGES == 3
    assert order_messages(plain()) == 1


async def test_a_burst_of_brackets_never_exceeds_the_limit_in_any_window() -> None:
    time = FakeTime()
    waits: list[float] = []
    pacer = Pacer(45, window=1.0, clock=time.clock, sleep=time.sleep, on_wait=waits.append)
    admitted: list[tuple[float, int]] = []

    async def send(cost: int) -> None:
        await pacer.acquire(cost)
        admitted.append((time.now, cost))

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(send, 3)

    assert len(admitted) == 100  # nothing dropped
    assert windows_within(admitted, 45, 1.0)
    # Spaced evenly, 3/45 s apart: 15 brackets a second, never a whole second's worth at once.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(admitted)]
    assert gaps == pytest.approx([3 / 45] * 99, abs=1e-5)
    assert len(waits) == 100 and waits[0] == 0.0 and max(waits) == pytest.approx(99 * 3 / 45)


async def test_callers_are_admitted_in_the_order_they_arrived() -> None:
    time = FakeTime()
    pacer = Pacer(4, window=1.0, clock=time.clock, sleep=time.sleep)
    order: list[str] = []

    async def send(name: str, cost: int) -> None:
        await pacer.acquire(cost)
        order.append(name)

    async with anyio.create_task_group() as tg:
        # A bracket that does not fit is not overtaken by plain orders that would.
        for name, cost in [("a", 3), ("b", 3), ("c", 1), ("d", 1), ("e", 3)]:
            tg.start_soon(send, name, cost)
            await anyio.lowlevel.checkpoint()  # arrive one after the other

    assert order == ["a", "b", "c", "d", "e"]


async def test_a_cancelled_waiter_takes_nothing_from_the_limit() -> None:
    time = FakeTime()
    pacer = Pacer(3, window=1.0, clock=time.clock, sleep=time.sleep)
    await pacer.acquire(3)
    with anyio.move_on_after(0) as scope:  # cancelled at its first wait
        await pacer.acquire(3)
    assert scope.cancelled_caught
    assert pacer.in_window == 3
    await pacer.acquire(3)  # admitted once the first three leave the window, not later
    assert time.now == pytest.approx(1.0)


async def test_small_messages_fill_the_window_evenly() -> None:
    time = FakeTime()
    pacer = Pacer(4, window=1.0, clock=time.clock, sleep=time.sleep)
    admitted = []
    for _ in range(8):
        await pacer.acquire(1)
        admitted.append(time.now)
    assert admitted == pytest.approx([0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75])


async def test_a_cost_above_the_limit_is_counted_as_the_limit() -> None:
    time = FakeTime()
    pacer = Pacer(2, window=1.0, clock=time.clock, sleep=time.sleep)
    await pacer.acquire(5)
    assert pacer.in_window == 2


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(0)


class Recording:
    """A Broker stand-in that records which calls reached it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return {
                "place": PlacedOrder(1, (2, 3)),
                "cancel_order": CancelResult(True, 1, BrokerStatus.CANCELLED),
                "close_position": PlacedOrder(4),
                "protect_position": ProtectionPlaced((5,), ()),
                "orders": [],
                "positions": [],
            }.get(name)

        return call


async def test_every_order_sending_call_is_paced_and_reads_are_not() -> None:
    time = FakeTime()
    pacer = Pacer(50, window=1.0, clock=time.clock, sleep=time.sleep)
    inner = Recording()
    broker = PacedBroker(inner, pacer)

    await broker.place(bracket())
    assert pacer.in_window == 3
    await broker.place(plain())
    assert pacer.in_window == 4
    await broker.cancel_order(1)
    assert pacer.in_window == 5
    await broker.close_position("AAPL")
    assert pacer.in_window == 6
    await broker.protect_position(
        "AAPL", stop_loss=Decimal(145), take_profit=Decimal(160), replace_existing=True
    )
    assert pacer.in_window == 10  # stop + take-profit + the two it may replace
    await broker.orders()
    await broker.positions()
    assert pacer.in_window == 10
    assert inner.calls == [
        "place",
        "place",
        "cancel_order",
        "close_position",
        "protect_position",
        "orders",
        "positions",
    ]


class Reads:
    """Only the bridge's reads: what the wrapper must hand through unwrapped."""

    async def orders(self) -> list[Any]:
        return []


def test_reads_are_the_wrapped_brokers_own_and_nothing_else_passes() -> None:
    inner = Reads()
    broker = PacedBroker(inner, Pacer(50))  # type: ignore[arg-type]
    assert broker.orders == inner.orders  # the bound method itself: no forwarder, no pacer
    with pytest.raises(AttributeError):
        broker.order_index  # noqa: B018  (not an endpoint: `orderbook.order_index(broker)`)
    assert READS.isdisjoint(vars(PacedBroker))


def test_every_order_message_has_its_paced_method() -> None:
    """A new order-sending endpoint in `BrokerOrders` must be paced here, not slip through."""
    assert set(vars(PacedBroker)) >= ORDERS


def test_the_seam_is_the_bridges_endpoints_only() -> None:
    """What is built on the endpoints (locating, indexing, matching) is a function over a
    `Broker`, never a method of it."""
    endpoints = READS | ORDERS
    assert endpoints == {
        *("health", "capabilities", "account", "positions", "order_status", "orders"),
        *("place", "cancel_order", "close_position", "protect_position"),
    }
    assert not [n for n in vars(Broker) if not n.startswith("_")]


def test_a_broker_is_never_paced_twice() -> None:
    pacer = Pacer(45)
    once = paced(Recording(), pacer)
    assert paced(once, Pacer(10)) is once


async def test_the_real_clock_paces_too() -> None:
    """The defaults (anyio's clock): a second message past the limit waits for the window."""
    pacer = Pacer(1, window=0.05)
    await pacer.acquire()
    waited = await pacer.acquire()
    assert waited > 0
