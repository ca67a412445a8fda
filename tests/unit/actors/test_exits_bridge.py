"""Exits against the paper bridge's jax profile over real HTTP, on both anyio backends.

The actors are wired by `build_actors` exactly as the service wires them, on the memory store;
the paper bridge runs in this event loop with its sleeps scaled down. Prices move only when a
test says. What the bridge was asked is read from its request log (`/admin/requests`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import anyio
import pytest
from structlog.testing import capture_logs

from tests.support import PaperServer, paper_config, paper_in_this_loop
from trade_executor.actors.exits.flatten import instance_rules_from
from trade_executor.actors.supervisor import Supervisor
from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerRejected
from trade_executor.config.sources import load_settings
from trade_executor.domain.execution import Execution
from trade_executor.domain.models import ProtectionPlaced
from trade_executor.domain.states import ExecutionState
from trade_executor.observability.metrics import Metrics
from trade_executor.service.wiring import Actors, build_actors
from trade_executor_dev.paper import Faults
from trade_executor_dev.testing import MemoryStore

pytestmark = pytest.mark.anyio

S = ExecutionState
DEADLINE = 20.0  # guards against a hang; nothing here asserts a speed
INTERVAL = 0.05


class Clock:
    """The wall clock, moved forward when a test says."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@dataclass
class Running:
    paper: PaperServer
    store: MemoryStore
    actors: Actors
    metrics: Metrics

    async def enter(
        self, symbol: str, side: str = "BUY", entry: str = "150", stop: str = "145",
        target: str = "160",
    ) -> Execution:  # fmt: skip
        """Approve a signal and fill its entry at its price: the position is open."""
        signal_id = self.store.add_signal(symbol, side, entry, stop, target)
        self.store.add_approval(signal_id)
        await until(lambda: _state(self.store, signal_id) is S.SUBMITTED)
        await self.paper.set_price(symbol, entry)
        return await self.position(signal_id, "open")

    async def position(self, signal_id: UUID, state: str) -> Execution:
        await until(lambda: _row(self.store, signal_id).position_state == state)
        return _row(self.store, signal_id)

    async def requests(self) -> list[dict[str, Any]]:
        return list((await self.paper.call("GET", "/admin/requests"))["requests"])


def _row(store: MemoryStore, signal_id: UUID) -> Execution:
    execution = store.execution_of(signal_id)
    assert execution is not None
    return execution


def _state(store: MemoryStore, signal_id: UUID) -> ExecutionState | None:
    execution = store.execution_of(signal_id)
    return None if execution is None else execution.state


async def until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(DEADLINE):
        while not predicate():
            await anyio.sleep(0.005)


def jax(**faults: Any) -> Any:
    return paper_config(profile="jax", faults=Faults(latency_scale=0.01, **faults))


@asynccontextmanager
async def paper(**faults: Any) -> AsyncIterator[PaperServer]:
    async with paper_in_this_loop(jax(**faults)) as server:
        yield server


@asynccontextmanager
async def running(
    server: PaperServer,
    *,
    store: MemoryStore | None = None,
    clock: Clock | None = None,
    broker_class: type[BrokerClient] = BrokerClient,
    instance_rules: Any = None,
    **overrides: Any,
) -> AsyncIterator[Running]:
    values: dict[str, Any] = {
        "database_url": None,
        "ib_bridge_url": server.url,
        "execution_enabled": True,
        "max_daily_loss": 100000,
        "order_poll_interval": INTERVAL,
        "order_poll_timeout": 30,
        "sweep_interval": 600,
        "listener_health_interval": 0.2,
        "cancelled_recheck_delay": 0.02,
        "shutdown_grace": 1,
        "http_port": 0,
        **overrides,
    }
    settings = load_settings(**values)
    store = store or MemoryStore(clock=clock or Clock())
    metrics = Metrics()
    async with broker_class(server.url, 5, read_retries=1, backoff_base=0.0) as broker:
        actors = build_actors(
            settings,
            store,
            broker,
            metrics,
            store.notifications.connect,
            clock=clock or Clock(),
            instance_rules=instance_rules,
        )
        async with anyio.create_task_group() as tg:
            await actors.start(tg, Supervisor(backoff_base=0.01))
            yield Running(server, store, actors, metrics)
            tg.cancel_scope.cancel()


def bridge_order(orders: list[dict[str, Any]], order_id: int) -> dict[str, Any]:
    [found] = [o for o in orders if o["order_id"] == order_id]
    return found


# -- stop-loss and take-profit, long and short ----------------------------------------------------

CASES = [
    # side, entry, stop, target, exit price, reason, P&L, R
    ("BUY", "150", "145", "160", "145", "stop_loss", "-665.00", "-1.0000"),
    ("BUY", "150", "145", "160", "160", "take_profit", "1330.00", "2.0000"),
    ("SELL", "150", "155", "140", "155", "stop_loss", "-665.00", "-1.0000"),
    ("SELL", "150", "155", "140", "140", "take_profit", "1330.00", "2.0000"),
]


@pytest.mark.parametrize(("side", "entry", "stop", "target", "price", "reason", "pnl", "r"), CASES)
async def test_the_first_child_to_fill_closes_the_position_with_exact_pnl_and_r(
    side: str, entry: str, stop: str, target: str, price: str, reason: str, pnl: str, r: str
) -> None:
    symbol = f"X{side[0]}{reason[0].upper()}"
    async with paper() as server, running(server) as run:
        opened = await run.enter(symbol, side, entry, stop, target)
        assert (opened.quantity, opened.risk_amount) == (133, Decimal("665.00"))  # worked example
        await server.set_price(symbol, price)
        closed = await run.position(opened.signal_id, "closed")
        await until(lambda: run.actors.executor.riskbook.realized_pnl(datetime.now(UTC)) != 0)
        realized_today = run.actors.executor.riskbook.realized_pnl(datetime.now(UTC))
        orders = await server.recorded_orders()
        trade = run.store.trades[str(closed.id)]

    assert closed.exit_reason == reason
    assert (closed.exit_qty, closed.exit_avg_price) == (133, Decimal(price))
    assert (closed.realized_pnl, closed.r_multiple) == (Decimal(pnl), Decimal(r))
    assert closed.closed_at is not None and closed.state is S.FILLED
    assert realized_today == Decimal(pnl)  # reached the executor's RiskBook
    stop_child, target_child = sorted(
        (bridge_order(orders, i) for i in closed.child_order_ids),
        key=lambda o: o["order_type"] != "STP",
    )
    filled, sibling = (stop_child, target_child) if reason == "stop_loss" else (
        target_child, stop_child)  # fmt: skip
    assert filled["status"] == "Filled" and sibling["status"] == "Cancelled"
    # The original's trade list: the entry's status stays, the exit is in the notes.
    assert trade["order_status"] == "Filled"
    assert trade["notes"] == (
        f"closed: {reason} 133 @ {closed.exit_avg_price}; realized P&L {pnl} ({r} R)"
    )


async def test_position_closed_is_logged_with_its_numbers() -> None:
    async with paper() as server, running(server) as run:
        opened = await run.enter("LOGD")
        with capture_logs() as logs:
            await server.set_price("LOGD", "145")
            await run.position(opened.signal_id, "closed")
    [closed] = [line for line in logs if line["event"] == "position.closed"]
    assert closed["exit_reason"] == "stop_loss"
    assert (closed["realized_pnl"], closed["r_multiple"]) == ("-665.00", "-1.0000")
    assert closed["log_level"] == "info"


# -- protection kept after a timeout cancel of a partly filled entry ------------------------------


async def test_a_partly_filled_entry_cancelled_at_its_timeout_is_protected_again() -> None:
    async with paper(partial_fill_qty=50) as server, running(server, order_poll_timeout=1) as run:
        signal_id = run.store.add_signal("PART", "BUY", "150", "145", "160")
        run.store.add_approval(signal_id)
        await until(lambda: _state(run.store, signal_id) is S.SUBMITTED)
        await server.set_price("PART", "150")  # one slice of 50 of the 133 shares
        await until(lambda: _state(run.store, signal_id) is S.CANCELLED)
        protected = await run.position(signal_id, "open")
        requests = await run.requests()
        orders = await server.recorded_orders()

    assert (protected.filled_qty, protected.quantity) == (50, 133)
    [protect] = [r for r in requests if r["path"] == "/positions/PART/protect"]
    assert protect["method"] == "POST"
    assert protect["body"]["quantity"] == 50
    assert Decimal(str(protect["body"]["stop_loss"])) == Decimal(145)
    assert Decimal(str(protect["body"]["take_profit"])) == Decimal(160)
    new_orders = [bridge_order(orders, i) for i in protected.child_order_ids]
    assert sorted(o["order_type"] for o in new_orders) == ["LMT", "STP"]
    assert all(o["quantity"] == 50 and o["status"] == "Submitted" for o in new_orders)


class RefusesProtection(BrokerClient):
    async def protect_position(self, symbol: str, **_: Any) -> ProtectionPlaced:
        raise BrokerRejected(
            "refused", endpoint="POST /positions/{symbol}/protect", status=400, detail="no"
        )


async def test_a_refused_protection_leaves_the_position_unprotected_and_reported() -> None:
    async with (
        paper(partial_fill_qty=50) as server,
        running(server, order_poll_timeout=1, broker_class=RefusesProtection) as run,
    ):
        signal_id = run.store.add_signal("NAKED", "BUY", "150", "145", "160")
        run.store.add_approval(signal_id)
        await until(lambda: _state(run.store, signal_id) is S.SUBMITTED)
        with capture_logs() as logs:
            await server.set_price("NAKED", "150")
            await until(lambda: _row(run.store, signal_id).child_order_ids == ())
        execution = _row(run.store, signal_id)
        breaks = run.metrics.reconcile_breaks.labels(kind="unprotected_position")._value.get()

    assert (execution.state, execution.position_state) == (S.CANCELLED, "unprotected")
    [line] = [x for x in logs if x["event"] == "reconcile.break"]
    assert (line["kind"], line["log_level"], line["remaining"]) == (
        "unprotected_position", "error", 50)  # fmt: skip
    assert breaks == 1


async def test_children_that_expire_at_the_session_close_leave_the_position_unprotected() -> None:
    async with paper() as server, running(server) as run:
        opened = await run.enter("DAYX")
        with capture_logs() as logs:
            await server.call("POST", "/admin/session-close")
            unprotected = await run.position(opened.signal_id, "unprotected")
            requests = await run.requests()
    assert unprotected.exit_qty is None and unprotected.child_order_ids == ()
    assert [x["kind"] for x in logs if x["event"] == "reconcile.break"] == ["unprotected_position"]
    assert not [r for r in requests if "/positions/" in r["path"]]  # reported, nothing placed


# -- close and flatten ----------------------------------------------------------------------------


async def test_close_one_symbol_cancels_its_children_and_records_the_close_fill() -> None:
    async with paper() as server, running(server) as run:
        kept = await run.enter("KEEP")
        opened = await run.enter("SHUT")
        await server.set_price("SHUT", "152")
        closing = await run.actors.exits.close_positions("shut", "news", "tester", wait=DEADLINE)
        requests = await run.requests()
        orders = await server.recorded_orders()
        untouched = _row(run.store, kept.signal_id)

    [closed] = closing
    assert closed.id == opened.id and closed.position_state == "closed"
    assert (closed.exit_reason, closed.exit_qty, closed.exit_avg_price) == (
        "close", 133, Decimal(152))  # fmt: skip
    assert (closed.realized_pnl, closed.r_multiple) == (Decimal("266.00"), Decimal("0.4000"))
    assert [r["path"] for r in requests].count("/positions/SHUT/close") == 1
    assert all(bridge_order(orders, i)["status"] == "Cancelled" for i in opened.child_order_ids)
    assert bridge_order(orders, closed.exit_order_id or 0)["order_ref"] == "manual-close"
    assert untouched.position_state == "open"


async def test_close_all_closes_every_open_position() -> None:
    async with paper() as server, running(server) as run:
        first = await run.enter("ALLA")
        second = await run.enter("ALLB", "SELL", "150", "155", "140")
        closing = await run.actors.exits.close_positions(None, "end of test", "t", wait=DEADLINE)
    assert {c.id for c in closing} == {first.id, second.id}
    assert all((c.position_state, c.exit_reason) == ("closed", "close") for c in closing)
    assert all(c.realized_pnl == Decimal("0.00") for c in closing)  # closed at the entry price


async def test_flatten_at_the_configured_time_closes_what_is_open_once() -> None:
    clock = Clock()
    local = clock().astimezone(load_settings(database_url=None).timezone)
    at = (local + timedelta(minutes=10)).time().replace(second=0, microsecond=0)
    async with (
        paper() as server,
        running(server, clock=clock, flatten_at=at.strftime("%H:%M")) as run,
    ):
        opened = await run.enter("FLAT")
        await anyio.sleep(INTERVAL * 4)
        assert _row(run.store, opened.signal_id).position_state == "open"  # not yet
        clock.advance(timedelta(minutes=11))
        flattened = await run.position(opened.signal_id, "closed")
        await anyio.sleep(INTERVAL * 4)
        requests = await run.requests()
    assert flattened.exit_reason == "flatten" and flattened.exit_qty == 133
    assert [r["path"] for r in requests].count("/positions/FLAT/close") == 1


async def test_a_halt_stops_entries_but_never_exits() -> None:
    async with paper() as server, running(server) as run:
        stopped = await run.enter("HSTP")
        closed_by_operator = await run.enter("HCLS")
        await run.store.set_control(True, "drill", "ops")
        await until(lambda: run.actors.executor.halted)
        await server.set_price("HSTP", "145")
        stop_out = await run.position(stopped.signal_id, "closed")
        [closed] = await run.actors.exits.close_positions("HCLS", "drill", "ops", wait=DEADLINE)
        refused = run.store.add_signal("HNEW")
        run.store.add_approval(refused)
        await until(lambda: _state(run.store, refused) is S.REJECTED)
    assert (stop_out.exit_reason, stop_out.realized_pnl) == ("stop_loss", Decimal("-665.00"))
    assert (closed.id, closed.position_state) == (closed_by_operator.id, "closed")
    assert _row(run.store, refused).reason == "halted"


# -- the realized-loss limit ----------------------------------------------------------------------


async def test_realized_losses_reject_the_next_entry_before_and_after_a_restart() -> None:
    store = MemoryStore()
    async with paper() as server:
        async with running(server, store=store, max_daily_realized_loss=600) as run:
            opened = await run.enter("LOSS")
            await server.set_price("LOSS", "145")
            await run.position(opened.signal_id, "closed")
            await until(lambda: run.actors.executor.riskbook.realized_pnl(datetime.now(UTC)) < 0)
            first = store.add_signal("NEXT")
            store.add_approval(first)
            await until(lambda: _state(store, first) is S.REJECTED)
        async with running(server, store=store, max_daily_realized_loss=600) as run:
            again = store.add_signal("AFTER")
            store.add_approval(again)
            await until(lambda: _state(store, again) is S.REJECTED)
            restored = run.metrics.realized_pnl_today._value.get()
    assert _row(store, first).reason == "risk: max_daily_realized_loss"
    assert _row(store, again).reason == "risk: max_daily_realized_loss"
    assert restored == -665.0


async def test_a_strategy_instance_flattens_its_own_positions_at_its_time() -> None:
    clock = Clock()
    zone = "Asia/Tokyo"  # the instance's session zone, not TRADING_DAY_TIMEZONE
    local = clock().astimezone(ZoneInfo(zone))
    at = (local + timedelta(minutes=10)).strftime("%H:%M")
    owned: set[UUID] = set()

    async def times(ids: Any) -> dict[UUID, tuple[str, str | None, str | None]]:
        return {i: ("instance-1", at, zone) for i in ids if i in owned}

    async with (
        paper() as server,
        running(server, clock=clock, instance_rules=instance_rules_from(times)) as run,
    ):
        mine = await run.enter("INST")
        owned.add(mine.id)
        other = await run.enter("FREE")
        clock.advance(timedelta(minutes=11))
        flattened = await run.position(mine.signal_id, "closed")
        await anyio.sleep(INTERVAL * 4)
        untouched = _row(run.store, other.signal_id)
    assert flattened.exit_reason == "flatten"
    assert untouched.position_state == "open"


async def test_without_protection_a_position_is_open_and_exits_only_by_close() -> None:
    async with paper() as server, running(server, order_protection="none") as run:
        opened = await run.enter("BARE")
        await server.set_price("BARE", "140")  # far through where a stop would have been
        await anyio.sleep(INTERVAL * 4)
        still = _row(run.store, opened.signal_id)
        [closed] = await run.actors.exits.close_positions("BARE", "manual", "t", wait=DEADLINE)
    assert (opened.child_order_ids, still.position_state) == ((), "open")
    assert (closed.exit_reason, closed.realized_pnl) == ("close", Decimal("-1330.00"))
