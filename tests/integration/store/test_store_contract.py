"""One contract for both `Store` implementations: `PgStore` (real PostgreSQL, asyncio only) and
`MemoryStore` (asyncio and trio). The same test body runs against each, through a small harness
that inserts signals and approvals and reads back the rows a `Store` does not expose.

The contract is kept per role (`store.protocol`): each test says which role it holds
(`@contract(Role)`), and `test_every_method_of_every_role_has_its_contract` fails when a method
of a role is called by none of its role's tests. The original service's tables (`OriginalStore`)
are PostgreSQL's alone: the memory store's are test inputs, not semantics (`pg_only`).

The trio x PostgreSQL combination is skipped: asyncpg runs on asyncio only.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from uuid import UUID

import anyio
import asyncpg
import pytest

from trade_executor.domain.attention import Bounds
from trade_executor.domain.breaks import BreakKind, ReconcileBreak
from trade_executor.domain.execution import Changes, Execution, TradeRecord
from trade_executor.domain.guardrails import GuardrailFacts
from trade_executor.domain.states import ExecutionState, IllegalTransition, Transition
from trade_executor.store.errors import StoreConflict
from trade_executor.store.notifications import (
    APPROVALS_CHANNEL,
    CONTROL_ACK_CHANNEL,
    CONTROL_CHANNEL,
    NotificationSource,
    PgNotificationSource,
)
from trade_executor.store.postgres import PgStore, create_pool
from trade_executor.store.protocol import (
    AlreadyClaimed,
    AuditEntry,
    BreakStore,
    Claimed,
    ClaimStore,
    ControlState,
    LedgerStore,
    NotClaimable,
    OperatorStore,
    OriginalStore,
    OriginalTables,
    PendingApproval,
    Store,
)
from trade_executor_dev.testing import MemoryStore

pytestmark = pytest.mark.anyio


S = ExecutionState
TRADING_DAY = date(2024, 3, 15)

# The roles that partition `Store`, and the tests that hold each one's contract.
PARTITION: tuple[type, ...] = (ClaimStore, LedgerStore, OperatorStore, OriginalStore, BreakStore)
CONTRACTS: dict[type, list[Callable[..., Any]]] = {role: [] for role in PARTITION}

Test = TypeVar("Test", bound=Callable[..., Any])


def contract(*roles: type) -> Callable[[Test], Test]:
    """The test holds (part of) the contract of `roles`."""

    def register(test: Test) -> Test:
        for role in roles:
            CONTRACTS[role].append(test)
        return test

    return register


class Harness(Protocol):
    store: Store

    async def add_signal(
        self,
        symbol: str | None = "AAPL",
        side: str | None = "BUY",
        *,
        entry: str = "150",
        signal_id: UUID | None = None,
    ) -> UUID: ...

    async def add_approval(
        self, signal_id: UUID, approved: bool = True, *, approved_at: datetime | None = None
    ) -> UUID: ...

    async def events(self, execution_id: UUID) -> list[tuple[str, dict[str, Any]]]: ...

    async def trade_row(self, trade_id: str) -> dict[str, Any] | None: ...

    async def listen(self) -> NotificationSource: ...

    async def notify(self, channel: str, payload: str) -> None: ...

    async def approve_by_status(self, signal_id: UUID) -> None:
        """The original's UI: `UPDATE strategy_signals SET status = 'approved'`."""


# -- PostgreSQL ----------------------------------------------------------------------------------

TRUNCATE = """
TRUNCATE execution_events, executions, trades, trade_approvals, strategy_signals,
         signal_status_approvals, trade_executor_reconcile_breaks
RESTART IDENTITY CASCADE
"""
RESET_CONTROL = "UPDATE executor_control SET halted = false, reason = NULL, changed_by = NULL"
INSERT_SIGNAL = """
INSERT INTO strategy_signals (id, symbol, strategy_id, signal_type, confidence, entry_price,
                              stop_loss, take_profit, reasoning, expires_at)
VALUES ($1, $2, 'test-strategy', $3, 0.8, $4::numeric, 145, 160, 'test', now() + interval '1 hour')
"""
INSERT_APPROVAL = """
INSERT INTO trade_approvals (id, signal_id, approved, approved_at, approved_by)
VALUES ($1, $2, $3, $4, 'tester')
"""
TRADE_COLUMNS = (
    "id",
    "signal_id",
    "symbol",
    "direction",
    "entry",
    "stop",
    "targets",
    "strategy_id",
    "notes",
    "risk",
    "order_status",
    "filled_qty",
    "avg_fill_price",
)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text, parse_float=Decimal)


class PgHarness:
    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self.pool = pool
        self.store: Store = PgStore(pool)

    async def add_signal(
        self,
        symbol: str | None = "AAPL",
        side: str | None = "BUY",
        *,
        entry: str = "150",
        signal_id: UUID | None = None,
    ) -> UUID:
        signal_id = signal_id or uuid.uuid4()
        await self.pool.execute(INSERT_SIGNAL, signal_id, symbol, side, Decimal(entry))
        return signal_id

    async def add_approval(
        self, signal_id: UUID, approved: bool = True, *, approved_at: datetime | None = None
    ) -> UUID:
        approval_id = uuid.uuid4()
        stamp = approved_at or (datetime.now(UTC) if approved else None)
        await self.pool.execute(INSERT_APPROVAL, approval_id, signal_id, approved, stamp)
        return approval_id

    async def events(self, execution_id: UUID) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.pool.fetch(
            "SELECT kind, detail FROM execution_events WHERE execution_id = $1 ORDER BY id",
            execution_id,
        )
        return [(row["kind"], json.loads(row["detail"])) for row in rows]

    async def trade_row(self, trade_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM trades WHERE id = $1", trade_id)
        if row is None:
            return None
        found = {name: row[name] for name in TRADE_COLUMNS}
        found["targets"] = _loads(found["targets"])
        found["risk"] = _loads(found["risk"])
        return found

    async def listen(self) -> NotificationSource:
        """The service's channels (`connect_notifications`'s), and the acknowledgements'."""
        channels = [APPROVALS_CHANNEL, CONTROL_CHANNEL, CONTROL_ACK_CHANNEL]
        return await PgNotificationSource.connect(self.url, channels)

    async def notify(self, channel: str, payload: str) -> None:
        await self.pool.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def approve_by_status(self, signal_id: UUID) -> None:
        await self.pool.execute(
            "UPDATE strategy_signals SET status = 'approved' WHERE id = $1", signal_id
        )


# -- memory --------------------------------------------------------------------------------------


class MemoryHarness:
    def __init__(self) -> None:
        self.memory = MemoryStore()
        self.hub = self.memory.notifications
        self.store: Store = self.memory

    async def add_signal(
        self,
        symbol: str | None = "AAPL",
        side: str | None = "BUY",
        *,
        entry: str = "150",
        signal_id: UUID | None = None,
    ) -> UUID:
        return self.memory.add_signal(symbol, side, entry, signal_id=signal_id)

    async def add_approval(
        self, signal_id: UUID, approved: bool = True, *, approved_at: datetime | None = None
    ) -> UUID:
        return self.memory.add_approval(signal_id, approved, approved_at=approved_at)

    async def events(self, execution_id: UUID) -> list[tuple[str, dict[str, Any]]]:
        return [(event.kind, event.detail) for event in self.memory.events_of(execution_id)]

    async def trade_row(self, trade_id: str) -> dict[str, Any] | None:
        row = self.memory.trades.get(trade_id)
        if row is None:
            return None
        return {name: row[name] for name in TRADE_COLUMNS}

    async def listen(self) -> NotificationSource:
        return await self.hub.connect()

    async def notify(self, channel: str, payload: str) -> None:
        self.hub.notify(channel, payload)

    async def approve_by_status(self, signal_id: UUID) -> None:
        self.memory.approve_by_status(signal_id)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(params=["postgres", "memory"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, store_kind: str) -> str | None:
    if store_kind != "postgres":
        return None
    # one migrated database for the module, emptied before each test
    return str(request.getfixturevalue("module_database_url"))


@pytest.fixture
async def harness(pg_url: str | None) -> AsyncIterator[Harness]:
    if pg_url is None:
        yield MemoryHarness()
        return
    pool = await create_pool(pg_url, min_size=1, max_size=4)
    try:
        await pool.execute(TRUNCATE)
        await pool.execute(RESET_CONTROL)
        yield PgHarness(pg_url, pool)
    finally:
        await pool.close()


# -- helpers -------------------------------------------------------------------------------------


async def claimed(h: Harness, symbol: str = "AAPL") -> Claimed:
    signal_id = await h.add_signal(symbol)
    approval_id = await h.add_approval(signal_id)
    execution_id = uuid.uuid4()
    outcome = await h.store.claim(approval_id, execution_id, f"te-{execution_id.hex}")
    assert isinstance(outcome, Claimed)
    return outcome


PLAN = Changes(
    action="BUY",
    order_type="LMT",
    quantity=133,
    entry_price=Decimal("150.00"),
    stop_loss=Decimal("145.00"),
    take_profit=Decimal("160.00"),
    risk_amount=Decimal("665.00"),
    risk_percent=Decimal("0.00665"),
    position_value=Decimal("19950.00"),
    trading_day=TRADING_DAY,
    attempted_at=datetime(2024, 3, 15, 14, 30, tzinfo=UTC),
)

# How to bring a fresh (`received`) execution into each state.
T = Transition
PATHS: dict[ExecutionState, list[Transition]] = {
    S.RECEIVED: [],
    S.SUBMITTING: [T.BEGIN_SUBMIT],
    S.SUBMITTED: [T.BEGIN_SUBMIT, T.ACCEPT],
    S.PARTIALLY_FILLED: [T.BEGIN_SUBMIT, T.ACCEPT, T.PARTIAL_FILL],
    S.FILLED: [T.BEGIN_SUBMIT, T.ACCEPT, T.FILL],
    S.CANCELLED: [T.BEGIN_SUBMIT, T.ACCEPT, T.CANCEL],
    S.REJECTED: [T.REJECT],
    S.FAILED: [T.FAIL],
    S.DRY_RUN: [T.DRY_RUN],
    S.UNKNOWN: [T.BEGIN_SUBMIT, T.LOSE_TRACK],
}


async def in_state(h: Harness, state: ExecutionState, symbol: str = "AAPL") -> Execution:
    execution = (await claimed(h, symbol)).execution
    for step in PATHS[state]:
        execution = await h.store.apply(execution.id, step, Changes())
    assert execution.state is state
    return execution


def trade_record(execution: Execution, order_id: int | None, status: str) -> TradeRecord:
    return TradeRecord(
        trade_id=str(execution.id),
        signal_id=execution.signal_id,
        symbol="AAPL",
        direction="BUY",
        entry=Decimal("150.00"),
        stop=Decimal("145.00"),
        take_profit=Decimal("160.00"),
        strategy_id="test-strategy",
        notes=None,
        quantity=133,
        risk_amount=Decimal("665.00"),
        risk_percent=Decimal("0.00665"),
        position_value=Decimal("19950.00"),
        order_id=order_id,
        order_status=status,
    )


# -- claim ---------------------------------------------------------------------------------------


@contract(ClaimStore)
async def test_a_claim_inserts_a_received_execution_and_a_claimed_event(h: Harness) -> None:
    signal_id = await h.add_signal("MSFT", "SELL")
    approval_id = await h.add_approval(signal_id)
    execution_id = uuid.uuid4()

    outcome = await h.store.claim(approval_id, execution_id, "te-coid-1")

    assert isinstance(outcome, Claimed)
    execution = outcome.execution
    assert execution.id == execution_id
    assert execution.signal_id == signal_id and execution.approval_id == approval_id
    assert execution.state is S.RECEIVED
    assert execution.client_order_id == "te-coid-1"
    assert (execution.symbol, execution.action) == ("MSFT", "SELL")
    assert execution.filled_qty == 0 and execution.child_order_ids == ()
    assert execution.order_id is None and execution.finished_at is None
    assert execution.created_at is not None
    assert outcome.signal.id == signal_id and outcome.signal.entry_price == Decimal(150)
    assert outcome.approval.id == approval_id and outcome.approval.approved
    assert await h.store.get_execution(execution_id) == execution
    assert await h.store.execution_for_signal(signal_id) == execution
    assert await h.events(execution_id) == [
        ("execution.claimed", {"approval_id": str(approval_id), "approved_by": "tester"})
    ]


@contract(ClaimStore)
async def test_a_signal_is_claimed_once_whatever_approval_claims_it(h: Harness) -> None:
    signal_id = await h.add_signal()
    first_approval = await h.add_approval(signal_id)
    second_approval = await h.add_approval(signal_id)  # two approval rows for one signal
    first = await h.store.claim(first_approval, uuid.uuid4(), "te-a")
    assert isinstance(first, Claimed)

    again = await h.store.claim(first_approval, uuid.uuid4(), "te-b")
    other_row = await h.store.claim(second_approval, uuid.uuid4(), "te-c")

    assert isinstance(again, AlreadyClaimed) and isinstance(other_row, AlreadyClaimed)
    assert again.execution == first.execution and other_row.execution == first.execution
    assert await h.events(first.execution.id) == [
        ("execution.claimed", {"approval_id": str(first_approval), "approved_by": "tester"})
    ]


@contract(ClaimStore)
async def test_concurrent_claims_of_one_signal_make_one_execution(h: Harness) -> None:
    signal_id = await h.add_signal()
    approvals = [await h.add_approval(signal_id) for _ in range(3)]
    outcomes: list[object] = []

    async def claim(approval_id: UUID) -> None:
        execution_id = uuid.uuid4()
        outcomes.append(await h.store.claim(approval_id, execution_id, f"te-{execution_id}"))

    async with anyio.create_task_group() as tg:
        for approval_id in approvals * 2:
            tg.start_soon(claim, approval_id)

    winners = [o for o in outcomes if isinstance(o, Claimed)]
    losers = [o for o in outcomes if isinstance(o, AlreadyClaimed)]
    assert len(winners) == 1 and len(losers) == 5
    assert {o.execution.id for o in losers} == {winners[0].execution.id}


@contract(ClaimStore)
async def test_nothing_to_claim_answers_not_claimable_and_writes_nothing(h: Harness) -> None:
    signal_id = await h.add_signal()
    unapproved = await h.add_approval(signal_id, approved=False)

    missing = await h.store.claim(uuid.uuid4(), uuid.uuid4(), "te-x")
    refused = await h.store.claim(unapproved, uuid.uuid4(), "te-y")

    assert missing == NotClaimable("approval not found")
    assert refused == NotClaimable("not_approved")
    assert await h.store.execution_for_signal(signal_id) is None
    assert await h.store.executions_in(list(S)) == []


@contract(ClaimStore)
async def test_a_claim_keeps_an_invalid_signal_for_the_executor_to_reject(h: Harness) -> None:
    hold = await h.add_signal("X" * 100, "HOLD")
    nameless = await h.add_signal(None, None)
    results = []
    for signal_id in (hold, nameless):
        approval_id = await h.add_approval(signal_id)
        execution_id = uuid.uuid4()
        outcome = await h.store.claim(approval_id, execution_id, f"te-{execution_id}")
        assert isinstance(outcome, Claimed)
        results.append((outcome.execution.symbol, outcome.execution.action))
    assert results == [("X" * 64, None), (None, None)]


@contract(ClaimStore)
async def test_a_duplicate_client_order_id_is_refused(h: Harness) -> None:
    first = await claimed(h, "AAPL")
    other_signal = await h.add_signal("MSFT")
    approval_id = await h.add_approval(other_signal)

    with pytest.raises(StoreConflict):  # the store's own error, whichever store
        await h.store.claim(approval_id, uuid.uuid4(), first.execution.client_order_id)

    assert await h.store.execution_for_signal(other_signal) is None


# -- apply ---------------------------------------------------------------------------------------


@contract(LedgerStore)
async def test_apply_moves_along_a_transition_and_sets_the_changes(h: Harness) -> None:
    execution = (await claimed(h)).execution

    intent = await h.store.apply(execution.id, Transition.BEGIN_SUBMIT, PLAN, {"q": 133})

    assert intent is not None
    assert intent.state is S.SUBMITTING
    assert intent.quantity == 133 and intent.order_type == "LMT"
    assert intent.entry_price == Decimal("150.00") and intent.take_profit == Decimal("160.00")
    assert intent.risk_amount == Decimal("665.00")
    assert intent.risk_percent == Decimal("0.00665")
    assert intent.position_value == Decimal("19950.00")
    assert intent.trading_day == TRADING_DAY
    assert intent.attempted_at == PLAN.attempted_at
    assert intent.client_order_id == execution.client_order_id
    assert intent.finished_at is None
    assert await h.store.get_execution(execution.id) == intent
    assert (await h.events(execution.id))[1:] == [
        ("order.submitting", {"state": "submitting", "q": 133})
    ]


@contract(LedgerStore)
async def test_every_transition_is_guarded_by_its_source_states(h: Harness) -> None:
    """From every state, every transition: allowed exactly when the state machine says so;
    otherwise apply raises IllegalTransition naming the current state and changes nothing,
    not even the events."""
    for index, state in enumerate(PATHS):
        for transition in Transition:
            execution = await in_state(h, state, f"S{index}")
            events_before = await h.events(execution.id)
            changes = Changes(reason="probe", broker_status="Probe")

            if transition.allows(state):
                result = await h.store.apply(execution.id, transition, changes)
                assert result.state is (transition.target or state)
                assert result.reason == "probe"
                assert await h.store.get_execution(execution.id) == result
                events = await h.events(execution.id)
                assert events[len(events_before) :] == [
                    (transition.event, {"state": result.state.value})
                ]
            else:
                with pytest.raises(IllegalTransition) as refused:
                    await h.store.apply(execution.id, transition, changes)
                assert refused.value.current is state, (state, transition)
                assert await h.store.get_execution(execution.id) == execution
                assert await h.events(execution.id) == events_before, (state, transition)


@contract(LedgerStore)
async def test_apply_to_a_missing_execution_raises(h: Harness) -> None:
    for transition in (Transition.REJECT, Transition.PROGRESS):
        with pytest.raises(IllegalTransition) as refused:
            await h.store.apply(uuid.uuid4(), transition, Changes(reason="x"))
        assert refused.value.current is None


@contract(LedgerStore)
async def test_unset_changes_keep_their_values_and_finished_at_is_set_once(h: Harness) -> None:
    execution = (await claimed(h)).execution
    await h.store.apply(execution.id, Transition.BEGIN_SUBMIT, PLAN)
    accepted = await h.store.apply(
        execution.id,
        Transition.ACCEPT,
        Changes(order_id=101, child_order_ids=(102, 103), broker_status="Submitted"),
    )
    assert accepted is not None
    status_only = await h.store.apply(
        execution.id, Transition.PROGRESS, Changes(broker_status="PreSubmitted")
    )
    filled = await h.store.apply(
        execution.id,
        Transition.FILL,
        Changes(filled_qty=133, avg_fill_price=Decimal("149.50"), broker_status="Filled"),
    )

    assert status_only is not None and status_only.state is S.SUBMITTED
    assert status_only.order_id == 101 and status_only.broker_status == "PreSubmitted"
    assert filled is not None and filled.state is S.FILLED
    assert filled.order_id == 101 and filled.child_order_ids == (102, 103)
    assert filled.quantity == 133 and filled.risk_amount == Decimal("665.00")
    assert filled.filled_qty == 133 and filled.avg_fill_price == Decimal("149.50")
    assert filled.finished_at is not None
    assert accepted.finished_at is None and status_only.finished_at is None
    # A final execution takes no more field updates.
    with pytest.raises(IllegalTransition):
        await h.store.apply(execution.id, Transition.PROGRESS, Changes(reason="late"))
    assert await h.store.get_execution(execution.id) == filled
    kinds = [kind for kind, _ in await h.events(execution.id)]
    assert kinds == [
        "execution.claimed",
        "order.submitting",
        "order.submitted",
        "order.progress",
        "order.filled",
    ]


@contract(LedgerStore)
async def test_a_trade_row_is_written_and_the_approved_approvals_are_linked(h: Harness) -> None:
    signal_id = await h.add_signal()
    approval_id = await h.add_approval(signal_id)
    second_approval = await h.add_approval(signal_id)
    unapproved = await h.add_approval(signal_id, approved=False)
    claim = await h.store.claim(approval_id, uuid.uuid4(), "te-trade")
    assert isinstance(claim, Claimed)
    execution = claim.execution
    intent = await h.store.apply(execution.id, Transition.BEGIN_SUBMIT, PLAN)
    assert intent is not None

    recorded = await h.store.apply(
        execution.id,
        Transition.ACCEPT,
        Changes(order_id=7001, child_order_ids=(7002, 7003), broker_status="Submitted"),
        {"order_id": 7001},
        trade_record(intent, 7001, "Submitted"),
    )

    assert recorded is not None and recorded.state is S.SUBMITTED
    row = await h.trade_row(str(execution.id))
    assert row is not None
    assert row["signal_id"] == signal_id
    assert (row["symbol"], row["direction"], row["strategy_id"]) == ("AAPL", "BUY", "test-strategy")
    assert row["entry"] == Decimal("150.00") and row["stop"] == Decimal("145.00")
    assert row["targets"] == [Decimal("160.00")]
    assert row["order_status"] == "Submitted"
    assert row["filled_qty"] == 0 and row["avg_fill_price"] is None
    assert row["risk"] == {
        "amount": Decimal("665.00"),
        "percent": Decimal("0.00665"),
        "position_value": Decimal("19950.00"),
        "quantity": 133,
        "order_id": "7001",
        "status": "Submitted",
    }
    for linked in (approval_id, second_approval):
        approval = await h.store.get_approval(linked)
        assert approval is not None and approval.order_id == "7001"
    left_alone = await h.store.get_approval(unapproved)
    assert left_alone is not None and left_alone.order_id is None


@contract(LedgerStore)
async def test_progress_updates_the_trade_row(h: Harness) -> None:
    execution = (await claimed(h)).execution
    intent = await h.store.apply(execution.id, Transition.BEGIN_SUBMIT, PLAN)
    assert intent is not None
    await h.store.apply(
        execution.id,
        Transition.ACCEPT,
        Changes(order_id=55, broker_status="Submitted"),
        trade=trade_record(intent, 55, "Submitted"),
    )

    await h.store.apply(
        execution.id,
        Transition.PARTIAL_FILL,
        Changes(filled_qty=40, avg_fill_price=Decimal("149.9"), broker_status="Submitted"),
    )
    partial = await h.trade_row(str(execution.id))
    await h.store.apply(
        execution.id,
        Transition.FILL,
        Changes(filled_qty=133, avg_fill_price=Decimal("149.95"), broker_status="Filled"),
    )
    final = await h.trade_row(str(execution.id))

    assert partial is not None and final is not None
    assert (partial["order_status"], partial["filled_qty"]) == ("Submitted", 40)
    assert partial["avg_fill_price"] == Decimal("149.9")
    assert (final["order_status"], final["filled_qty"]) == ("Filled", 133)
    assert final["avg_fill_price"] == Decimal("149.95")
    assert final["risk"]["status"] == "Filled" and final["risk"]["order_id"] == "55"


@contract(LedgerStore)
async def test_a_second_trade_write_updates_only_status_and_risk(h: Harness) -> None:
    execution = (await claimed(h)).execution
    planned = replace(execution, quantity=133)
    await h.store.apply(
        execution.id, Transition.BEGIN_SUBMIT, PLAN, trade=trade_record(planned, None, "x")
    )
    changed = replace(trade_record(planned, 9, "Submitted"), symbol="OTHER", entry=Decimal(1))
    await h.store.apply(execution.id, Transition.ACCEPT, Changes(order_id=9), trade=changed)

    row = await h.trade_row(str(execution.id))
    assert row is not None
    assert row["symbol"] == "AAPL" and row["entry"] == Decimal("150.00")
    assert row["order_status"] == "Submitted"
    assert row["risk"]["order_id"] == "9" and row["risk"]["status"] == "Submitted"


@contract(LedgerStore)
async def test_trade_for_signal_joins_the_trade_and_its_execution(h: Harness) -> None:
    claim = await claimed(h)
    execution = claim.execution
    assert await h.store.trade_for_signal(execution.signal_id) is None
    intent = await h.store.apply(execution.id, Transition.BEGIN_SUBMIT, PLAN)
    assert intent is not None
    submitted_at = datetime(2024, 3, 15, 14, 31, tzinfo=UTC)
    await h.store.apply(
        execution.id,
        Transition.ACCEPT,
        Changes(order_id=77, submitted_at=submitted_at, broker_status="Submitted"),
        trade=trade_record(intent, 77, "Submitted"),
    )

    trade = await h.store.trade_for_signal(execution.signal_id)

    assert trade is not None
    assert trade.fields == {
        "trade_id": str(execution.id),
        "signal_id": execution.signal_id,
        "order_id": 77,
        "symbol": "AAPL",
        "direction": "BUY",
        "quantity": 133,
        "entry_price": Decimal("150.00"),
        "stop_loss": Decimal("145.00"),
        "take_profit": Decimal("160.00"),
        "strategy_id": "test-strategy",
        "status": "submitted",
        "broker_status": "Submitted",
        "filled_qty": 0,
        "avg_fill_price": None,
        "risk_amount": Decimal("665.00"),
        "risk_percent": Decimal("0.00665"),
        "position_value": Decimal("19950.00"),
        "submitted_at": submitted_at,
        "reason": None,
    }


# -- reads ---------------------------------------------------------------------------------------


@contract(ClaimStore)
async def test_pending_approvals_one_per_unclaimed_approved_signal(h: Harness) -> None:
    base = datetime.now(UTC) - timedelta(minutes=10)
    two_rows = await h.add_signal("TWO")
    later = await h.add_approval(two_rows, approved_at=base + timedelta(minutes=2))
    earlier = await h.add_approval(two_rows, approved_at=base + timedelta(minutes=1))
    single = await h.add_signal("ONE")
    single_approval = await h.add_approval(single)
    unapproved_signal = await h.add_signal("NO")
    await h.add_approval(unapproved_signal, approved=False)
    claimed_signal = (await claimed(h, "DONE")).execution.signal_id

    pending = await h.store.pending_approvals(100)

    assert sorted(pending, key=lambda p: str(p.signal_id)) == sorted(
        [PendingApproval(earlier, two_rows), PendingApproval(single_approval, single)],
        key=lambda p: str(p.signal_id),
    )
    assert later not in {p.approval_id for p in pending}
    assert claimed_signal not in {p.signal_id for p in pending}
    assert len(await h.store.pending_approvals(1)) == 1
    assert await h.store.pending_approvals(0) == []


@contract(ClaimStore)
async def test_pending_approvals_are_oldest_first(h: Harness) -> None:
    base = datetime.now(UTC) - timedelta(hours=1)
    approvals = []
    for minute in range(6):
        # The older the approval, the greater its signal's id.
        signal_id = await h.add_signal(f"P{minute}", signal_id=UUID(int=100 - minute))
        approval_id = await h.add_approval(signal_id, approved_at=base + timedelta(minutes=minute))
        approvals.append(approval_id)

    pending = await h.store.pending_approvals(3)

    assert [p.approval_id for p in pending] == approvals[:3]


@contract(OperatorStore)
async def test_approve_returns_the_existing_approval_or_inserts_one(h: Harness) -> None:
    fresh = await h.add_signal("NEW")
    unapproved_only = await h.add_signal("UNAPPROVED")
    refused = await h.add_approval(unapproved_only, approved=False)
    approved_already = await h.add_signal("OLD")
    base = datetime.now(UTC) - timedelta(minutes=5)
    second = await h.add_approval(approved_already, approved_at=base + timedelta(minutes=1))
    first = await h.add_approval(approved_already, approved_at=base)

    inserted = await h.store.approve(fresh, "api")
    again = await h.store.approve(fresh, "someone-else")
    beside_refused = await h.store.approve(unapproved_only, "api")
    existing = await h.store.approve(approved_already, "api")

    assert inserted == again
    approval = await h.store.get_approval(inserted)
    assert approval is not None
    assert approval.approved and approval.approved_by == "api"
    assert approval.signal_id == fresh and approval.approved_at is not None
    assert beside_refused != refused
    assert existing == first and existing != second
    pending = {p.signal_id: p.approval_id for p in await h.store.pending_approvals(100)}
    assert pending[fresh] == inserted and pending[unapproved_only] == beside_refused


@contract(OperatorStore)
async def test_concurrent_approves_of_one_signal_insert_one_approval(h: Harness) -> None:
    signal_id = await h.add_signal()
    answers: list[UUID] = []

    async def approve() -> None:
        answers.append(await h.store.approve(signal_id, "api"))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(approve)

    assert len(set(answers)) == 1


@contract(LedgerStore)
async def test_executions_in_states_and_on_a_trading_day(h: Harness) -> None:
    received = await in_state(h, S.RECEIVED, "A")
    submitted = await in_state(h, S.SUBMITTED, "B")
    partial = await in_state(h, S.PARTIALLY_FILLED, "C")
    rejected = await in_state(h, S.REJECTED, "D")
    await h.store.apply(submitted.id, Transition.PROGRESS, Changes(trading_day=TRADING_DAY))
    await h.store.apply(partial.id, Transition.PROGRESS, Changes(trading_day=TRADING_DAY))
    other_day = await in_state(h, S.SUBMITTED, "E")
    await h.store.apply(other_day.id, Transition.PROGRESS, Changes(trading_day=date(2024, 3, 14)))

    working = await h.store.executions_in([S.SUBMITTED, S.PARTIALLY_FILLED])
    on_day = await h.store.executions_on(TRADING_DAY)

    assert [e.id for e in working] == [submitted.id, partial.id, other_day.id]
    ids = await h.store.execution_ids_in([S.SUBMITTED, S.PARTIALLY_FILLED])
    assert ids == [submitted.id, partial.id, other_day.id]
    assert [e.id for e in on_day] == [submitted.id, partial.id]
    assert [e.id for e in await h.store.executions_in([S.RECEIVED])] == [received.id]
    assert [e.id for e in await h.store.executions_in([S.REJECTED])] == [rejected.id]
    assert await h.store.executions_in([]) == []
    assert await h.store.executions_on(date(2000, 1, 1)) == []


@contract(LedgerStore)
async def test_the_ledger_gauges_are_the_domains_rules_in_one_read(h: Harness) -> None:
    """`ledger_gauges` over both stores: an `unknown` needs an operator whatever its age, a
    `received` one only past its bound; the risk of today's working orders counts."""
    unknown = await in_state(h, S.UNKNOWN, "GA")
    await in_state(h, S.RECEIVED, "GB")
    working = await in_state(h, S.SUBMITTED, "GC")
    changes = Changes(trading_day=TRADING_DAY, risk_amount=Decimal("665.00"))
    await h.store.apply(working.id, Transition.PROGRESS, changes)
    bounds = Bounds(received=timedelta(hours=1), submitting=timedelta(hours=1), working=None)
    now = datetime.now(UTC)

    soon = await h.store.ledger_gauges(TRADING_DAY, now, bounds)
    late = await h.store.ledger_gauges(TRADING_DAY, now + timedelta(hours=2), bounds)

    assert unknown.state is S.UNKNOWN
    assert soon.needing_operator == 1  # the unknown one
    assert late.needing_operator == 2  # and the received one, past its hour
    assert soon.daily_risk_used == Decimal("665.00")


@contract(ClaimStore, LedgerStore, OperatorStore)
async def test_reads_of_signals_approvals_and_events(h: Harness) -> None:
    execution = (await claimed(h)).execution
    signal = await h.store.get_signal(execution.signal_id)
    assert signal is not None
    assert (signal.symbol, signal.signal_type, signal.strategy_id) == (
        "AAPL",
        "BUY",
        "test-strategy",
    )
    assert (signal.entry_price, signal.stop_loss, signal.take_profit) == (
        Decimal(150),
        Decimal(145),
        Decimal(160),
    )
    assert signal.expires_at is not None and signal.expires_at > datetime.now(UTC)
    assert await h.store.get_signal(uuid.uuid4()) is None
    assert await h.store.get_approval(uuid.uuid4()) is None
    assert await h.store.get_execution(uuid.uuid4()) is None
    assert await h.store.execution_for_signal(uuid.uuid4()) is None

    await h.store.add_event(execution.id, "note", {"amount": Decimal("1.50"), "id": execution.id})

    assert (await h.events(execution.id))[-1] == (
        "note",
        {"amount": "1.50", "id": str(execution.id)},
    )
    await h.store.ping()


@contract(OperatorStore)
async def test_the_kill_switch(h: Harness) -> None:
    assert (await h.store.control()).halted is False

    await h.store.set_control(True, "maintenance", "ops")
    halted = await h.store.control()
    await h.store.set_control(False, None, "ops2")
    resumed = await h.store.control()

    assert (halted.halted, halted.reason, halted.changed_by) == (True, "maintenance", "ops")
    assert halted.changed_at is not None
    assert resumed == ControlState(False, None, resumed.changed_at, "ops2")


# -- notifications -------------------------------------------------------------------------------


async def until_sentinel(h: Harness, source: NotificationSource, channel: str) -> list[str]:
    """Payloads on `channel` before a sentinel sent now (delivery is in order: no clock)."""
    sentinel = f"sentinel-{uuid.uuid4()}"
    await h.notify(channel, sentinel)
    received: list[str] = []
    with anyio.fail_after(30):  # a guard against a hang, not a speed assertion
        async for notification in source.notifications:
            if notification.channel != channel:
                continue
            if notification.payload == sentinel:
                return received
            received.append(notification.payload)
    raise AssertionError("the notification stream ended")


@contract(ClaimStore, OperatorStore)
async def test_approved_approvals_and_the_kill_switch_notify(h: Harness) -> None:
    source = await h.listen()
    try:
        signal_id = await h.add_signal()
        await h.add_approval(signal_id, approved=False)
        approval_id = await h.add_approval(signal_id)
        approvals = await until_sentinel(h, source, APPROVALS_CHANNEL)
        await h.store.set_control(True, "drill", "ops")
        await h.store.set_control(False, None, "ops")
        control = await until_sentinel(h, source, CONTROL_CHANNEL)
        await source.ping(timeout=5)
    finally:
        await h.store.set_control(False, None, "test")
        await source.aclose()

    assert [json.loads(p) for p in approvals] == [
        {"approval_id": str(approval_id), "signal_id": str(signal_id)}
    ]
    assert [json.loads(p) for p in control] == [
        {"kind": "kill_switch", "halted": True, "reason": "drill"},
        {"kind": "kill_switch", "halted": False, "reason": None},
    ]


async def test_an_announced_change_notifies_with_its_kind_and_a_refused_one_does_not(
    h: Harness,
) -> None:
    lost = await in_state(h, ExecutionState.UNKNOWN, "ANNC")
    done = await in_state(h, ExecutionState.FAILED, "DONE")
    source = await h.listen()
    try:
        with pytest.raises(IllegalTransition):
            await h.store.apply(
                done.id, Transition.RESOLVE_FAILED, Changes(reason="no"), announce=True
            )
        await h.store.apply(lost.id, Transition.RESOLVE_FAILED, Changes(reason="x"), announce=True)
        await h.store.announce_change(done.id)
        control = await until_sentinel(h, source, CONTROL_CHANNEL)
    finally:
        await source.aclose()
    assert [json.loads(p) for p in control] == [
        {"kind": "execution_changed", "execution_id": str(lost.id)},
        {"kind": "execution_changed", "execution_id": str(done.id)},
    ]


# `h` is the harness under its short name in the tests above.
@pytest.fixture
def h(harness: Harness) -> Harness:
    return harness


# -- one description of the ledger -----------------------------------------------------------------


def _sample(name: str, kind: Any) -> Any:
    """A value for a field of `Changes`, distinct per field, of the field's type (one the
    column's CHECK accepts, where it has one)."""
    constrained = {"position_state": "unprotected", "exit_reason": "take_profit"}
    if name in constrained:
        return constrained[name]
    text = str(kind)
    seed = sum(map(ord, name))
    if "tuple" in text:
        return (seed, seed + 1)
    if "Decimal" in text:
        return Decimal(seed) / 100
    if "datetime" in text:
        return datetime(2024, 3, 15, 9, 30, tzinfo=UTC) + timedelta(seconds=seed)
    if "date" in text:
        return date(2024, 3, 1) + timedelta(days=seed % 28)
    if "int" in text:
        return seed
    return f"{name}-value"


@contract(LedgerStore)
async def test_every_field_of_changes_round_trips_through_the_store(h: Harness) -> None:
    """A field added to `Changes` (and `Execution`) reaches the store without any other edit:
    each is written by `apply` and read back by `get_execution`, on both stores."""
    from dataclasses import fields

    execution = (await claimed(h)).execution
    values = {f.name: _sample(f.name, f.type) for f in fields(Changes)}

    moved = await h.store.apply(execution.id, Transition.BEGIN_SUBMIT, Changes(**values))

    read = await h.store.get_execution(execution.id)
    assert read == moved
    assert {name: getattr(read, name) for name in values} == values


@contract(LedgerStore)
async def test_every_execution_field_is_a_column(h: Harness) -> None:
    """`Execution` is the one description: every field maps to a column of `executions`."""
    from trade_executor.domain.execution import EXECUTION_FIELDS

    if not isinstance(h, PgHarness):
        pytest.skip("the memory store has no columns")
    rows = await h.pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'executions'"
    )
    assert set(EXECUTION_FIELDS) <= {row["column_name"] for row in rows}


# -- claims: status approvals ----------------------------------------------------------------------


@contract(ClaimStore)
async def test_a_status_approval_is_pending_then_claimed_once(h: Harness) -> None:
    signal_id = await h.add_signal("STAT")
    assert await h.store.status_approval(signal_id) is None
    await h.approve_by_status(signal_id)
    approval = await h.store.status_approval(signal_id)
    assert approval is not None and approval.id is None and approval.source == "signal_status"
    assert (approval.signal_id, approval.approved) == (signal_id, True)
    assert approval.approved_at is not None
    assert await h.store.pending_approvals(10) == [
        PendingApproval(None, signal_id, "signal_status")
    ]
    assert await h.store.pending_approvals(10, ("trade_approvals",)) == []

    execution_id = uuid.uuid4()
    outcome = await h.store.claim_status(signal_id, execution_id, f"te-{execution_id.hex}")
    assert isinstance(outcome, Claimed)
    assert outcome.execution.approval_id is None
    assert outcome.execution.approval_source == "signal_status"
    assert outcome.execution.state is S.RECEIVED and outcome.signal.id == signal_id
    again = await h.store.claim_status(signal_id, uuid.uuid4(), "te-again")
    assert isinstance(again, AlreadyClaimed) and again.execution.id == execution_id
    other = await h.store.claim(await h.add_approval(signal_id), uuid.uuid4(), "te-other")
    assert isinstance(other, AlreadyClaimed) and other.execution.id == execution_id
    assert await h.store.pending_approvals(10) == []


@contract(ClaimStore)
async def test_a_status_claim_without_a_status_approval_is_not_claimable(h: Harness) -> None:
    signal_id = await h.add_signal("NOST")
    outcome = await h.store.claim_status(signal_id, uuid.uuid4(), "te-nost")
    assert isinstance(outcome, NotClaimable)
    assert await h.store.execution_for_signal(signal_id) is None


# -- the ledger: positions to follow ---------------------------------------------------------------


@contract(LedgerStore)
async def test_positions_to_follow_are_the_open_and_the_recently_closed(h: Harness) -> None:
    since = datetime(2024, 3, 15, 13, 0, tzinfo=UTC)
    held = await in_state(h, S.FILLED, "OPEN")
    bare = await in_state(h, S.FILLED, "BARE")
    old = await in_state(h, S.FILLED, "OLD")
    late = await in_state(h, S.FILLED, "LATE")
    await in_state(h, S.SUBMITTED, "WORK")
    await h.store.apply(held.id, T.POSITION, Changes(position_state="open"))
    await h.store.apply(bare.id, T.POSITION, Changes(position_state="unprotected"))
    closed = Changes(position_state="closed", closed_at=since - timedelta(seconds=1))
    await h.store.apply(old.id, T.POSITION, closed)
    closed = Changes(position_state="closed", closed_at=since)
    await h.store.apply(late.id, T.POSITION, closed)

    followed = await h.store.positions_to_follow(since)
    assert [e.id for e in followed] == [held.id, bare.id, late.id]  # oldest first
    assert [e.position_state for e in followed] == ["open", "unprotected", "closed"]


# -- the operator's side ---------------------------------------------------------------------------


@contract(OperatorStore)
async def test_find_executions_by_id_or_signal_range_and_their_events(h: Harness) -> None:
    first = (await claimed(h, "FIND")).execution
    second = (await claimed(h, "FIND")).execution
    everything = (UUID(int=0), UUID(int=2**128 - 1))
    assert [e.id for e in await h.store.find_executions(*everything, 10)] == [
        first.id,
        second.id,
    ]
    assert [e.id for e in await h.store.find_executions(*everything, 1)] == [first.id]
    assert [e.id for e in await h.store.find_executions(first.id, first.id, 10)] == [first.id]
    by_signal = await h.store.find_executions(second.signal_id, second.signal_id, 10)
    assert [e.id for e in by_signal] == [second.id]
    assert await h.store.find_executions(UUID(int=1), UUID(int=1), 10) == []

    await h.store.apply(first.id, T.BEGIN_SUBMIT, PLAN, {"why": "test"})
    events = await h.store.execution_events(first.id)
    assert [(e.execution_id, e.kind) for e in events] == [
        (first.id, kind) for kind, _ in await h.events(first.id)
    ]
    assert len(events) == 2 and events[0].id < events[1].id and events[0].at <= events[1].at
    assert events[-1].detail["why"] == "test"
    assert await h.store.execution_events(uuid.uuid4()) == []


@contract(OperatorStore)
async def test_a_change_and_an_acknowledgement_are_announced(h: Harness) -> None:
    execution_id = uuid.uuid4()
    changed_at = datetime(2024, 3, 15, 14, 30, 1, 250000, tzinfo=UTC)
    source = await h.listen()
    try:
        await h.store.announce_change(execution_id)
        control = await until_sentinel(h, source, CONTROL_CHANNEL)
        await h.store.acknowledge_control(changed_at, True, "host-a")
        await h.store.acknowledge_control(None, False, "host-b")
        acks = await until_sentinel(h, source, CONTROL_ACK_CHANNEL)
    finally:
        await source.aclose()

    assert [json.loads(p) for p in control] == [
        {"kind": "execution_changed", "execution_id": str(execution_id)}
    ]
    answered = [json.loads(p) for p in acks]
    assert [(a["halted"], a["instance"]) for a in answered] == [(True, "host-a"), (False, "host-b")]
    assert datetime.fromisoformat(answered[0]["changed_at"]) == changed_at
    assert answered[1]["changed_at"] is None


# -- reconciliation's breaks -----------------------------------------------------------------------


@contract(BreakStore)
async def test_executions_for_reconcile_are_those_the_broker_can_contradict(h: Harness) -> None:
    submitting = await in_state(h, S.SUBMITTING, "RA")
    submitted = await in_state(h, S.SUBMITTED, "RB")
    unknown = await in_state(h, S.UNKNOWN, "RC")
    held = await in_state(h, S.FILLED, "RD")
    held = await h.store.apply(held.id, T.POSITION, Changes(filled_qty=10, position_state="open"))
    closed = await in_state(h, S.FILLED, "RE")
    await h.store.apply(closed.id, T.POSITION, Changes(filled_qty=10, position_state="closed"))
    cancelled = await in_state(h, S.CANCELLED, "RF")
    await h.store.apply(cancelled.id, T.POSITION, Changes(order_id=4242))
    other = await in_state(h, S.CANCELLED, "RG")
    await h.store.apply(other.id, T.POSITION, Changes(order_id=4343))
    await in_state(h, S.FAILED, "RH")
    await in_state(h, S.RECEIVED, "RI")

    wanted = await h.store.executions_for_reconcile([4242])
    assert [e.id for e in wanted] == [
        submitting.id,
        submitted.id,
        unknown.id,
        held.id,
        cancelled.id,
    ]
    assert [e.id for e in await h.store.executions_for_reconcile([])] == [
        submitting.id,
        submitted.id,
        unknown.id,
        held.id,
    ]


@contract(BreakStore)
async def test_breaks_of_a_pass_become_the_open_ones(h: Harness) -> None:
    first = datetime(2024, 3, 15, 14, 0, tzinfo=UTC)
    later = first + timedelta(minutes=1)
    execution_id = uuid.uuid4()
    orphan = ReconcileBreak(BreakKind.UNEXPLAINED_POSITION, "ORPH", None, None, {"qty": 5})
    missing = ReconcileBreak(BreakKind.MISSING_POSITION, "MISS", execution_id, 77, {"qty": 3})
    assert await h.store.open_breaks() == []

    await h.store.record_breaks([orphan, missing], first)
    opened = await h.store.open_breaks()
    assert [(b.kind, b.symbol, b.execution_id, b.order_id) for b in opened] == [
        ("unexplained_position", "ORPH", None, None),
        ("missing_position", "MISS", execution_id, 77),
    ]
    assert [(b.first_seen, b.last_seen, b.cleared_at) for b in opened] == [(first, first, None)] * 2
    assert opened[0].detail == {"qty": 5}

    refreshed = replace(missing, order_id=78, detail={"qty": 4})
    await h.store.record_breaks([refreshed], later)  # the orphan is gone: cleared
    [still] = await h.store.open_breaks()
    assert (still.kind, still.symbol, still.execution_id) == (
        "missing_position",
        "MISS",
        execution_id,
    )
    assert (still.first_seen, still.last_seen, still.order_id) == (first, later, 78)
    assert still.detail == {"qty": 4}

    await h.store.record_breaks([], later)
    assert await h.store.open_breaks() == []
    await h.store.record_breaks([orphan], later + timedelta(minutes=1))  # back: a new break
    [again] = await h.store.open_breaks()
    assert again.first_seen == later + timedelta(minutes=1)


# -- the original service's tables (PostgreSQL only) ---------------------------------------------


@pytest.fixture
def pg(harness: Harness) -> PgHarness:
    """The harness on PostgreSQL; the memory store's original tables are test inputs, so their
    contract is PostgreSQL's alone."""
    if not isinstance(harness, PgHarness):
        pytest.skip("the original's tables are PostgreSQL's (the memory store's are inputs)")
    return harness


INSERT_ORIGINAL_TRADE = """
INSERT INTO trades (id, signal_id, symbol, direction, entry, stop, risk, order_status, created_at)
VALUES ($1, $2, $3, 'BUY', 150, 145, $4::jsonb, 'Filled', $5)
"""


@contract(OriginalStore)
async def test_the_originals_orders_and_trades_are_told_from_ours(pg: PgHarness) -> None:
    tables = await pg.store.original_tables()
    assert tables == OriginalTables()  # our own schema has none of the original's tables
    at = datetime(2024, 3, 15, 14, 0, tzinfo=UTC)
    theirs = await pg.add_signal("THRS")
    await pg.pool.execute(INSERT_ORIGINAL_TRADE, "jax-1", theirs, "THRS", '{"amount": 120}', at)
    ours = await in_state(pg, S.SUBMITTING, "OURS")
    our_trade = trade_record(ours, 5150, "Submitted")
    await pg.store.apply(ours.id, T.ACCEPT, Changes(order_id=5150), trade=our_trade)
    approved = await pg.add_signal("APPR")
    approval_id = await pg.add_approval(approved)
    await pg.pool.execute("UPDATE trade_approvals SET order_id = '9001' WHERE id = $1", approval_id)

    assert await pg.store.original_order(theirs) == "trades row jax-1"
    assert await pg.store.original_order(approved) == "trade_approvals.order_id 9001"
    assert await pg.store.original_order(ours.signal_id) is None
    [trade] = await pg.store.original_trades_since(at)
    assert (trade.symbol, trade.risk_amount, trade.created_at) == ("THRS", Decimal(120), at)
    assert await pg.store.original_trades_since(at + timedelta(seconds=1)) == []


@contract(OriginalStore)
async def test_without_the_originals_tables_its_guards_and_audit_are_not_read(
    pg: PgHarness,
) -> None:
    signal_id = await pg.add_signal("GARD")
    facts = await pg.store.guardrail_facts(
        signal_id,
        instances=False,
        artifacts=False,
        day_start=datetime(2024, 3, 15, tzinfo=UTC),
        trading_day=TRADING_DAY,
    )
    assert facts == GuardrailFacts()
    entry = AuditEntry("corr-1", "order_submitted", "success", "test", {"k": "v"})
    await pg.store.record_audit(entry)  # no audit_events table: nothing, and no error
    assert await pg.pool.fetchval("SELECT to_regclass('audit_events')") is None


# -- every role's methods have their contract ------------------------------------------------------


def role_methods(role: type) -> set[str]:
    return {
        name
        for name, value in vars(role).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(value)
    }


def test_every_method_of_every_role_has_its_contract() -> None:
    missing = {
        f"{role.__name__}.{name}"
        for role in PARTITION
        for name in role_methods(role)
        if not any(f".{name}(" in inspect.getsource(test) for test in CONTRACTS[role])
    }
    assert not missing, f"no contract test of the role calls {sorted(missing)}"
    assert set().union(*(role_methods(r) for r in PARTITION)) == {
        name for name in dir(Store) if not name.startswith("_")
    }
