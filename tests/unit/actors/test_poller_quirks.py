"""Pollers against a scripted bridge (httpx.MockTransport): the quirks of CONTRACT section 7 and
the timeout actions, on both anyio backends (MemoryStore: no asyncpg)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import anyio
import httpx
import pytest

from trade_executor.actors.following import PollerPool
from trade_executor.actors.messages import OrderProgress
from trade_executor.broker.client import BrokerClient
from trade_executor.config.sources import load_settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.observability.metrics import Metrics
from trade_executor.store.protocol import Claimed
from trade_executor_dev.testing import MemoryStore

pytestmark = pytest.mark.anyio

ORDER_ID = 7


class ScriptedBridge:
    """Answers GET /orders/7 from a script (the last answer repeats) and records requests. It
    has no order list (`GET /orders` is 404, as on a bridge from before March 2026), so the
    pollers read the order on its own: the script is what each read sees."""

    def __init__(
        self, statuses: list[tuple[str, int]], after_cancel: tuple[str, int] | None = None
    ) -> None:
        self._statuses: Iterator[tuple[str, int]] = iter(statuses)
        self._last = statuses[-1]
        self._after_cancel = after_cancel
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if request.url.path == "/orders":
            return httpx.Response(404, json={"detail": "Not Found"})
        if request.method == "DELETE":
            if self._after_cancel is not None:
                self._statuses, self._last = iter([]), self._after_cancel
            body: dict[str, Any] = {
                "success": True, "order_id": ORDER_ID, "status": "PendingCancel", "message": "ok",
            }  # fmt: skip
            return httpx.Response(200, json=body)
        status, filled = next(self._statuses, self._last)
        self._last = (status, filled)
        text = json.dumps(
            {
                "order_id": ORDER_ID,
                "status": status,
                "filled_qty": filled,
                "avg_fill_price": 150.25 if filled else 0.0,
                "last_update": "2026-01-02T15:04:05Z",
            }
        )
        return httpx.Response(200, content=text, headers={"content-type": "application/json"})


async def submitted_execution(
    store: MemoryStore, quantity: int = 100, order_id: int = ORDER_ID
) -> Execution:
    signal_id = store.add_signal(f"Q{order_id}")
    approval_id = store.add_approval(signal_id, notify=False)
    claim = await store.claim(approval_id, uuid4(), f"te-quirk-{order_id}")
    assert isinstance(claim, Claimed)
    plan = Changes(quantity=quantity, entry_price=Decimal(150), attempted_at=datetime.now(UTC))
    assert await store.apply(claim.execution.id, Transition.BEGIN_SUBMIT, plan) is not None
    placed = Changes(order_id=order_id, submitted_at=datetime.now(UTC), broker_status="Submitted")
    execution = await store.apply(claim.execution.id, Transition.ACCEPT, placed)
    assert execution is not None
    return execution


async def follow(
    script: list[tuple[str, int]],
    after_cancel: tuple[str, int] | None = None,
    **overrides: Any,
) -> tuple[Execution, list[OrderProgress], ScriptedBridge, MemoryStore]:
    knobs: dict[str, Any] = {
        "order_poll_interval": 0.01,
        "order_poll_timeout": 30,
        "cancelled_recheck_delay": 0.01,
        **overrides,
    }
    settings = load_settings(**knobs)
    store = MemoryStore()
    bridge = ScriptedBridge(script, after_cancel)
    reports: list[OrderProgress] = []
    done = anyio.Event()

    def report(progress: OrderProgress) -> None:
        reports.append(progress)
        if progress.final:
            done.set()

    transport = httpx.MockTransport(bridge)
    async with BrokerClient("http://bridge", 2, transport=transport) as broker:
        pool = PollerPool(settings, store, broker, Metrics(), report)
        execution = await submitted_execution(store)
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            pool.follow(execution)
            with anyio.fail_after(10):
                if overrides.get("order_timeout_action") == "leave":
                    while pool.active:
                        await anyio.sleep(0.01)
                else:
                    await done.wait()
            tg.cancel_scope.cancel()
    final = await store.get_execution(execution.id)
    assert final is not None
    return final, reports, bridge, store


async def test_a_cancelled_answer_is_read_again_and_a_late_fill_wins() -> None:
    final, reports, bridge, _ = await follow([("Cancelled", 0), ("Filled", 100)])
    assert final.state is ExecutionState.FILLED and final.filled_qty == 100
    assert final.avg_fill_price == Decimal("150.25")
    assert reports[-1] == OrderProgress(final.id, 100, final=True)
    assert bridge.requests.count(f"GET /orders/{ORDER_ID}") == 2


async def test_unknown_never_overwrites_fills_and_is_never_final() -> None:
    final, reports, _, store = await follow(
        [("Submitted", 40), ("Unknown", 0), ("Unknown", 0), ("Filled", 100)]
    )
    assert final.state is ExecutionState.FILLED and final.filled_qty == 100
    progress = [r.filled_qty for r in reports]
    assert progress == [40, 100]  # nothing recorded for the Unknown answers
    assert all(e.detail.get("broker_status") != "Unknown" for e in store.events_of(final.id))


async def test_a_poll_timeout_cancels_and_records_the_partial_fill() -> None:
    final, reports, bridge, store = await follow(
        [("Submitted", 0)], ("Cancelled", 30), order_poll_timeout=0.05
    )
    assert f"DELETE /orders/{ORDER_ID}" in bridge.requests
    assert final.state is ExecutionState.CANCELLED and final.filled_qty == 30
    assert final.reason == "broker: Cancelled"
    assert reports[-1] == OrderProgress(final.id, 30, final=True)
    assert "poller.timeout" in [e.kind for e in store.events_of(final.id)]


async def test_leave_on_timeout_sends_no_cancel() -> None:
    final, reports, bridge, store = await follow(
        [("Submitted", 0)], order_poll_timeout=0.05, order_timeout_action="leave"
    )
    assert not any(r.startswith("DELETE") for r in bridge.requests)
    assert final.state is ExecutionState.SUBMITTED
    assert "poller.timeout" in [e.kind for e in store.events_of(final.id)]
    assert not any(r.final for r in reports)


async def test_polls_in_flight_are_bounded_and_every_order_is_polled() -> None:
    in_flight = 0
    most = 0
    polled: set[str] = set()

    async def slow_bridge(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await anyio.sleep(0.005)
        in_flight -= 1
        polled.add(request.url.path)
        body = {"order_id": 1, "status": "Submitted", "filled_qty": 0, "avg_fill_price": 0.0}
        return httpx.Response(200, json=body)

    settings = load_settings(
        order_poll_interval=0.05, order_poll_timeout=300, order_poll_concurrency=3
    )
    store = MemoryStore()
    orders = 4 * settings.order_poll_concurrency
    async with BrokerClient(
        "http://bridge", 2, transport=httpx.MockTransport(slow_bridge)
    ) as broker:
        pool = PollerPool(settings, store, broker, Metrics(), lambda _: None)
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            for number in range(orders):
                execution = await submitted_execution(store, order_id=1000 + number)
                pool.follow(execution, first_in=0)
            with anyio.fail_after(10):
                while len(polled) < orders:
                    await anyio.sleep(0.01)
            assert pool.active == orders
            tg.cancel_scope.cancel()
    assert 1 < most <= settings.order_poll_concurrency
