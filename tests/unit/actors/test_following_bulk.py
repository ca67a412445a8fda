"""One status read for all working orders (CONTRACT section 5, issue 12): with 1,000 orders
working, the bridge sees one `GET /orders` per ORDER_POLL_INTERVAL and a `GET /orders/{id}` only
where the contract allows one (an order missing from the list, the second read of a `Cancelled`
answer); a fill is recorded from the first list read after it.

Memory store, the jax paper bridge (its sleeps off) over real HTTP in this event loop, both
backends. What the bridge saw comes from its request log (`GET /admin/requests`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import anyio
import pytest

from tests.support import paper_config, paper_in_this_loop
from trade_executor.actors.following import PollerPool
from trade_executor.broker.client import BrokerClient
from trade_executor.config.sources import load_settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import Action, OrderRequest, OrderType
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.observability.metrics import Metrics
from trade_executor.store.protocol import Claimed
from trade_executor_dev.paper import Faults
from trade_executor_dev.testing import MemoryStore

pytestmark = pytest.mark.anyio

ORDERS = 1_000
INTERVAL = 0.5
MISSING_ORDER_ID = 9_000_000  # an order this bridge never had
DEADLINE = 60.0  # guards against a hang only


async def working(store: MemoryStore, order_id: int, symbol: str) -> Execution:
    signal_id = store.add_signal(symbol)
    approval_id = store.add_approval(signal_id, notify=False)
    claim = await store.claim(approval_id, uuid4(), f"te-bulk-{order_id}")
    assert isinstance(claim, Claimed)
    now = datetime.now(UTC)
    plan = Changes(quantity=10, entry_price=Decimal(150), attempted_at=now)
    await store.apply(claim.execution.id, Transition.BEGIN_SUBMIT, plan)
    placed = Changes(order_id=order_id, submitted_at=now, broker_status="Submitted")
    return await store.apply(claim.execution.id, Transition.ACCEPT, placed)


async def place_all(broker: BrokerClient, symbols: list[str]) -> list[int]:
    ids: dict[str, int] = {}
    limiter = anyio.CapacityLimiter(8)

    async def one(symbol: str) -> None:
        async with limiter:
            request = OrderRequest(symbol, Action.BUY, 10, OrderType.LMT, Decimal(150))
            ids[symbol] = (await broker.place(request)).order_id

    async with anyio.create_task_group() as tg:
        for symbol in symbols:
            tg.start_soon(one, symbol)
    return [ids[symbol] for symbol in symbols]


def state_of(store: MemoryStore, execution: Execution) -> ExecutionState | None:
    now = store.execution_of(execution.signal_id)
    return None if now is None else now.state


def list_reads(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in log if (r["method"], r["path"]) == ("GET", "/orders")]


async def test_a_thousand_working_orders_cost_one_list_read_per_interval() -> None:
    config = paper_config(profile="jax", faults=Faults(latency_scale=0.0))
    knobs = load_settings(
        order_poll_interval=INTERVAL,
        order_poll_timeout=600,
        cancelled_recheck_delay=0.05,
        sweep_interval=600,
    )
    async with (
        paper_in_this_loop(config) as paper,
        BrokerClient(paper.url, 5, read_retries=1, backoff_base=0.0, max_connections=4) as broker,
    ):
        symbols = [f"B{n:04d}" for n in range(ORDERS)]
        order_ids = await place_all(broker, symbols)
        # One more order that IB reports `Cancelled` once although it goes on working (10349).
        await paper.set_faults(cancelled_before_fill=1.0, cancelled_reads=1)
        [phantom] = await place_all(broker, ["PHANTOM"])
        await paper.set_faults(cancelled_before_fill=0.0)

        store = MemoryStore()
        pool = PollerPool(knobs, store, broker, Metrics(), lambda _: None)
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            followed = [await working(store, i, s) for i, s in zip(order_ids, symbols, strict=True)]
            followed.append(await working(store, phantom, "PHANTOM"))
            followed.append(await working(store, MISSING_ORDER_ID, "GONE"))
            await paper.call("DELETE", "/admin/requests")
            for execution in followed:
                pool.follow(execution)

            with anyio.fail_after(DEADLINE):
                while pool.stats.list_reads < 4:
                    await anyio.sleep(0.01)
                target = followed[ORDERS // 2]
                assert await paper.set_price(target.symbol or "", "149") == [target.order_id]
                filled_at = datetime.now(UTC)
                while state_of(store, target) is not ExecutionState.FILLED:
                    await anyio.sleep(0.005)
                while pool.stats.list_reads < 7:
                    await anyio.sleep(0.01)
            assert pool.active == ORDERS + 1  # every other order is still followed
            tg.cancel_scope.cancel()
        # The pool stopped: the log holds every read it counted, and at most one it started
        # whose answer the cancellation cut off (on a loaded machine the log was once read
        # while a list read was still on its way back).
        log = (await paper.call("GET", "/admin/requests"))["requests"]

    lists = list_reads(log)
    others = [r for r in log if r not in lists]
    # Per-order reads only where allowed: the order the list lacks (each interval) and the
    # second read of the phantom Cancelled (once). Nothing else was asked or sent.
    assert {r["path"] for r in others} == {f"/orders/{MISSING_ORDER_ID}", f"/orders/{phantom}"}
    assert all(r["method"] == "GET" for r in others)
    assert [r["path"] for r in others].count(f"/orders/{phantom}") == 1
    assert len(others) - 1 <= len(lists)  # the missing order: one read per list read at most
    # One list read per interval: n reads started at least one interval apart span (n-1)
    # intervals; arrival times may lag their start by less than an interval.
    span = float(lists[-1]["received_at"] - lists[0]["received_at"])
    assert len(lists) <= span / INTERVAL + 2
    assert pool.stats.list_reads <= len(lists) <= pool.stats.list_reads + 1
    # The fill was recorded from the first list read after it, before the second one arrived.
    [fill_event] = [e for e in store.events_of(target.id) if e.kind == "order.filled"]
    after_fill = [datetime.fromisoformat(r["received_wall"]) for r in lists]
    after_fill = [at for at in after_fill if at > filled_at]
    assert len(after_fill) >= 2 and fill_event.at < after_fill[1]
