"""Following orders against the paper bridge over real HTTP, in this event loop (both backends):
the jax profile (the real bridge's behaviour, its sleeps scaled down) and the legacy one.

What the bridge saw is read from its request log (`GET /admin/requests`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import anyio
import pytest

from tests.support import PaperServer, paper_config, paper_in_this_loop
from trade_executor.actors.following import BracketChildren, PollerPool
from trade_executor.actors.messages import OrderProgress, OrderStatusLost
from trade_executor.broker.client import BrokerClient
from trade_executor.config.sources import Settings, load_settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import (
    Action,
    BracketOrderRequest,
    BrokerStatus,
    CancelResult,
    OrderRequest,
    OrderType,
)
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.observability.metrics import Metrics
from trade_executor.store.protocol import Claimed
from trade_executor_dev.paper import Faults
from trade_executor_dev.testing import MemoryStore

pytestmark = pytest.mark.anyio

S = ExecutionState
DEADLINE = 20.0  # guards against a hang; nothing here asserts a speed
INTERVAL = 0.05


def jax(**faults: Any) -> Any:
    return paper_config(profile="jax", faults=Faults(latency_scale=0.01, **faults))


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "order_poll_interval": INTERVAL,
        "order_poll_timeout": 30,
        "cancelled_recheck_delay": 0.02,
        "sweep_interval": 600,
        **overrides,
    }
    return load_settings(**values)


class Clock:
    """A wall clock the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class Reports:
    progress: list[OrderProgress] = field(default_factory=list)
    lost: list[OrderStatusLost] = field(default_factory=list)


@asynccontextmanager
async def client(paper: PaperServer, cls: type[BrokerClient] = BrokerClient) -> Any:
    async with cls(paper.url, 5, read_retries=1, backoff_base=0.0, max_connections=4) as broker:
        yield broker


@asynccontextmanager
async def following(
    store: MemoryStore, broker: BrokerClient, knobs: Settings, **kw: Any
) -> AsyncIterator[tuple[PollerPool, Reports]]:
    reports = Reports()
    pool = PollerPool(
        knobs, store, broker, Metrics(), reports.progress.append,
        report_lost=reports.lost.append, **kw,
    )  # fmt: skip
    async with anyio.create_task_group() as tg:
        await tg.start(pool.run)
        yield pool, reports
        tg.cancel_scope.cancel()


async def working(
    store: MemoryStore, order_id: int, symbol: str, quantity: int, submitted_at: datetime
) -> Execution:
    """A `submitted` execution for an order already at the bridge."""
    signal_id = store.add_signal(symbol)
    approval_id = store.add_approval(signal_id, notify=False)
    claim = await store.claim(approval_id, uuid4(), f"te-follow-{order_id}")
    assert isinstance(claim, Claimed)
    plan = Changes(quantity=quantity, entry_price=Decimal(150), attempted_at=submitted_at)
    await store.apply(claim.execution.id, Transition.BEGIN_SUBMIT, plan)
    placed = Changes(order_id=order_id, submitted_at=submitted_at, broker_status="Submitted")
    return await store.apply(claim.execution.id, Transition.ACCEPT, placed)


async def place(broker: BrokerClient, symbol: str, quantity: int = 10) -> int:
    request = OrderRequest(symbol, Action.BUY, quantity, OrderType.LMT, Decimal(150))
    return (await broker.place(request)).order_id


async def until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(DEADLINE):
        while not predicate():
            await anyio.sleep(0.005)


async def seen_by_bridge(paper: PaperServer) -> list[str]:
    log = await paper.call("GET", "/admin/requests")
    return [f"{r['method']} {r['path']}" for r in log["requests"]]


def execution(store: MemoryStore, followed: Execution) -> Execution:
    """The row as it is now."""
    found = store.execution_of(followed.signal_id)
    assert found is not None
    return found


def kinds(store: MemoryStore, execution_id: Any) -> list[str]:
    return [e.kind for e in store.events_of(execution_id)]


# -- the timeout reads first (issue 11, reproduction 1) -------------------------------------------


async def test_a_fill_just_before_the_timeout_is_recorded_filled_and_nothing_is_cancelled() -> None:
    clock = Clock()
    async with paper_in_this_loop(jax()) as paper, client(paper) as broker:
        order_id = await place(broker, "EDGE")
        store = MemoryStore()
        async with following(store, broker, settings(order_poll_timeout=60), clock=clock) as (
            pool,
            reports,
        ):
            followed = await working(store, order_id, "EDGE", 10, clock())
            pool.follow(followed, first_in=0)
            await until(lambda: pool.stats.list_reads >= 2)
            assert await paper.set_price("EDGE", "149") == [order_id]
            clock.advance(61)  # the fill landed in the last second before ORDER_POLL_TIMEOUT
            await until(lambda: pool.active == 0)
        requests = await seen_by_bridge(paper)

    final = execution(store, followed)
    assert (final.state, final.filled_qty, final.avg_fill_price) == (S.FILLED, 10, Decimal(149))
    assert not [r for r in requests if r.startswith("DELETE")]
    assert "poller.cancel_failed" not in kinds(store, followed.id)
    assert reports.progress[-1] == OrderProgress(followed.id, 10, final=True)


class FillsBeforeCancel(BrokerClient):
    """The order fills between the timeout's status read and its cancel."""

    paper: PaperServer
    symbol: str

    async def cancel_order(self, order_id: int) -> CancelResult:
        await self.paper.set_price(self.symbol, "149")
        return await super().cancel_order(order_id)


async def test_a_fill_between_the_read_and_the_cancel_is_read_again_and_recorded_once() -> None:
    async with paper_in_this_loop(jax()) as paper, client(paper, FillsBeforeCancel) as broker:
        broker.paper, broker.symbol = paper, "RACE"
        order_id = await place(broker, "RACE")
        store = MemoryStore()
        async with following(store, broker, settings(order_poll_timeout=0.3)) as (pool, reports):
            followed = await working(store, order_id, "RACE", 10, datetime.now(UTC))
            pool.follow(followed, first_in=0)
            await until(lambda: pool.active == 0)
        requests = await seen_by_bridge(paper)

    final = execution(store, followed)
    assert (final.state, final.filled_qty) == (S.FILLED, 10)
    assert requests.count(f"DELETE /orders/{order_id}") == 1  # refused: it had filled
    [refused] = [e for e in store.events_of(followed.id) if e.kind == "poller.cancel_failed"]
    assert "not cancellable from status Filled" in refused.detail["error"]
    assert [p.final for p in reports.progress] == [True] and reports.lost == []


# -- the bridge forgets its orders (issue 11, reproduction 5) ------------------------------------


async def test_a_forgotten_order_ends_unknown_after_three_refused_cancels_and_stops() -> None:
    async with paper_in_this_loop(jax()) as paper, client(paper) as broker:
        order_id = await place(broker, "FORGOT")
        store = MemoryStore()
        async with following(store, broker, settings(order_poll_timeout=0.3)) as (pool, reports):
            followed = await working(store, order_id, "FORGOT", 10, datetime.now(UTC))
            pool.follow(followed, first_in=0)
            await until(lambda: pool.stats.list_reads >= 1)
            await paper.call("POST", "/admin/restart", {"client_id_changed": True})
            await until(lambda: pool.active == 0)
            given_up = await seen_by_bridge(paper)
            events = kinds(store, followed.id)
            await anyio.sleep(10 * INTERVAL)  # nothing more happens for this order
            later = await seen_by_bridge(paper)

    final = execution(store, followed)
    assert final.state is S.UNKNOWN and final.reason is not None
    assert final.reason.startswith("status_lost: the bridge answers Unknown for order")
    assert "after 3 cancel attempts" in final.reason and "not found" in final.reason
    assert given_up.count(f"DELETE /orders/{order_id}") == 3
    assert events.count("poller.cancel_failed") == 3 and events[-1] == "order.status_lost"
    assert later == given_up and kinds(store, followed.id) == events
    assert not [p for p in reports.progress if p.final]  # its risk and symbol stay held
    assert reports.lost == [OrderStatusLost(followed.id, 0, final.reason)]


async def test_a_forgotten_order_left_to_the_broker_ends_unknown_with_its_fills_kept() -> None:
    async with paper_in_this_loop(jax(partial_fill_qty=4)) as paper, client(paper) as broker:
        order_id = await place(broker, "KEEP")
        store = MemoryStore()
        knobs = settings(order_poll_timeout=0.3, order_timeout_action="leave")
        async with following(store, broker, knobs, lost_grace=0.2) as (pool, reports):
            followed = await working(store, order_id, "KEEP", 10, datetime.now(UTC))
            pool.follow(followed, first_in=0)
            assert await paper.set_price("KEEP", "149") == [order_id]  # 4 of 10 fill
            await until(lambda: execution(store, followed).filled_qty == 4)
            await paper.call("POST", "/admin/restart", {"client_id_changed": True})
            await until(lambda: pool.active == 0)
        requests = await seen_by_bridge(paper)

    final = execution(store, followed)
    assert (final.state, final.filled_qty) == (S.UNKNOWN, 4)  # Unknown never overwrites fills
    assert final.reason is not None and final.reason.startswith("status_lost: ")
    assert "Unknown" in final.reason
    assert not [r for r in requests if r.startswith("DELETE")]  # leave: never cancelled
    assert not [p for p in reports.progress if p.final] and len(reports.lost) == 1


# -- IB's Cancelled for an order that filled (error 10349) ---------------------------------------


async def test_cancelled_then_filled_on_the_second_read_is_recorded_filled() -> None:
    config = jax(cancelled_before_fill=1.0, cancelled_reads=1)
    async with paper_in_this_loop(config) as paper, client(paper) as broker:
        order_id = await place(broker, "PHANTOM")
        await paper.set_faults(cancelled_before_fill=0.0)
        assert await paper.set_price("PHANTOM", "149") == [order_id]  # it really filled
        store = MemoryStore()
        async with following(store, broker, settings()) as (pool, reports):
            followed = await working(store, order_id, "PHANTOM", 10, datetime.now(UTC))
            pool.follow(followed, first_in=0)
            await until(lambda: pool.active == 0)
        requests = await seen_by_bridge(paper)

    final = execution(store, followed)
    assert (final.state, final.filled_qty, final.broker_status) == (S.FILLED, 10, "Filled")
    first_list = requests.index("GET /orders", requests.index("POST /orders"))
    assert requests[first_list + 1 :].count(f"GET /orders/{order_id}") == 1  # the second read
    assert reports.progress == [OrderProgress(followed.id, 10, final=True)]


# -- a bridge without the list (before March 2026) ----------------------------------------------


async def test_a_legacy_bridge_is_followed_one_order_at_a_time() -> None:
    async with paper_in_this_loop(paper_config(profile="legacy")) as paper, client(paper) as broker:
        await paper.set_faults(latency_scale=0.01)
        order_id = await place(broker, "OLD")
        store = MemoryStore()
        async with following(store, broker, settings()) as (pool, reports):
            followed = await working(store, order_id, "OLD", 10, datetime.now(UTC))
            pool.follow(followed, first_in=0)
            await until(lambda: not pool.uses_order_list)
            await until(lambda: pool.stats.order_reads >= 2)
            assert await paper.set_price("OLD", "149") == [order_id]
            await until(lambda: pool.active == 0)
        requests = await seen_by_bridge(paper)

    final = execution(store, followed)
    assert (final.state, final.filled_qty) == (S.FILLED, 10)
    assert requests.count("GET /orders") == 1  # the answer that said there is no list
    assert requests.count(f"GET /orders/{order_id}") >= 3
    assert reports.progress[-1] == OrderProgress(followed.id, 10, final=True)


async def test_a_legacy_bridge_without_cancel_keeps_following_after_the_timeout() -> None:
    async with paper_in_this_loop(paper_config(profile="legacy")) as paper, client(paper) as broker:
        await paper.set_faults(latency_scale=0.01)
        order_id = await place(broker, "NODEL")
        store = MemoryStore()
        knobs = settings(order_poll_timeout=0.2)
        async with following(store, broker, knobs, order_list=False) as (pool, _):
            followed = await working(store, order_id, "NODEL", 10, datetime.now(UTC))
            pool.follow(followed, first_in=0)
            await until(lambda: "poller.cancel_failed" in kinds(store, followed.id))
            reads = pool.stats.order_reads
            await until(lambda: pool.stats.order_reads >= reads + 3)
            assert await paper.set_price("NODEL", "149") == [order_id]
            await until(lambda: pool.active == 0)
        requests = await seen_by_bridge(paper)

    assert execution(store, followed).state is S.FILLED
    assert requests.count(f"DELETE /orders/{order_id}") == 1  # 404/405: never tried again
    assert "GET /orders" not in requests  # told there is no list: never asked


# -- the bracket children, from the same list ----------------------------------------------------


async def test_each_list_read_exposes_the_bracket_childrens_statuses() -> None:
    seen: list[BracketChildren] = []
    async with paper_in_this_loop(jax()) as paper, client(paper) as broker:
        request = BracketOrderRequest(
            "KIDS", Action.BUY, 10, OrderType.LMT, Decimal(145), Decimal(160), Decimal(150)
        )
        placed = await broker.place(request)
        store = MemoryStore()
        async with following(store, broker, settings(), on_children=seen.append) as (pool, _):
            followed = await working(store, placed.order_id, "KIDS", 10, datetime.now(UTC))
            pool.follow(followed, first_in=0)
            await until(lambda: len(seen) >= 1)
            assert await paper.set_price("KIDS", "149") == [placed.order_id]
            await until(lambda: pool.active == 0)
            reads = pool.stats.list_reads
        requests = await seen_by_bridge(paper)

    first = seen[0].of(placed.order_id)
    assert sorted(c.order_id for c in first) == sorted(placed.child_order_ids)
    assert {c.parent_id for c in first} == {placed.order_id}
    assert {c.order_type for c in first} == {"STP", "LMT"}
    assert all(c.status is not BrokerStatus.UNKNOWN and c.filled_qty == 0 for c in first)
    assert len(seen) == reads  # one per list read: no request of their own
    assert not [r for r in requests if r.startswith("GET /orders/")]
