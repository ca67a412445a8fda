"""The exits' core (`actors/exits/core.py`), pure: the positions followed, a close under way,
the sibling cancels, the work under way and the pollers' list read, as events change them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from trade_executor.actors.exits.core import (
    MAX_SIBLING_CANCELS,
    ExitsCore,
    SiblingCancel,
)
from trade_executor.actors.exits.positions import ExitReason, PositionState
from trade_executor.broker.orderbook import OrderIndex
from trade_executor.domain.execution import Execution
from trade_executor.domain.states import ExecutionState

pytestmark = pytest.mark.anyio  # `Followed` carries an anyio lock and event: both backends


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def position(state: PositionState = PositionState.OPEN, **fields: object) -> Execution:
    execution_id = uuid4()
    return Execution(
        execution_id,
        uuid4(),
        uuid4(),
        ExecutionState.FILLED,
        f"te-{execution_id.hex}",
        symbol="AAPL",
        filled_qty=100,
        order_id=7,
        position_state=state.value,
        **fields,  # type: ignore[arg-type]
    )


async def test_one_close_at_a_time_and_none_over_a_working_close_order() -> None:
    core = ExitsCore()
    followed = core.track(position())
    assert core.start_close(followed, ExitReason.CLOSE)
    assert not core.start_close(followed, ExitReason.FLATTEN)  # one under way
    assert core.open_positions(idle=True) == []
    core.close_over(followed)
    assert core.open_positions(idle=True) == [followed]
    working = core.track(position(exit_order_id=42))
    assert not core.start_close(working, ExitReason.CLOSE)
    closed = core.track(position(PositionState.CLOSED))
    assert closed.closed.is_set() and not core.start_close(closed, ExitReason.CLOSE)


async def test_a_lost_close_answer_is_settled_once() -> None:
    core = ExitsCore()
    sent = core.track(position(exit_order_id=0, exit_reason=ExitReason.FLATTEN.value))
    assert core.start_settling(sent)
    assert sent.closing is ExitReason.FLATTEN
    assert not core.start_settling(sent)
    core.position_closed(sent)
    assert sent.closing is None and sent.closed.is_set()


async def test_sibling_cancels_are_bounded_then_reported_once() -> None:
    core = ExitsCore()
    followed = core.track(position())
    sent = [core.sibling_cancel(followed, 9) for _ in range(MAX_SIBLING_CANCELS)]
    assert sent == [SiblingCancel.SEND] * MAX_SIBLING_CANCELS
    assert core.sibling_cancel(followed, 9) is SiblingCancel.REPORT
    assert core.sibling_cancel(followed, 9) is SiblingCancel.NOTHING
    assert core.stats.cancels == MAX_SIBLING_CANCELS


async def test_work_pool_list_and_a_new_run() -> None:
    core = ExitsCore()
    followed = core.track(position())
    execution_id = followed.execution.id
    assert core.begin("protect", execution_id) and not core.begin("protect", execution_id)
    assert core.begin("close", execution_id)  # another kind of work may run beside it
    core.end("protect", execution_id)
    assert core.begin("protect", execution_id)
    index = OrderIndex()
    core.offer_index(index)
    assert core.take_index() is index and core.take_index() is None
    core.looked()
    core.reset()
    assert len(core) == 0 and core.begin("close", execution_id) and core.take_index() is None
    assert core.stats.looks == 1  # the tallies count over every run


async def test_a_lock_holder_keeps_its_row_and_records_the_newer_one() -> None:
    core = ExitsCore()
    first = position()
    followed = core.track(first)
    async with followed.lock:
        core.track(replace(first, exit_qty=40))
        assert followed.execution is first
        core.recorded(followed, replace(first, exit_qty=50))
    assert followed.execution.exit_qty == 50
    core.forget(first.id)
    assert not core.follows(first.id)


async def test_skipped_protection_is_told_once_per_open() -> None:
    core = ExitsCore()
    execution_id = uuid4()
    opened = datetime(2024, 3, 8, 14, 30, tzinfo=UTC)
    assert core.first_skip(execution_id, opened)
    assert not core.first_skip(execution_id, opened)
    assert core.first_skip(execution_id, opened.replace(day=11))
