"""Settling a submission whose answer was lost (`Submitter.locate`, the path of a lost POST and of
recovery's `submitting` rows): each answer of `locate_submission` ends where CONTRACT section 5
says, and nothing is ever sent again. The broker is scripted; the ledger is the memory store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from tests.support.proxybroker import broker_functions_overridable
from trade_executor.actors.execution import submit
from trade_executor.actors.execution.outcomes import Outcomes
from trade_executor.actors.execution.shared import Shared
from trade_executor.actors.execution.submit import Submitter, submission_key
from trade_executor.broker.locate import Adopted, Ambiguous, Located, NotPlaced, Unreachable
from trade_executor.broker.reconcile import SubmissionKey
from trade_executor.config.sources import load_settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import Action, BrokerOrder, BrokerStatus, OrderType
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.observability.metrics import Metrics
from trade_executor.store.protocol import Claimed
from trade_executor_dev.testing import MemoryStore

# The core's tests run on trio too (tests/conftest.py, `both_backends`).
pytestmark = [pytest.mark.anyio, pytest.mark.both_backends]


class ScriptedLocator:
    """A broker that answers `locate_submission` from a script and has no way to send."""

    def __init__(self, answers: list[Located]) -> None:
        self.answers = answers
        self.asked: list[tuple[SubmissionKey, datetime, str | None]] = []

    async def locate_submission(
        self, key: SubmissionKey, *, attempted_at: datetime, detail: str | None = None
    ) -> Located:
        self.asked.append((key, attempted_at, detail))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(submit, "UNREACHABLE_BACKOFF_BASE", 0.001)
    monkeypatch.setattr(submit, "UNREACHABLE_BACKOFF_CAP", 0.001)
    with broker_functions_overridable():  # `locate_submission` asks the scripted broker
        yield


async def submitting(store: MemoryStore, order_type: str = "LMT") -> Execution:
    signal_id = store.add_signal("LOST")
    approval_id = store.add_approval(signal_id, notify=False)
    execution_id = uuid4()
    claim = await store.claim(approval_id, execution_id, f"te-{execution_id.hex}")
    assert isinstance(claim, Claimed)
    plan = Changes(
        action="BUY",
        order_type=order_type,
        quantity=133,
        entry_price=Decimal("150"),
        stop_loss=Decimal("145"),
        take_profit=Decimal("160"),
        risk_amount=Decimal("665.00"),
        attempted_at=datetime(2026, 3, 9, 14, 59, 58, tzinfo=UTC),
    )
    return await store.apply(execution_id, Transition.BEGIN_SUBMIT, plan)


def submitter_for(store: MemoryStore, broker: Any, clock: Clock) -> tuple[Submitter, Shared]:
    settings = load_settings(database_url=None, execution_enabled=True)
    shared = Shared(settings, store, broker, Metrics(), lambda _: None, clock)
    return Submitter(shared, Outcomes(shared)), shared


def listed(order_id: int) -> BrokerOrder:
    return BrokerOrder(order_id, "LOST", Action.BUY, "LMT", 133, BrokerStatus.SUBMITTED)


async def test_found_is_adopted_with_its_children() -> None:
    store, clock = MemoryStore(), Clock()
    intent = await submitting(store)
    broker = ScriptedLocator([Adopted(listed(7), (8, 9), "fallback")])
    submitter, _ = submitter_for(store, broker, clock)
    placed = await submitter.locate(intent, detail="no answer after sending")
    assert placed is not None and (placed.order_id, placed.child_order_ids) == (7, (8, 9))
    [(key, attempted_at, detail)] = broker.asked
    assert key == submission_key(intent)
    assert attempted_at == intent.attempted_at and detail == "no answer after sending"
    assert store.execution_of(intent.signal_id).state is ExecutionState.SUBMITTING  # type: ignore[union-attr]


async def test_not_listed_fails_not_placed_with_the_bridges_detail() -> None:
    store, clock = MemoryStore(), Clock()
    intent = await submitting(store)
    broker = ScriptedLocator([NotPlaced("Could not find contract for symbol LOST")])
    submitter, _ = submitter_for(store, broker, clock)
    assert await submitter.locate(intent) is None
    after = store.execution_of(intent.signal_id)
    assert after is not None and after.state is ExecutionState.FAILED
    assert after.reason == "not_placed: Could not find contract for symbol LOST"


async def test_several_matches_are_unknown() -> None:
    store, clock = MemoryStore(), Clock()
    intent = await submitting(store)
    broker = ScriptedLocator([Ambiguous("2 orders at the broker match: 7, 9", (7, 9))])
    submitter, _ = submitter_for(store, broker, clock)
    assert await submitter.locate(intent) is None
    after = store.execution_of(intent.signal_id)
    assert after is not None and after.state is ExecutionState.UNKNOWN
    assert after.reason == "ambiguous_submission: 2 orders at the broker match: 7, 9"


async def test_an_unreachable_list_keeps_asking_then_settles() -> None:
    store, clock = MemoryStore(), Clock()
    intent = await submitting(store)
    down = Unreachable("the order list could not be read")
    broker = ScriptedLocator([down, down, down, Adopted(listed(7), (), "fallback")])
    submitter, _ = submitter_for(store, broker, clock)
    placed = await submitter.locate(intent)
    assert placed is not None and placed.order_id == 7
    assert len(broker.asked) == 4


async def test_an_unreachable_list_past_its_bound_is_unknown() -> None:
    store, clock = MemoryStore(), Clock()
    intent = await submitting(store)

    class Slow(ScriptedLocator):
        async def locate_submission(self, key: Any, **kwargs: Any) -> Located:
            clock.now += timedelta(minutes=2)  # each attempt takes a while
            return await super().locate_submission(key, **kwargs)

    broker = Slow([Unreachable("the order list could not be read")])
    submitter, _ = submitter_for(store, broker, clock)
    assert await submitter.locate(intent) is None
    after = store.execution_of(intent.signal_id)
    assert after is not None and after.state is ExecutionState.UNKNOWN
    assert after.reason == "ambiguous_submission: the order list could not be read"
    assert len(broker.asked) == 3  # 2, 4, 6 minutes: past the five-minute bound


async def test_a_bridge_without_a_list_is_unknown_at_once() -> None:
    store, clock = MemoryStore(), Clock()
    intent = await submitting(store)
    broker = ScriptedLocator([Unreachable("cannot look the order up", permanent=True)])
    submitter, _ = submitter_for(store, broker, clock)
    assert await submitter.locate(intent) is None
    after = store.execution_of(intent.signal_id)
    assert after is not None and after.state is ExecutionState.UNKNOWN
    assert len(broker.asked) == 1


@pytest.mark.parametrize(
    ("order_type", "price"),
    [("LMT", Decimal("150")), ("STP", Decimal("150")), ("MKT", None)],
)
async def test_the_key_of_an_intent_is_what_was_sent(
    order_type: str, price: Decimal | None
) -> None:
    intent = await submitting(MemoryStore(), order_type)
    key = submission_key(intent)
    assert (key.order_ref, key.symbol, key.action, key.quantity) == (
        intent.client_order_id,
        "LOST",
        Action.BUY,
        133,
    )
    assert key.order_type is OrderType(order_type) and key.price == price
