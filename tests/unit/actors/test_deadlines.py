"""No execution is stranded (CONTRACT section 5), on the memory store under both backends: the
executor's deadline scan moves on `received` and `submitting` rows nobody handles, errors that
repeat end an execution instead of looping, reconciliation is bounded, the circuit breaker
halts after MAX_CONSECUTIVE_FAILURES, symbols are normalised once, and an operator's `resolve`
reaches the running executor.

The actors are those of `build_actors` (as the service wires them) with short, test-configured
bounds; the broker is the real `BrokerClient` against the paper bridge in this event loop,
wrapped where a test needs the bridge to misbehave in a way the paper bridge has no knob for.
Waits poll for an outcome under a deadline that only guards against a hang.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import anyio
import pytest
from structlog.testing import capture_logs

from tests.support import PaperServer
from tests.support.proxybroker import ProxyBroker, broker_functions_overridable
from trade_executor.actors.execution.deadlines import StateBounds
from trade_executor.actors.following.pool import poll_bounds
from trade_executor.actors.supervisor import Supervisor
from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerRejected
from trade_executor.broker.locate import Unreachable
from trade_executor.config.limits import risk_limits, state_bounds
from trade_executor.config.sources import Settings, load_settings
from trade_executor.domain.execution import Changes, Execution, TradeRecord
from trade_executor.domain.ledger import rebuild_riskbook
from trade_executor.domain.models import Action, OrderRequest, OrderType
from trade_executor.domain.riskbook import TradingState
from trade_executor.domain.states import NOT_FINAL_STATES, ExecutionState, Transition
from trade_executor.observability.metrics import Metrics
from trade_executor.service.wiring import Actors, build_actors
from trade_executor.store.errors import StoreError
from trade_executor.store.protocol import Claimed
from trade_executor_dev.testing import MemoryStore

pytestmark = pytest.mark.anyio

S = ExecutionState
DEADLINE = 20.0  # guards against a hang; no test asserts anything about speed


def settings_for(paper: PaperServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": None,
        "ib_bridge_url": paper.url,
        "ib_bridge_timeout": 1,
        "execution_enabled": True,
        "max_daily_loss": 100000,
        "max_open_positions": 50,
        "order_poll_interval": 0.1,
        "order_poll_timeout": 30,
        "sweep_interval": 600,
        "listener_health_interval": 0.2,
        "cancelled_recheck_delay": 0.05,
        "shutdown_grace": 1,
        "http_port": 0,
    }
    values.update(overrides)
    return load_settings(**values)


def fast_bounds(settings: Settings) -> StateBounds:
    return state_bounds(settings, received=0.3, reconcile_window=0.5)


@dataclass
class Running:
    store: MemoryStore
    actors: Actors
    broker: ProxyBroker


@asynccontextmanager
async def running(
    settings: Settings,
    store: MemoryStore,
    *,
    prepare: Callable[[ProxyBroker], None] | None = None,
) -> AsyncIterator[Running]:
    async with BrokerClient(settings.ib_bridge_url, settings.ib_bridge_timeout) as client:
        broker = ProxyBroker(client)
        if prepare is not None:
            prepare(broker)
        actors = build_actors(
            settings,
            store,
            broker,
            Metrics(),
            store.notifications.connect,
            bounds=fast_bounds(settings),
            scan_interval=0.05,
        )
        with broker_functions_overridable():
            async with anyio.create_task_group() as tg:
                await actors.start(tg, Supervisor(backoff_base=0.01))
                yield Running(store, actors, broker)
                tg.cancel_scope.cancel()


async def until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(DEADLINE):
        while not predicate():
            await anyio.sleep(0.01)


async def until_halted(store: MemoryStore) -> None:
    """Until the kill switch is set in the store (the breaker's durable write)."""
    with anyio.fail_after(DEADLINE):
        while not (await store.control()).halted:
            await anyio.sleep(0.01)


def state_of(store: MemoryStore, signal_id: UUID) -> ExecutionState | None:
    execution = store.execution_of(signal_id)
    return None if execution is None else execution.state


def final_or_unknown(store: MemoryStore, signal_id: UUID) -> bool:
    state = state_of(store, signal_id)
    return state is not None and (state.is_final or state is S.UNKNOWN)


def events(store: MemoryStore, execution_id: UUID) -> list[str]:
    return [event.kind for event in store.events_of(execution_id)]


def ledger_riskbook(store: MemoryStore, settings: Settings, trading_state: TradingState) -> Any:
    return rebuild_riskbook(
        risk_limits(settings),
        settings.timezone,
        store.executions,
        datetime.now(UTC),
        trading_state,
    )


async def left_received(store: MemoryStore, symbol: str) -> Execution:
    """A claim nobody decides: as a crash after the claim, or a deposed leader, leaves it."""
    signal_id = store.add_signal(symbol)
    approval_id = store.add_approval(signal_id, notify=False)
    execution_id = uuid4()
    claim = await store.claim(approval_id, execution_id, f"te-{execution_id.hex}")
    assert isinstance(claim, Claimed)
    return claim.execution


async def left_submitting(store: MemoryStore, symbol: str) -> Execution:
    """An intent whose POST's fate nobody established (a crash between intent and answer)."""
    claimed = await left_received(store, symbol)
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
    return await store.apply(claimed.id, Transition.BEGIN_SUBMIT, plan)


# -- received --------------------------------------------------------------------------------


async def test_a_received_claim_left_behind_is_decided_by_the_scan(paper: PaperServer) -> None:
    store = MemoryStore()
    settings = settings_for(paper)
    with capture_logs() as logs:
        async with running(settings, store) as run:
            # Claimed after start-up, so no recovery sees it: only the scan can.
            claimed = await left_received(store, "LEFT")
            await until(lambda: state_of(store, claimed.signal_id) is S.SUBMITTED)
            assert run.actors.executor.riskbook.is_open("LEFT")
    assert "deadline.redecide" in {entry["event"] for entry in logs}
    assert [o["symbol"] for o in await paper.parent_orders()] == ["LEFT"]


class RefusingIntentStore(MemoryStore):
    """The database refuses the intent write for a reason retrying repeats (reproduction 3:
    a quantity beyond the column's range)."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals = 0

    async def apply(
        self,
        execution_id: UUID,
        transition: Transition,
        changes: Changes,
        detail: dict[str, Any] | None = None,
        trade: TradeRecord | None = None,
        *,
        trade_notes: str | None = None,
        announce: bool = False,
    ) -> Execution:
        if transition is Transition.BEGIN_SUBMIT:
            self.refusals += 1
            raise StoreError('value "2500000000" is out of range for type integer')
        return await super().apply(
            execution_id,
            transition,
            changes,
            detail,
            trade,
            trade_notes=trade_notes,
            announce=announce,
        )


async def test_an_error_that_repeats_before_the_post_fails_internal_at_once(
    paper: PaperServer,
) -> None:
    store = RefusingIntentStore()
    settings = settings_for(paper)
    signal_id = store.add_signal("BIG")
    async with running(settings, store) as run:
        store.add_approval(signal_id)
        await until(lambda: final_or_unknown(store, signal_id))
        book = run.actors.executor.riskbook
        await until(lambda: book.in_flight() == 0)  # the row is written just before
        assert not book.is_open("BIG")  # risk released
        assert book.daily_risk_used(datetime.now(UTC)) == 0
    failed = store.execution_of(signal_id)
    assert failed is not None and failed.state is S.FAILED
    assert failed.reason == 'internal: value "2500000000" is out of range for type integer'
    assert store.refusals == 1  # decided once, not again and again

    async with running(settings, store):  # a restart does not decide it into the error again
        await anyio.sleep(0.5)
    assert store.refusals == 1
    assert await paper.parent_orders() == []


class BrokenSignalStore(MemoryStore):
    """Reading one signal always fails the same way (a row the code cannot read)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: set[UUID] = set()
        self.reads = 0

    async def get_signal(self, signal_id: UUID) -> Any:
        if signal_id in self.broken:
            self.reads += 1
            raise StoreError("invalid input syntax for type numeric")
        return await super().get_signal(signal_id)


async def test_a_received_claim_whose_error_repeats_ends_failed_internal(
    paper: PaperServer,
) -> None:
    store = BrokenSignalStore()
    settings = settings_for(paper)
    async with running(settings, store) as run:
        claimed = await left_received(store, "BROKEN")
        store.broken.add(claimed.signal_id)
        await until(lambda: final_or_unknown(store, claimed.signal_id))
        await until(lambda: run.actors.executor.riskbook.in_flight() == 0)
    failed = store.execution_of(claimed.signal_id)
    assert failed is not None and failed.state is S.FAILED
    assert failed.reason == "internal: StoreError: invalid input syntax for type numeric"
    assert store.reads == 3  # the same error three times, then it ends: bounded


# -- submitting --------------------------------------------------------------------------------


async def test_a_submitting_row_left_behind_is_adopted_by_the_scan(paper: PaperServer) -> None:
    store = MemoryStore()
    settings = settings_for(paper)
    async with running(settings, store):
        intent = await left_submitting(store, "ORPHAN")
        async with BrokerClient(paper.url, 5) as client:  # the POST that did reach the bridge
            placed = await client.place(
                OrderRequest(
                    "ORPHAN",
                    Action.BUY,
                    133,
                    OrderType.LMT,
                    Decimal("150"),
                    None,
                    intent.client_order_id,
                )
            )
        await until(lambda: state_of(store, intent.signal_id) is S.SUBMITTED)
    adopted = store.execution_of(intent.signal_id)
    assert adopted is not None and adopted.order_id == placed.order_id
    assert "order.adopted" in events(store, adopted.id)
    assert [o["order_id"] for o in await paper.parent_orders()] == [placed.order_id]


async def test_a_reconciliation_that_raises_ends_unknown_after_bounded_retries(
    paper: PaperServer,
) -> None:
    """Reproduction 6: the look-up raises (not a BrokerError); the row must not stay
    `submitting` for good."""

    async def raising(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("asked for order 0, answer is for 7")

    store = MemoryStore()
    settings = settings_for(paper)
    prepare: Callable[[ProxyBroker], None] = lambda b: b.override("locate_submission", raising)  # noqa: E731
    async with running(settings, store, prepare=prepare) as run:
        intent = await left_submitting(store, "RAISES")
        await until(lambda: final_or_unknown(store, intent.signal_id))
        calls = run.broker.calls["locate_submission"]
        book = run.actors.executor.riskbook
        assert book.is_open("RAISES")  # unknown: the order may be working, the risk stays
    unknown = store.execution_of(intent.signal_id)
    assert unknown is not None and unknown.state is S.UNKNOWN
    assert unknown.reason == "reconcile_failed: ValueError: asked for order 0, answer is for 7"
    assert calls == 3


async def test_a_bridge_away_for_the_whole_window_ends_unknown(paper: PaperServer) -> None:
    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        return Unreachable("GET /orders: connection refused")

    store = MemoryStore()
    prepare: Callable[[ProxyBroker], None] = lambda b: b.override("locate_submission", unreachable)  # noqa: E731
    async with running(settings_for(paper), store, prepare=prepare):
        intent = await left_submitting(store, "AWAY")
        await until(lambda: final_or_unknown(store, intent.signal_id))
    unknown = store.execution_of(intent.signal_id)
    assert unknown is not None and unknown.state is S.UNKNOWN
    assert unknown.reason == "ambiguous_submission: GET /orders: connection refused"


# -- the circuit breaker -----------------------------------------------------------------------


async def refused(*args: Any, **kwargs: Any) -> Any:
    raise BrokerRejected(
        "status 400", endpoint="POST /orders/bracket", status=400, detail="no permissions"
    )


def refuse_orders(broker: ProxyBroker) -> None:
    broker.override("place", refused)


async def approve_and_settle(store: MemoryStore, symbol: str) -> Execution:
    signal_id = store.add_signal(symbol)
    store.add_approval(signal_id)
    await until(
        lambda: final_or_unknown(store, signal_id) or state_of(store, signal_id) is S.SUBMITTED
    )
    execution = store.execution_of(signal_id)
    assert execution is not None
    return execution


async def test_three_failures_in_a_row_halt_with_the_last_reason(paper: PaperServer) -> None:
    store = MemoryStore()
    settings = settings_for(paper, max_consecutive_failures=3)
    async with running(settings, store, prepare=refuse_orders) as run:
        outcomes = [await approve_and_settle(store, f"BRK{n}") for n in range(3)]
        assert [o.state for o in outcomes] == [S.FAILED] * 3
        await until_halted(store)
        control = await store.control()
        assert control.reason == "breaker: broker_rejected: no permissions"
        assert control.changed_by == "breaker"
        assert run.actors.executor.halted
        fourth = await approve_and_settle(store, "BRK3")
        assert (fourth.state, fourth.reason) == (S.REJECTED, "halted")
        assert run.broker.calls["place"] == 3

        await store.set_control(False, None, "operator")  # resume: the count starts afresh
        await until(lambda: not run.actors.executor.halted)
        assert run.actors.executor.breaker_failures == 0
        fifth = await approve_and_settle(store, "BRK4")
        assert fifth.state is S.FAILED
        assert not (await store.control()).halted


async def test_a_placed_order_resets_the_count(paper: PaperServer) -> None:
    store = MemoryStore()
    settings = settings_for(paper, max_consecutive_failures=3)
    failing = True
    client_place: Callable[..., Any] = refused

    async def sometimes(*args: Any, **kwargs: Any) -> Any:
        if failing:
            return await refused()
        return await client_place(*args, **kwargs)

    def prepare(broker: ProxyBroker) -> None:
        nonlocal client_place
        client_place = broker._inner.place
        broker.override("place", sometimes)

    async with running(settings, store, prepare=prepare) as run:
        for n in range(2):
            assert (await approve_and_settle(store, f"RST{n}")).state is S.FAILED
        failing = False
        assert (await approve_and_settle(store, "RSTOK")).state is S.SUBMITTED
        failing = True
        for n in range(2, 4):
            assert (await approve_and_settle(store, f"RST{n}")).state is S.FAILED
        assert run.actors.executor.breaker_failures == 2
        assert not run.actors.executor.halted
    assert not (await store.control()).halted


async def test_the_count_survives_a_restart(paper: PaperServer) -> None:
    store = MemoryStore()
    settings = settings_for(paper, max_consecutive_failures=3)
    async with running(settings, store, prepare=refuse_orders):
        for n in range(2):
            assert (await approve_and_settle(store, f"RS{n}")).state is S.FAILED
    async with running(settings, store, prepare=refuse_orders) as run:
        assert run.actors.executor.breaker_failures == 2  # restored from the ledger
        assert (await approve_and_settle(store, "RS2")).state is S.FAILED
        await until_halted(store)
    assert (await store.control()).reason == "breaker: broker_rejected: no permissions"


async def test_zero_turns_the_breaker_off(paper: PaperServer) -> None:
    store = MemoryStore()
    settings = settings_for(paper, max_consecutive_failures=0)
    async with running(settings, store, prepare=refuse_orders) as run:
        for n in range(4):
            assert (await approve_and_settle(store, f"OFF{n}")).state is S.FAILED
        assert not run.actors.executor.halted
    assert not (await store.control()).halted


# -- input bounds ------------------------------------------------------------------------------


async def test_a_symbol_with_blanks_is_one_symbol_everywhere(paper: PaperServer) -> None:
    """Reproduction 4: ' amb4 ' was sent as AMB4 but reconciled as ' amb4 '; with the answer
    lost, reconciliation must find the order (adopted), not give up (unknown)."""
    await paper.set_faults(drop_after_accept=1.0)
    store = MemoryStore()
    signal_id = store.add_signal(" amb4 ")
    with capture_logs() as logs:
        async with running(settings_for(paper), store) as run:
            store.add_approval(signal_id)
            await until(
                lambda: (
                    final_or_unknown(store, signal_id) or state_of(store, signal_id) is S.SUBMITTED
                )
            )
            assert run.actors.executor.riskbook.is_open("AMB4")
    execution = store.execution_of(signal_id)
    assert execution is not None
    assert (execution.state, execution.symbol) == (S.SUBMITTED, "AMB4")
    assert "order.adopted" in {entry["event"] for entry in logs}  # found by reconciliation
    assert [t["symbol"] for t in store.trades.values()] == ["AMB4"]
    assert [o["symbol"] for o in await paper.parent_orders()] == ["AMB4"]
    assert store.signals[signal_id].symbol == "AMB4"


# -- operator settlement -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transition", "frees"),
    [
        (Transition.RESOLVE_FAILED, True),
        (Transition.RESOLVE_CANCELLED, True),
        (Transition.RESOLVE_FILLED, False),
    ],
)
async def test_a_resolve_reaches_the_running_executor(
    paper: PaperServer, transition: Transition, frees: bool
) -> None:
    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        return Unreachable("GET /orders: connection refused")

    store = MemoryStore()
    settings = settings_for(paper)
    prepare: Callable[[ProxyBroker], None] = lambda b: b.override("locate_submission", unreachable)  # noqa: E731
    async with running(settings, store, prepare=prepare) as run:
        intent = await left_submitting(store, "OPER")
        await until(lambda: state_of(store, intent.signal_id) is S.UNKNOWN)
        book = run.actors.executor.riskbook
        now = datetime.now(UTC)
        assert book.is_open("OPER") and book.daily_risk_used(now) == Decimal("665.00")

        changes = Changes(reason="resolved by test", filled_qty=133 if not frees else None)
        await store.apply(intent.id, transition, changes, {"by": "test"})
        await store.announce_change(intent.id)
        await until(lambda: book.in_flight() == 0)
        if frees:
            assert not book.is_open("OPER")
            assert book.daily_risk_used(now) == 0
        else:
            assert book.is_open("OPER")  # a filled position holds its symbol and its risk
            assert book.daily_risk_used(now) == Decimal("665.00")
        control = await store.control()
        expected = ledger_riskbook(store, settings, TradingState(control.halted, control.reason))
        assert book.daily_risk_used(now) == expected.daily_risk_used(now)


def test_every_non_final_state_but_unknown_has_a_bound() -> None:
    settings = load_settings(database_url=None)
    bounds = state_bounds(settings)
    assert {s for s in NOT_FINAL_STATES if bounds.bound(s) is None} == {S.UNKNOWN}
    assert bounds.bound(S.SUBMITTING) == settings.ib_bridge_timeout + bounds.reconcile_window
    assert bounds.bound(S.SUBMITTED) == bounds.bound(S.PARTIALLY_FILLED)
    assert bounds.bound(S.SUBMITTED) > settings.order_poll_timeout  # type: ignore[operator]
    created = datetime(2026, 3, 2, tzinfo=UTC)
    received = Execution(uuid4(), uuid4(), None, S.RECEIVED, "te-x", created_at=created)
    assert bounds.deadline(received) == created + timedelta(seconds=bounds.received)


def test_the_working_bound_is_the_pollers_own() -> None:
    """`resolve` accepts a working execution exactly when the pollers would give it up."""

    for interval in (0.1, 10, 25):
        settings = load_settings(database_url=None, order_poll_interval=interval)
        bounds = state_bounds(settings)
        assert bounds.working == poll_bounds(settings).lost_after
