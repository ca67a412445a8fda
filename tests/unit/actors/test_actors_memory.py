"""The actors (pollers, executor, listener under a Supervisor) on asyncio AND trio.

Wired by `build_actors`, as the service wires them, but on `MemoryStore` + `MemoryNotifications`
instead of asyncpg, with the real `BrokerClient` talking HTTP to the paper bridge served by
Hypercorn in the same event loop. Nothing here touches asyncpg, so every test runs on both
backends. Waits poll for an outcome under a deadline that only guards against a hang.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskStatus
from structlog.testing import capture_logs

from tests.support import PaperServer, paper_in_this_loop
from trade_executor.actors.executor import Executor
from trade_executor.actors.listener import ApprovalListener
from trade_executor.actors.messages import ApprovalSeen
from trade_executor.actors.pollers import PollerPool
from trade_executor.actors.supervisor import ChildGaveUp, Supervisor
from trade_executor.actors.wiring import build_actors
from trade_executor.broker.client import BrokerClient
from trade_executor.broker.paper import Faults, PaperConfig
from trade_executor.config import Settings, load_settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import Action, OrderRequest, OrderType
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.metrics import Metrics
from trade_executor.store.errors import StoreUnavailable
from trade_executor.store.notifications import APPROVALS_CHANNEL
from trade_executor.store.protocol import Claimed
from trade_executor.testing import MemoryNotifications, MemoryStore

pytestmark = pytest.mark.anyio

S = ExecutionState
DEADLINE = 15.0  # guards against a hang; no test asserts anything about speed


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """No asyncpg here: both backends (overrides the directory's asyncio pin)."""
    return str(request.param)


# -- the paper bridge, in this event loop ---------------------------------------------------------


Bridge = PaperServer


@pytest.fixture
async def bridge(anyio_backend: str) -> AsyncIterator[Bridge]:
    config = PaperConfig(seed=7, tick_interval=0.0, faults=Faults())  # prices move on request
    async with paper_in_this_loop(config) as server:
        yield server


# -- the actors ---------------------------------------------------------------------------------


def settings_for(bridge: Bridge, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": None,
        "ib_bridge_url": bridge.url,
        "execution_enabled": True,
        "max_daily_loss": 100000,
        "order_poll_interval": 0.1,
        "order_poll_timeout": 30,
        "sweep_interval": 600,  # no periodic sweep hides a missed notification
        "listener_health_interval": 0.2,
        "cancelled_recheck_delay": 0.05,
        "shutdown_grace": 1,
        "http_port": 0,
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class Actors:
    store: MemoryStore
    hub: MemoryNotifications
    executor: Executor
    listener: ApprovalListener
    pollers: PollerPool
    supervisor: Supervisor
    post: Callable[[Any], None]


ChildRun = Callable[..., Coroutine[Any, Any, None]]


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    store: MemoryStore | None = None,
    supervisor: Supervisor | None = None,
    extra: dict[str, ChildRun] | None = None,
) -> AsyncIterator[Actors]:
    """The actors of `build_actors`, started as the service starts them, on the memory store."""
    store = store or MemoryStore()
    supervisor = supervisor or Supervisor(backoff_base=0.01)
    async with BrokerClient(settings.ib_bridge_url, settings.ib_bridge_timeout) as broker:
        actors = build_actors(settings, store, broker, Metrics(), store.notifications.connect)
        async with anyio.create_task_group() as tg:
            await actors.start(tg, supervisor)
            for name, run in (extra or {}).items():
                await tg.start(supervisor.supervise, name, run)
            yield Actors(
                store,
                store.notifications,
                actors.executor,
                actors.listener,
                actors.pollers,
                supervisor,
                actors.mailbox.send_nowait,
            )
            tg.cancel_scope.cancel()


async def until(predicate: Callable[[], bool], what: str) -> None:
    with anyio.fail_after(DEADLINE):
        while not predicate():
            await anyio.sleep(0.01)


async def settled(store: MemoryStore, signal_id: UUID) -> Execution:
    """The signal's execution once it has left `received`/`submitting`."""

    def done() -> bool:
        execution = store.execution_of(signal_id)
        return execution is not None and execution.state not in (S.RECEIVED, S.SUBMITTING)

    await until(done, f"signal {signal_id} settled")
    execution = store.execution_of(signal_id)
    assert execution is not None
    return execution


def state_of(store: MemoryStore, signal_id: UUID) -> ExecutionState | None:
    execution = store.execution_of(signal_id)
    return None if execution is None else execution.state


def kinds(store: MemoryStore, execution_id: UUID) -> list[str]:
    return [event.kind for event in store.events_of(execution_id)]


# -- placing orders -------------------------------------------------------------------------------


async def test_an_approval_is_placed_once_and_recorded(bridge: Bridge) -> None:
    async with running(settings_for(bridge)) as actors:
        store = actors.store
        signal_id = store.add_signal("AAPL")
        approval_id = store.add_approval(signal_id)
        execution = await settled(store, signal_id)
        assert actors.supervisor.healthy()

    [order] = await bridge.parent_orders()
    assert execution.state is S.SUBMITTED
    assert (order["symbol"], order["action"], order["quantity"]) == ("AAPL", "BUY", 133)
    assert Decimal(str(order["limit_price"])) == Decimal("150.00")
    assert order["order_ref"] == execution.client_order_id
    assert execution.order_id == order["order_id"]
    assert len(execution.child_order_ids) == 2
    assert execution.quantity == 133
    assert execution.risk_amount == Decimal("665.00")
    assert execution.position_value == Decimal("19950.00")
    assert execution.approval_id == approval_id
    assert store.approvals[approval_id].order_id == str(order["order_id"])
    trade = store.trades[str(execution.id)]
    assert (trade["symbol"], trade["direction"], trade["order_status"]) == (
        "AAPL",
        "BUY",
        "Submitted",
    )
    assert trade["risk"]["quantity"] == 133 and trade["risk"]["order_id"] == str(order["order_id"])
    assert trade["risk"]["amount"] == Decimal("665.00")
    assert kinds(store, execution.id)[:3] == [
        "execution.claimed",
        "order.submitting",
        "order.submitted",
    ]
    assert len(store.executions) == 1


async def test_more_approvals_than_open_positions_place_exactly_the_limit(bridge: Bridge) -> None:
    settings = settings_for(bridge, max_open_positions=3)
    async with running(settings) as actors:
        store = actors.store
        signal_ids = [
            store.add_signal(f"SYM{i}", entry="50", stop="45", target="60") for i in range(8)
        ]
        for signal_id in signal_ids:  # all at once: no checkpoint between them
            store.add_approval(signal_id)
        outcomes = [await settled(store, signal_id) for signal_id in signal_ids]

    placed = await bridge.parent_orders()
    submitted = [e for e in outcomes if e.state is S.SUBMITTED]
    rejected = [e for e in outcomes if e.state is S.REJECTED]
    assert len(placed) == 3 and len(submitted) == 3 and len(rejected) == 5
    assert {o["symbol"] for o in placed} == {e.symbol for e in submitted}
    assert {e.reason for e in rejected} == {"risk: max_open_positions"}
    assert {o["quantity"] for o in placed} == {200}


async def test_duplicate_notifications_rows_and_direct_posts_place_one_order(
    bridge: Bridge,
) -> None:
    async with running(settings_for(bridge)) as actors:
        store, hub = actors.store, actors.hub
        signal_id = store.add_signal("DUP")
        first = store.add_approval(signal_id)
        second = store.add_approval(signal_id)  # a second approval row for the same signal
        payload = json.dumps({"approval_id": str(first), "signal_id": str(signal_id)})
        for _ in range(10):
            hub.notify(APPROVALS_CHANNEL, payload)
        for approval_id in (first, second, first):  # the HTTP API's direct path
            actors.post(ApprovalSeen(approval_id, "api", anyio.current_time()))
        execution = await settled(store, signal_id)
        # A later signal, seen after every duplicate hint: once it settles, the hints before it
        # have been taken from the mailbox and claimed (or found claimed).
        sentinel = store.add_signal("LAST")
        store.add_approval(sentinel)
        await settled(store, sentinel)

    placed = [o for o in await bridge.parent_orders() if o["symbol"] == "DUP"]
    assert len(placed) == 1
    assert execution.state is S.SUBMITTED and execution.order_id == placed[0]["order_id"]
    assert [e.signal_id for e in store.executions].count(signal_id) == 1
    assert kinds(store, execution.id).count("execution.claimed") == 1
    assert kinds(store, execution.id).count("order.submitting") == 1
    assert store.approvals[first].order_id == store.approvals[second].order_id


async def test_dry_run_places_nothing(bridge: Bridge) -> None:
    async with running(settings_for(bridge, execution_enabled=False)) as actors:
        store = actors.store
        signal_id = store.add_signal("DRY")
        approval_id = store.add_approval(signal_id)
        execution = await settled(store, signal_id)

    assert await bridge.parent_orders() == []
    assert execution.state is S.DRY_RUN
    assert execution.quantity == 133 and execution.order_id is None
    trade = store.trades[str(execution.id)]
    assert trade["order_status"] == "dry_run" and trade["risk"]["order_id"] is None
    assert store.approvals[approval_id].order_id is None
    assert kinds(store, execution.id) == ["execution.claimed", "execution.dry_run"]


async def test_halt_rejects_new_approvals_and_resume_undoes_it(bridge: Bridge) -> None:
    async with running(settings_for(bridge)) as actors:
        store, executor = actors.store, actors.executor
        await store.set_control(True, "drill", "ops")  # notifies trade_executor_control
        await until(lambda: executor.halted, "executor halted")
        halted_signal = store.add_signal("HALT")
        store.add_approval(halted_signal)
        halted = await settled(store, halted_signal)

        await store.set_control(False, None, "ops")
        await until(lambda: not executor.halted, "executor resumed")
        resumed_signal = store.add_signal("RESUME")
        store.add_approval(resumed_signal)
        resumed = await settled(store, resumed_signal)

    assert (halted.state, halted.reason) == (S.REJECTED, "halted")
    assert resumed.state is S.SUBMITTED
    assert [o["symbol"] for o in await bridge.parent_orders()] == ["RESUME"]


async def test_two_signals_for_one_symbol_place_one_order(bridge: Bridge) -> None:
    async with running(settings_for(bridge)) as actors:
        store = actors.store
        signal_ids = [store.add_signal("SAME"), store.add_signal("SAME")]
        for signal_id in signal_ids:
            store.add_approval(signal_id)
        outcomes = [await settled(store, signal_id) for signal_id in signal_ids]

    assert sorted((e.state.value, e.reason) for e in outcomes) == [
        ("rejected", "risk: duplicate_symbol"),
        ("submitted", None),
    ]
    assert len(await bridge.parent_orders()) == 1


async def test_approvals_made_while_stopped_are_taken_up_at_start(bridge: Bridge) -> None:
    store = MemoryStore()
    hub = store.notifications
    signal_id = store.add_signal("EARLY")
    store.add_approval(signal_id)  # nobody listens yet: the notification is lost
    assert hub.connects == 0

    async with running(settings_for(bridge), store=store):
        execution = await settled(store, signal_id)

    assert execution.state is S.SUBMITTED
    assert [o["symbol"] for o in await bridge.parent_orders()] == ["EARLY"]


# -- restarts -----------------------------------------------------------------------------------


async def test_a_restart_resumes_the_pollers(bridge: Bridge) -> None:
    store = MemoryStore()
    async with running(settings_for(bridge), store=store):
        signal_id = store.add_signal("AGAIN")
        store.add_approval(signal_id)
        submitted = await settled(store, signal_id)
    assert submitted.state is S.SUBMITTED
    assert submitted.order_id in await bridge.set_price("AGAIN", "149")  # fills while stopped

    async with running(settings_for(bridge), store=store) as actors:
        await until(lambda: state_of(store, signal_id) is S.FILLED, "filled after restart")
        await until(lambda: actors.pollers.active == 0, "poller done")

    filled = store.execution_of(signal_id)
    assert filled is not None and filled.filled_qty == 133
    assert len(await bridge.parent_orders()) == 1


async def _crashed_while_submitting(store: MemoryStore, symbol: str) -> Execution:
    """The ledger as a crash between `submitting` and the broker's answer leaves it."""
    signal_id = store.add_signal(symbol)
    approval_id = store.add_approval(signal_id, notify=False)
    execution_id = uuid4()
    claim = await store.claim(approval_id, execution_id, f"te-{execution_id.hex}")
    assert isinstance(claim, Claimed)
    plan = Changes(
        action="BUY",
        order_type="LMT",
        quantity=133,
        entry_price=Decimal("150"),
        stop_loss=Decimal("145"),
        take_profit=Decimal("160"),
        risk_amount=Decimal("665.00"),
        risk_percent=Decimal("0.00665"),
        position_value=Decimal("19950.00"),
        attempted_at=datetime.now(UTC),
    )
    intent = await store.apply(execution_id, Transition.BEGIN_SUBMIT, plan)
    assert intent is not None
    return intent


async def test_a_submission_left_by_a_crash_is_adopted_not_resent(bridge: Bridge) -> None:
    store = MemoryStore()
    intent = await _crashed_while_submitting(store, "CRASH")
    async with BrokerClient(bridge.url, 5) as broker:  # the POST that did reach the bridge
        placed = await broker.place(
            OrderRequest(
                "CRASH",
                Action.BUY,
                133,
                OrderType.LMT,
                Decimal("150"),
                None,
                intent.client_order_id,
            )
        )

    async with running(settings_for(bridge), store=store):
        adopted = await settled(store, intent.signal_id)

    assert adopted.state is S.SUBMITTED and adopted.order_id == placed.order_id
    assert "order.adopted" in kinds(store, adopted.id)
    assert [o["order_id"] for o in await bridge.parent_orders()] == [placed.order_id]


async def test_a_submission_lost_by_a_crash_is_not_placed_and_not_resent(bridge: Bridge) -> None:
    """CONTRACT v2: the bridge lists its orders and this one is not among them -> `failed:
    not_placed` (its risk released), never sent again."""
    store = MemoryStore()
    intent = await _crashed_while_submitting(store, "LOST")

    async with running(settings_for(bridge), store=store):
        outcome = await settled(store, intent.signal_id)

    assert outcome.state is S.FAILED
    assert outcome.reason is not None and outcome.reason.startswith("not_placed: ")
    assert await bridge.parent_orders() == []


# -- the listener -------------------------------------------------------------------------------


async def test_a_malformed_payload_is_survived_and_answered_by_a_sweep(bridge: Bridge) -> None:
    async with running(settings_for(bridge)) as actors:
        store, hub, listener = actors.store, actors.hub, actors.listener
        silent = store.add_signal("SILENT")
        store.add_approval(silent, notify=False)  # its notification was lost
        with capture_logs() as logs:
            for payload in ("not json", '{"approval_id": 42}', "[]", "x" * 9000):
                hub.notify(APPROVALS_CHANNEL, payload)
            swept = await settled(store, silent)  # only a sweep can find it
        await until(lambda: listener.health.bad_payloads == 4, "bad payloads counted")
        after = store.add_signal("AFTER")
        store.add_approval(after)
        executed = await settled(store, after)
        listener_health = actors.supervisor.children["listener"]
        assert listener_health.state == "running" and listener_health.restarts == 0

    assert swept.state is S.SUBMITTED and executed.state is S.SUBMITTED
    assert listener.health.reconnects == 0 and hub.connects == 1
    bad = [e for e in logs if e["event"] == "listener.bad_payload"]
    assert len(bad) == 4 and all(e["log_level"] == "warning" for e in bad)
    assert max(len(e["payload"]) for e in bad) <= 200  # logged as an excerpt
    assert {o["symbol"] for o in await bridge.parent_orders()} == {"SILENT", "AFTER"}


async def test_a_dropped_connection_reconnects_and_catches_up(bridge: Bridge) -> None:
    async with running(settings_for(bridge)) as actors:
        store, hub, listener = actors.store, actors.hub, actors.listener
        hub.refuse_connections = True
        hub.drop_all()  # pg_terminate_backend
        await until(lambda: not listener.health.connected, "listener disconnected")
        signal_id = store.add_signal("MISSED")
        store.add_approval(signal_id)  # notified while nobody listens: lost
        assert hub.live == 0
        hub.refuse_connections = False
        execution = await settled(store, signal_id)
        await until(lambda: listener.health.connected, "listener connected")

    assert execution.state is S.SUBMITTED
    assert listener.health.reconnects == 1 and hub.connects >= 2
    assert [o["symbol"] for o in await bridge.parent_orders()] == ["MISSED"]


async def test_a_silently_dead_connection_is_found_by_ping(bridge: Bridge) -> None:
    async with running(settings_for(bridge)) as actors:
        store, hub, listener = actors.store, actors.hub, actors.listener
        hub.hang_all()  # no FIN: nothing arrives and `SELECT 1` never answers
        signal_id = store.add_signal("HUNG")
        store.add_approval(signal_id)  # delivered to no live session
        execution = await settled(store, signal_id)

    assert execution.state is S.SUBMITTED
    assert listener.health.reconnects == 1


async def test_a_database_outage_is_survived_by_the_listener(bridge: Bridge) -> None:
    async with running(settings_for(bridge)) as actors:
        store, hub, listener = actors.store, actors.hub, actors.listener
        store.down = True
        hub.notify(APPROVALS_CHANNEL, "garbage")  # asks for a sweep, which fails
        await until(lambda: not listener.health.connected, "listener reconnecting")
        signal_id = store.add_signal("OUTAGE")
        store.add_approval(signal_id, notify=False)
        store.down = False
        execution = await settled(store, signal_id)  # the reconnect's catch-up finds it

    assert execution.state is S.SUBMITTED
    assert listener.health.reconnects >= 1


async def test_an_overflowing_notification_buffer_is_answered_by_a_sweep(bridge: Bridge) -> None:
    store = MemoryStore(notifications=MemoryNotifications(buffer=2))  # most of a burst is lost
    hub = store.notifications
    settings = settings_for(bridge, max_open_positions=10)
    async with running(settings, store=store) as actors:
        store = actors.store
        signal_ids = [
            store.add_signal(f"BURST{i}", entry="50", stop="45", target="60") for i in range(6)
        ]
        for signal_id in signal_ids:
            store.add_approval(signal_id)
        outcomes = [await settled(store, signal_id) for signal_id in signal_ids]

    assert hub.dropped > 0  # those approvals only a sweep could find
    assert {e.state for e in outcomes} == {S.SUBMITTED}
    assert len(await bridge.parent_orders()) == 6


# -- the pollers --------------------------------------------------------------------------------


async def test_a_poller_records_a_fill(bridge: Bridge) -> None:
    async with running(settings_for(bridge)) as actors:
        store = actors.store
        signal_id = store.add_signal("FILL")
        store.add_approval(signal_id)
        submitted = await settled(store, signal_id)
        assert submitted.state is S.SUBMITTED
        await until(lambda: actors.pollers.active == 1, "poller started")
        assert submitted.order_id in await bridge.set_price("FILL", "149")  # the entry fills
        await until(lambda: state_of(store, signal_id) is S.FILLED, "filled")
        await until(lambda: actors.pollers.active == 0, "poller done")

    filled = store.execution_of(signal_id)
    assert filled is not None
    assert filled.filled_qty == 133 and filled.avg_fill_price == Decimal("149")
    assert filled.broker_status == "Filled" and filled.finished_at is not None
    trade = store.trades[str(filled.id)]
    assert (trade["order_status"], trade["filled_qty"]) == ("Filled", 133)
    assert trade["avg_fill_price"] == Decimal("149") and trade["risk"]["status"] == "Filled"
    assert "order.filled" in kinds(store, filled.id)


async def test_pollers_keep_running_while_halted_and_a_fill_holds_the_symbol(
    bridge: Bridge,
) -> None:
    async with running(settings_for(bridge)) as actors:
        store = actors.store
        signal_id = store.add_signal("HOLD")
        store.add_approval(signal_id)
        submitted = await settled(store, signal_id)
        await store.set_control(True, "drill", "ops")
        await until(lambda: actors.executor.halted, "halted")
        assert submitted.order_id in await bridge.set_price("HOLD", "149")
        await until(lambda: state_of(store, signal_id) is S.FILLED, "filled while halted")
        await store.set_control(False, None, "ops")
        await until(lambda: not actors.executor.halted, "resumed")
        second = store.add_signal("HOLD")  # the symbol is now a position at the broker
        store.add_approval(second)
        refused = await settled(store, second)

    assert (refused.state, refused.reason) == (S.REJECTED, "risk: duplicate_symbol")
    assert len(await bridge.parent_orders()) == 1


async def test_a_poll_timeout_cancels_the_order(bridge: Bridge) -> None:
    await bridge.set_faults(fill_mode="never")
    settings = settings_for(bridge, order_poll_timeout=0.5, order_timeout_action="cancel")
    async with running(settings) as actors:
        store = actors.store
        signal_id = store.add_signal("SLOW")
        store.add_approval(signal_id)
        await until(lambda: state_of(store, signal_id) is S.CANCELLED, "cancelled")
        retry = store.add_signal("SLOW")
        store.add_approval(retry)
        again = await settled(store, retry)

    cancelled = store.execution_of(signal_id)
    assert cancelled is not None and cancelled.order_id is not None
    assert cancelled.state is S.CANCELLED and cancelled.reason == "broker: Cancelled"
    assert cancelled.filled_qty == 0
    timeouts = [e for e in store.events_of(cancelled.id) if e.kind == "poller.timeout"]
    assert [e.detail["action"] for e in timeouts] == ["cancel"]
    assert timeouts[0].detail["success"] is True
    assert (await bridge.order(cancelled.order_id))["status"] == "Cancelled"
    assert store.trades[str(cancelled.id)]["order_status"] == "Cancelled"
    assert again is not None and again.state is S.SUBMITTED  # the cancel freed the symbol


async def test_drain_waits_for_a_submission_in_flight(bridge: Bridge) -> None:
    await bridge.set_faults(latency=0.3)  # the POST takes a while
    async with running(settings_for(bridge)) as actors:
        store = actors.store
        signal_id = store.add_signal("DRAIN")
        store.add_approval(signal_id)
        await until(lambda: state_of(store, signal_id) is S.SUBMITTING, "intent persisted")

        drained = await actors.executor.drain(grace=DEADLINE)

        assert drained
        assert state_of(store, signal_id) is S.SUBMITTED  # recorded before drain returned


async def test_drain_gives_up_after_its_grace(bridge: Bridge) -> None:
    await bridge.set_faults(latency=1.0)  # every bridge answer: far longer than the grace
    settings = settings_for(bridge, ib_bridge_timeout=30)
    async with running(settings) as actors:
        store = actors.store
        signal_id = store.add_signal("STUCK")
        store.add_approval(signal_id)
        await until(lambda: state_of(store, signal_id) is S.SUBMITTING, "intent persisted")

        assert await actors.executor.drain(grace=0.05) is False
        assert state_of(store, signal_id) is S.SUBMITTING


async def test_a_failed_write_while_rejecting_does_not_stop_the_executor(bridge: Bridge) -> None:
    async with running(settings_for(bridge)) as actors:
        store = actors.store
        await store.set_control(True, "drill", "ops")
        await until(lambda: actors.executor.halted, "executor halted")
        store.fail_next("apply")  # the `reject` write fails once
        signal_id = store.add_signal("WOBBLE")
        store.add_approval(signal_id)
        execution = await settled(store, signal_id)
        await until(actors.supervisor.healthy, "every child running again")

    assert (execution.state, execution.reason) == (S.REJECTED, "halted")


# -- supervision ----------------------------------------------------------------------------------


@dataclass
class FlakyChild:
    """Fails after starting on the runs listed in `fail_runs` (1-based), or on every run."""

    fail_runs: frozenset[int] = frozenset()
    always: bool = False
    runs: int = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self.runs += 1
        task_status.started()
        await anyio.lowlevel.checkpoint()
        if self.always or self.runs in self.fail_runs:
            raise RuntimeError(f"flaky run {self.runs}")
        await anyio.sleep_forever()


async def test_a_start_up_failure_of_an_actor_propagates(bridge: Bridge) -> None:
    store = MemoryStore()
    store.down = True  # the pollers' first query fails before they have started
    supervisor = Supervisor(backoff_base=0.01)
    with pytest.raises(BaseException) as raised:
        async with running(settings_for(bridge), store=store, supervisor=supervisor):
            pytest.fail("the actors started on a store that is down")
    assert isinstance(_leaf(raised.value), StoreUnavailable)
    assert supervisor.children["pollers"].restarts == 0
    assert "executor" not in supervisor.children  # nothing after a failed child is started


async def test_the_supervisor_restarts_a_child_that_raises(bridge: Bridge) -> None:
    flaky = FlakyChild(fail_runs=frozenset({1, 2}))
    async with running(settings_for(bridge), extra={"flaky": flaky.run}) as actors:
        await until(lambda: flaky.runs == 3, "flaky restarted twice")
        await until(lambda: actors.supervisor.healthy(), "all children running")
        signal_id = actors.store.add_signal("AFTER")
        actors.store.add_approval(signal_id)
        execution = await settled(actors.store, signal_id)

    assert actors.supervisor.children["flaky"].restarts == 2
    assert actors.supervisor.children["executor"].restarts == 0
    assert execution.state is S.SUBMITTED


async def test_the_supervisor_gives_up_on_a_child_that_keeps_failing(bridge: Bridge) -> None:
    flaky = FlakyChild(always=True)
    supervisor = Supervisor(backoff_base=0.001, max_restarts=3, window=60)
    with pytest.raises(BaseException) as raised:
        async with running(settings_for(bridge), supervisor=supervisor, extra={"f": flaky.run}):
            await anyio.sleep_forever()  # ended by ChildGaveUp, which cancels every actor
    assert isinstance(_leaf(raised.value), ChildGaveUp)
    assert flaky.runs == 4
    assert supervisor.children["f"].state == "failed"


def _leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        assert len(error.exceptions) == 1, error
        error = error.exceptions[0]
    return error
