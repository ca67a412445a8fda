"""The pipeline's scenarios: the actors (pollers, executor, listener under a Supervisor) wired by
`build_actors` as the service wires them, with the real `BrokerClient` talking HTTP to the paper
bridge served in the same event loop.

One suite over both stores: every scenario that does not need a fault only the memory store can
stage runs on the memory store (asyncio and trio) and on PostgreSQL (asyncio; the real tables,
triggers and LISTEN/NOTIFY). The scenarios that stage such a fault (a lost or garbled
notification, a dropped or silently dead LISTEN session, an outage, a failed write) run on the
memory store; the chaos suite stages their PostgreSQL counterparts. Waits poll for an outcome under
a deadline that only guards against a hang.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskStatus
from structlog.testing import capture_logs

from tests.support import PaperServer
from tests.support.ledgers import (
    DEADLINE,
    Ledger,
    MemoryLedger,
    actor_settings,
    event_kinds,
    reaches,
    running_actors,
    settled,
    until,
)
from trade_executor.actors.messages import ApprovalSeen
from trade_executor.actors.supervisor import ChildGaveUp, Supervisor
from trade_executor.broker.client import BrokerClient
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import Action, OrderRequest, OrderType
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.store.errors import StoreUnavailable
from trade_executor.store.notifications import APPROVALS_CHANNEL
from trade_executor.store.protocol import Claimed
from trade_executor_dev.testing import MemoryNotifications, MemoryStore

# The actors never block the event loop (blockbuster: tests/conftest.py).
pytestmark = [pytest.mark.anyio, pytest.mark.no_blocking]

S = ExecutionState


# -- placing orders -------------------------------------------------------------------------------


async def test_an_approval_is_placed_once_and_recorded(ledger: Ledger, paper: PaperServer) -> None:
    async with running_actors(actor_settings(paper.url), ledger) as running:
        signal_id = await ledger.add_signal("AAPL")
        approval_id = await ledger.add_approval(signal_id)
        execution = await settled(ledger, signal_id)
        assert running.supervisor.healthy()

    [order] = await paper.parent_orders()
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
    assert await ledger.approval_order_id(approval_id) == str(order["order_id"])
    trade = await ledger.trade(execution.id)
    assert trade is not None and trade["id"] == str(execution.id)
    assert (trade["symbol"], trade["direction"], trade["order_status"]) == (
        "AAPL",
        "BUY",
        "Submitted",
    )
    assert trade["entry"] == Decimal("150.00") and trade["stop"] == Decimal("145.00")
    risk = trade["risk"]
    assert risk["quantity"] == 133 and risk["order_id"] == str(order["order_id"])
    assert Decimal(str(risk["amount"])) == Decimal("665.00")
    assert Decimal(str(risk["percent"])) == Decimal("0.00665")
    assert Decimal(str(risk["position_value"])) == Decimal("19950.00")
    assert (await event_kinds(ledger, execution.id))[:3] == [
        "execution.claimed",
        "order.submitting",
        "order.submitted",
    ]
    assert len(await ledger.executions()) == 1


async def test_more_approvals_than_open_positions_place_exactly_the_limit(
    ledger: Ledger, paper: PaperServer
) -> None:
    settings = actor_settings(paper.url, max_open_positions=5)
    async with running_actors(settings, ledger):
        signal_ids = [
            await ledger.add_signal(f"SYM{i:02d}", entry="50", stop="45", target="60")
            for i in range(20)
        ]
        await ledger.add_approvals(signal_ids)  # all at once: committed together
        outcomes = [await settled(ledger, signal_id) for signal_id in signal_ids]

    placed = await paper.parent_orders()
    submitted = [e for e in outcomes if e.state is S.SUBMITTED]
    rejected = [e for e in outcomes if e.state is S.REJECTED]
    assert len(placed) == 5 and len(submitted) == 5 and len(rejected) == 15
    assert {o["symbol"] for o in placed} == {e.symbol for e in submitted}
    assert len({o["symbol"] for o in placed}) == 5
    assert {e.reason for e in rejected} == {"risk: max_open_positions"}
    assert {o["quantity"] for o in placed} == {200}


async def test_the_daily_budget_shrinks_sizes_then_rejects(
    ledger: Ledger, paper: PaperServer
) -> None:
    settings = actor_settings(paper.url, max_daily_loss=1500, max_open_positions=50)
    outcomes: list[Execution] = []
    async with running_actors(settings, ledger):
        for i in range(4):
            signal_id = await ledger.add_signal(f"DAY{i}", entry="50", stop="45", target="60")
            await ledger.add_approval(signal_id)
            outcomes.append(await settled(ledger, signal_id))

    assert (outcomes[0].quantity, outcomes[0].risk_amount) == (200, Decimal("1000.00"))
    assert (outcomes[1].quantity, outcomes[1].risk_amount) == (100, Decimal("500.00"))
    assert [o.reason for o in outcomes[2:]] == ["risk: max_daily_loss"] * 2
    committed = sum(
        (e.risk_amount or Decimal(0) for e in outcomes if e.state is S.SUBMITTED), Decimal(0)
    )
    assert committed == Decimal("1500.00")
    assert len(await paper.parent_orders()) == 2


async def test_duplicate_notifications_rows_and_direct_posts_place_one_order(
    ledger: Ledger, paper: PaperServer
) -> None:
    async with running_actors(actor_settings(paper.url), ledger) as running:
        post = running.actors.mailbox.send_nowait
        # Two approval rows for one signal, committed together; the first notified ten more
        # times, and the direct (API) path racing the listener with both.
        signal_id = await ledger.add_signal("DUP")
        first, second = await ledger.add_approvals([signal_id, signal_id])
        payload = json.dumps({"approval_id": str(first), "signal_id": str(signal_id)})
        for _ in range(10):
            await ledger.notify(APPROVALS_CHANNEL, payload)
        for approval_id in (first, second, first, second, first):
            post(ApprovalSeen(approval_id, "api", anyio.current_time()))
        execution = await settled(ledger, signal_id)
        # A later signal, seen after every duplicate hint: once it settles, the hints before it
        # have been taken from the mailbox and claimed (or found claimed).
        sentinel = await ledger.add_signal("LAST")
        await ledger.add_approval(sentinel)
        await settled(ledger, sentinel)

    placed = await paper.parent_orders()
    assert sorted(o["symbol"] for o in placed) == ["DUP", "LAST"]
    [dup] = [o for o in placed if o["symbol"] == "DUP"]
    assert execution.state is S.SUBMITTED and execution.order_id == dup["order_id"]
    assert len(await ledger.executions()) == 2
    assert await ledger.trade_count() == 2
    kinds = await event_kinds(ledger, execution.id)
    assert kinds.count("execution.claimed") == 1
    assert kinds.count("order.submitting") == 1
    assert await ledger.approval_order_id(first) == await ledger.approval_order_id(second)


async def test_dry_run_places_nothing(ledger: Ledger, paper: PaperServer) -> None:
    async with running_actors(actor_settings(paper.url, execution_enabled=False), ledger):
        signal_id = await ledger.add_signal("DRY")
        approval_id = await ledger.add_approval(signal_id)
        execution = await settled(ledger, signal_id)

    assert await paper.recorded_orders() == []
    assert execution.state is S.DRY_RUN
    assert execution.quantity == 133 and execution.order_id is None
    # CONTRACT v2: dry runs are never written to trades (the original's UI reads that table).
    assert await ledger.trade(execution.id) is None
    assert await ledger.approval_order_id(approval_id) is None
    assert await event_kinds(ledger, execution.id) == ["execution.claimed", "execution.dry_run"]


async def test_halt_rejects_new_approvals_and_resume_undoes_it(
    ledger: Ledger, paper: PaperServer
) -> None:
    async with running_actors(actor_settings(paper.url), ledger) as running:
        executor = running.actors.executor
        await ledger.set_halted(True, "drill")  # the trigger notifies trade_executor_control
        await until(lambda: executor.halted, "executor halted")
        halted_signal = await ledger.add_signal("HALT")
        await ledger.add_approval(halted_signal)
        halted = await settled(ledger, halted_signal)

        await ledger.set_halted(False, None)
        await until(lambda: not executor.halted, "executor resumed")
        resumed_signal = await ledger.add_signal("RESUME")
        await ledger.add_approval(resumed_signal)
        resumed = await settled(ledger, resumed_signal)

    assert (halted.state, halted.reason) == (S.REJECTED, "halted")
    assert resumed.state is S.SUBMITTED
    assert [o["symbol"] for o in await paper.parent_orders()] == ["RESUME"]


async def test_two_signals_for_one_symbol_place_one_order(
    ledger: Ledger, paper: PaperServer
) -> None:
    async with running_actors(actor_settings(paper.url), ledger):
        signal_ids = [await ledger.add_signal("SAME"), await ledger.add_signal("SAME")]
        await ledger.add_approvals(signal_ids)
        outcomes = [await settled(ledger, signal_id) for signal_id in signal_ids]

    assert sorted((e.state.value, e.reason) for e in outcomes) == [
        ("rejected", "risk: duplicate_symbol"),
        ("submitted", None),
    ]
    assert len(await paper.parent_orders()) == 1


async def test_approvals_made_while_stopped_are_taken_up_at_start(
    ledger: Ledger, paper: PaperServer
) -> None:
    fresh = await ledger.add_signal("EARLY")
    await ledger.add_approval(fresh)  # nobody listens yet: the notification is lost
    old = await ledger.add_signal("OLD")
    await ledger.add_approval(old, approved_at=datetime.now(UTC) - timedelta(hours=1))
    if isinstance(ledger, MemoryLedger):
        assert ledger.memory.notifications.connects == 0

    async with running_actors(actor_settings(paper.url), ledger):
        execution = await settled(ledger, fresh)
        stale = await settled(ledger, old)

    assert execution.state is S.SUBMITTED
    assert (stale.state, stale.reason) == (S.REJECTED, "stale")
    assert [o["symbol"] for o in await paper.parent_orders()] == ["EARLY"]


# -- restarts -----------------------------------------------------------------------------------


async def test_a_restart_resumes_the_pollers(ledger: Ledger, paper: PaperServer) -> None:
    async with running_actors(actor_settings(paper.url), ledger):
        signal_id = await ledger.add_signal("AGAIN")
        await ledger.add_approval(signal_id)
        submitted = await settled(ledger, signal_id)
    assert submitted.state is S.SUBMITTED
    assert submitted.order_id in await paper.set_price("AGAIN", "149")  # fills while stopped

    async with running_actors(actor_settings(paper.url), ledger) as running:
        filled = await reaches(ledger, signal_id, "filled")
        await until(lambda: running.actors.pollers.active == 0, "poller done")

    assert filled.filled_qty == 133
    assert len(await paper.parent_orders()) == 1


async def _crashed_while_submitting(ledger: Ledger, symbol: str) -> Execution:
    """The ledger as a crash between `submitting` and the broker's answer leaves it."""
    signal_id = await ledger.add_signal(symbol)
    approval_id = await ledger.add_approval(signal_id)  # no actor listens: nobody takes it up
    execution_id = uuid4()
    claim = await ledger.store.claim(approval_id, execution_id, f"te-{execution_id.hex}")
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
    return await ledger.store.apply(execution_id, Transition.BEGIN_SUBMIT, plan)


async def test_a_submission_left_by_a_crash_is_adopted_not_resent(
    ledger: Ledger, paper: PaperServer
) -> None:
    intent = await _crashed_while_submitting(ledger, "CRASH")
    async with BrokerClient(paper.url, 5) as broker:  # the POST that did reach the bridge
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

    async with running_actors(actor_settings(paper.url), ledger):
        adopted = await settled(ledger, intent.signal_id)

    assert adopted.state is S.SUBMITTED and adopted.order_id == placed.order_id
    assert "order.adopted" in await event_kinds(ledger, adopted.id)
    assert [o["order_id"] for o in await paper.parent_orders()] == [placed.order_id]


async def test_a_submission_lost_by_a_crash_is_not_placed_and_not_resent(
    ledger: Ledger, paper: PaperServer
) -> None:
    """The bridge lists its orders and this one is not among them, but no earlier order of ours
    is listed to show the bridge session predates the intent (CONTRACT v3): absence is not
    proven -> `failed: not_placed: recovery: ...` (its risk released), never sent again, and
    not counted by the breaker."""
    intent = await _crashed_while_submitting(ledger, "LOST")

    async with running_actors(actor_settings(paper.url), ledger) as running:
        outcome = await settled(ledger, intent.signal_id)
        failures = running.actors.executor.breaker_failures

    assert outcome.state is S.FAILED
    assert outcome.reason is not None and outcome.reason.startswith("not_placed: recovery: ")
    assert await paper.parent_orders() == []
    assert failures == 0


# -- the pollers --------------------------------------------------------------------------------


async def test_a_poller_records_a_fill(ledger: Ledger, paper: PaperServer) -> None:
    async with running_actors(actor_settings(paper.url), ledger) as running:
        pollers = running.actors.pollers
        signal_id = await ledger.add_signal("FILL")
        await ledger.add_approval(signal_id)
        submitted = await settled(ledger, signal_id)
        assert submitted.state is S.SUBMITTED
        await until(lambda: pollers.active == 1, "poller started")
        assert submitted.order_id in await paper.set_price("FILL", "149")  # the entry fills
        filled = await reaches(ledger, signal_id, "filled")
        await until(lambda: pollers.active == 0, "poller done")

    assert filled.filled_qty == 133 and filled.avg_fill_price == Decimal("149")
    assert filled.broker_status == "Filled" and filled.finished_at is not None
    trade = await ledger.trade(filled.id)
    assert trade is not None
    assert (trade["order_status"], trade["filled_qty"]) == ("Filled", 133)
    assert trade["avg_fill_price"] == Decimal("149") and trade["risk"]["status"] == "Filled"
    assert "order.filled" in await event_kinds(ledger, filled.id)


async def test_pollers_keep_running_while_halted_and_a_fill_holds_the_symbol(
    ledger: Ledger, paper: PaperServer
) -> None:
    async with running_actors(actor_settings(paper.url), ledger) as running:
        executor = running.actors.executor
        signal_id = await ledger.add_signal("HOLD")
        await ledger.add_approval(signal_id)
        submitted = await settled(ledger, signal_id)
        await ledger.set_halted(True, "drill")
        await until(lambda: executor.halted, "halted")
        assert submitted.order_id in await paper.set_price("HOLD", "149")
        await reaches(ledger, signal_id, "filled")  # while halted
        await ledger.set_halted(False, None)
        await until(lambda: not executor.halted, "resumed")
        second = await ledger.add_signal("HOLD")  # the symbol is now a position at the broker
        await ledger.add_approval(second)
        refused = await settled(ledger, second)

    assert (refused.state, refused.reason) == (S.REJECTED, "risk: duplicate_symbol")
    assert len(await paper.parent_orders()) == 1


async def test_a_poll_timeout_cancels_the_order(ledger: Ledger, paper: PaperServer) -> None:
    await paper.set_faults(fill_mode="never")
    settings = actor_settings(paper.url, order_poll_timeout=0.5, order_timeout_action="cancel")
    async with running_actors(settings, ledger):
        signal_id = await ledger.add_signal("SLOW")
        await ledger.add_approval(signal_id)
        cancelled = await reaches(ledger, signal_id, "cancelled")
        retry = await ledger.add_signal("SLOW")
        await ledger.add_approval(retry)
        again = await settled(ledger, retry)

    assert cancelled.order_id is not None
    assert cancelled.reason == "broker: Cancelled" and cancelled.filled_qty == 0
    timeouts = [d for k, d in await ledger.events(cancelled.id) if k == "poller.timeout"]
    assert [detail["action"] for detail in timeouts] == ["cancel"]
    assert timeouts[0]["success"] is True
    assert (await paper.order(cancelled.order_id))["status"] == "Cancelled"
    trade = await ledger.trade(cancelled.id)
    assert trade is not None and trade["order_status"] == "Cancelled"
    assert again.state is S.SUBMITTED  # the cancel freed the symbol


async def test_drain_waits_for_a_submission_in_flight(ledger: Ledger, paper: PaperServer) -> None:
    await paper.set_faults(latency=0.3)  # the POST takes a while
    async with running_actors(actor_settings(paper.url), ledger) as running:
        signal_id = await ledger.add_signal("DRAIN")
        await ledger.add_approval(signal_id)
        await reaches(ledger, signal_id, "submitting")  # the intent is persisted

        drained = await running.actors.executor.drain(grace=DEADLINE)

        assert drained
        execution = await ledger.execution_of(signal_id)
        assert execution is not None and execution.state is S.SUBMITTED  # before drain returned


async def test_drain_gives_up_after_its_grace(ledger: Ledger, paper: PaperServer) -> None:
    await paper.set_faults(latency=1.0)  # every bridge answer: far longer than the grace
    settings = actor_settings(paper.url, ib_bridge_timeout=30)
    async with running_actors(settings, ledger) as running:
        signal_id = await ledger.add_signal("STUCK")
        await ledger.add_approval(signal_id)
        await reaches(ledger, signal_id, "submitting")

        assert await running.actors.executor.drain(grace=0.05) is False
        execution = await ledger.execution_of(signal_id)
        assert execution is not None and execution.state is S.SUBMITTING


# -- faults only the memory store can stage --------------------------------------------------------


async def test_a_malformed_payload_is_survived_and_answered_by_a_sweep(paper: PaperServer) -> None:
    ledger = MemoryLedger()
    store, hub = ledger.memory, ledger.memory.notifications
    async with running_actors(actor_settings(paper.url), ledger) as running:
        listener = running.actors.listener
        silent = store.add_signal("SILENT")
        store.add_approval(silent, notify=False)  # its notification was lost
        with capture_logs() as logs:
            for payload in ("not json", '{"approval_id": 42}', "[]", "x" * 9000):
                hub.notify(APPROVALS_CHANNEL, payload)
            swept = await settled(ledger, silent)  # only a sweep can find it
        await until(lambda: listener.health.bad_payloads == 4, "bad payloads counted")
        after = store.add_signal("AFTER")
        store.add_approval(after)
        executed = await settled(ledger, after)
        listener_health = running.supervisor.children["listener"]
        assert listener_health.state == "running" and listener_health.restarts == 0

    assert swept.state is S.SUBMITTED and executed.state is S.SUBMITTED
    assert listener.health.reconnects == 0 and hub.connects == 1
    bad = [e for e in logs if e["event"] == "listener.bad_payload"]
    assert len(bad) == 4 and all(e["log_level"] == "warning" for e in bad)
    assert max(len(e["payload"]) for e in bad) <= 200  # logged as an excerpt
    assert {o["symbol"] for o in await paper.parent_orders()} == {"SILENT", "AFTER"}


async def test_a_dropped_connection_reconnects_and_catches_up(paper: PaperServer) -> None:
    ledger = MemoryLedger()
    store, hub = ledger.memory, ledger.memory.notifications
    async with running_actors(actor_settings(paper.url), ledger) as running:
        listener = running.actors.listener
        hub.refuse_connections = True
        hub.drop_all()  # pg_terminate_backend
        await until(lambda: not listener.health.connected, "listener disconnected")
        signal_id = store.add_signal("MISSED")
        store.add_approval(signal_id)  # notified while nobody listens: lost
        assert hub.live == 0
        hub.refuse_connections = False
        execution = await settled(ledger, signal_id)
        await until(lambda: listener.health.connected, "listener connected")

    assert execution.state is S.SUBMITTED
    assert listener.health.reconnects == 1 and hub.connects >= 2
    assert [o["symbol"] for o in await paper.parent_orders()] == ["MISSED"]


async def test_a_silently_dead_connection_is_found_by_ping(paper: PaperServer) -> None:
    ledger = MemoryLedger()
    store, hub = ledger.memory, ledger.memory.notifications
    async with running_actors(actor_settings(paper.url), ledger) as running:
        hub.hang_all()  # no FIN: nothing arrives and `SELECT 1` never answers
        signal_id = store.add_signal("HUNG")
        store.add_approval(signal_id)  # delivered to no live session
        execution = await settled(ledger, signal_id)

    assert execution.state is S.SUBMITTED
    assert running.actors.listener.health.reconnects == 1


async def test_a_database_outage_is_survived_by_the_listener(paper: PaperServer) -> None:
    ledger = MemoryLedger()
    store, hub = ledger.memory, ledger.memory.notifications
    async with running_actors(actor_settings(paper.url), ledger) as running:
        listener = running.actors.listener
        store.down = True
        hub.notify(APPROVALS_CHANNEL, "garbage")  # asks for a sweep, which fails
        await until(lambda: not listener.health.connected, "listener reconnecting")
        signal_id = store.add_signal("OUTAGE")
        store.add_approval(signal_id, notify=False)
        store.down = False
        execution = await settled(ledger, signal_id)  # the reconnect's catch-up finds it

    assert execution.state is S.SUBMITTED
    assert listener.health.reconnects >= 1


async def test_an_overflowing_notification_buffer_is_answered_by_a_sweep(
    paper: PaperServer,
) -> None:
    store = MemoryStore(notifications=MemoryNotifications(buffer=2))  # most of a burst is lost
    ledger = MemoryLedger(store)
    settings = actor_settings(paper.url, max_open_positions=10)
    async with running_actors(settings, ledger):
        signal_ids = [
            store.add_signal(f"BURST{i}", entry="50", stop="45", target="60") for i in range(6)
        ]
        for signal_id in signal_ids:
            store.add_approval(signal_id)
        outcomes = [await settled(ledger, signal_id) for signal_id in signal_ids]

    assert store.notifications.dropped > 0  # those approvals only a sweep could find
    assert {e.state for e in outcomes} == {S.SUBMITTED}
    assert len(await paper.parent_orders()) == 6


async def test_a_failed_write_while_rejecting_does_not_stop_the_executor(
    paper: PaperServer,
) -> None:
    ledger = MemoryLedger()
    store = ledger.memory
    async with running_actors(actor_settings(paper.url), ledger) as running:
        await store.set_control(True, "drill", "ops")
        await until(lambda: running.actors.executor.halted, "executor halted")
        store.fail_next("apply")  # the `reject` write fails once
        signal_id = store.add_signal("WOBBLE")
        store.add_approval(signal_id)
        execution = await settled(ledger, signal_id)
        await until(running.supervisor.healthy, "every child running again")

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


async def test_a_start_up_failure_of_an_actor_propagates(paper: PaperServer) -> None:
    ledger = MemoryLedger()
    # The first query is the executor's recovery (the pollers take the working executions from
    # it): it fails before the executor has started.
    ledger.memory.down = True
    supervisor = Supervisor(backoff_base=0.01)
    with pytest.raises(BaseException) as raised:
        async with running_actors(actor_settings(paper.url), ledger, supervisor=supervisor):
            pytest.fail("the actors started on a store that is down")
    assert isinstance(_leaf(raised.value), StoreUnavailable)
    assert supervisor.children["executor"].restarts == 0
    assert "exits" not in supervisor.children  # nothing after a failed child is started


async def test_the_supervisor_restarts_a_child_that_raises(paper: PaperServer) -> None:
    ledger = MemoryLedger()
    flaky = FlakyChild(fail_runs=frozenset({1, 2}))
    settings = actor_settings(paper.url)
    async with running_actors(settings, ledger, extra={"flaky": flaky.run}) as running:
        await until(lambda: flaky.runs == 3, "flaky restarted twice")
        await until(running.supervisor.healthy, "all children running")
        signal_id = ledger.memory.add_signal("AFTER")
        ledger.memory.add_approval(signal_id)
        execution = await settled(ledger, signal_id)

    assert running.supervisor.children["flaky"].restarts == 2
    assert running.supervisor.children["executor"].restarts == 0
    assert execution.state is S.SUBMITTED


async def test_the_supervisor_gives_up_on_a_child_that_keeps_failing(paper: PaperServer) -> None:
    flaky = FlakyChild(always=True)
    supervisor = Supervisor(backoff_base=0.001, max_restarts=3, window=60)
    settings = actor_settings(paper.url)
    with pytest.raises(BaseException) as raised:
        async with running_actors(
            settings, MemoryLedger(), supervisor=supervisor, extra={"f": flaky.run}
        ):
            await anyio.sleep_forever()  # ended by ChildGaveUp, which cancels every actor
    assert isinstance(_leaf(raised.value), ChildGaveUp)
    assert flaky.runs == 4
    assert supervisor.children["f"].state == "failed"


def _leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        assert len(error.exceptions) == 1, error
        error = error.exceptions[0]
    return error
