"""The pure core of following (`actors.following.judge`): what each look at an order leads to.

No I/O and no clock of its own: every test hands `judge` an observation and a wall-clock time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from trade_executor.actors.following.judge import (
    Bounds,
    Cancel,
    Confirm,
    Finish,
    GiveUp,
    Leave,
    Lost,
    Poller,
    Seen,
    Unreachable,
    Wait,
    default_lost_grace,
    judge,
)
from trade_executor.actors.following.pool import poll_bounds
from trade_executor.config.sources import load_settings
from trade_executor.domain.execution import Execution
from trade_executor.domain.models import BrokerStatus
from trade_executor.domain.states import ExecutionState

B = BrokerStatus
SUBMITTED_AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
BOUNDS = Bounds(
    interval=10,
    timeout=120,
    timeout_action="cancel",
    recheck_delay=3,
    lost_after=150,
    cancel_wait=20,
)


def poller(filled: int = 0, broker_status: str = "Submitted", quantity: int = 100) -> Poller:
    execution = Execution(
        id=uuid4(),
        signal_id=uuid4(),
        approval_id=uuid4(),
        state=ExecutionState.SUBMITTED if filled == 0 else ExecutionState.PARTIALLY_FILLED,
        client_order_id="te-judge",
        symbol="JDG",
        quantity=quantity,
        order_id=42,
        filled_qty=filled,
        broker_status=broker_status,
        submitted_at=SUBMITTED_AT,
    )
    return Poller(execution)


def at(seconds: float) -> datetime:
    return SUBMITTED_AT + timedelta(seconds=seconds)


def seen(status: BrokerStatus, filled: int = 0, second: bool = False) -> Seen:
    return Seen(status, filled, Decimal("150.25") if filled else None, second)


def test_an_unchanged_working_order_before_the_timeout_needs_nothing() -> None:
    assert judge(poller(), seen(B.SUBMITTED), at(50), BOUNDS) == Wait(None)


def test_a_new_fill_is_recorded() -> None:
    step = judge(poller(), seen(B.SUBMITTED, 40), at(50), BOUNDS)
    assert step == Wait(seen(B.SUBMITTED, 40))


def test_a_fill_seen_after_the_timeout_wins_over_the_timeout_action() -> None:
    assert judge(poller(), seen(B.FILLED, 100), at(121), BOUNDS) == Finish(seen(B.FILLED, 100))


def test_only_a_working_order_gets_the_timeout_cancel() -> None:
    assert judge(poller(), seen(B.SUBMITTED, 30), at(120), BOUNDS) == Cancel(
        1, seen(B.SUBMITTED, 30)
    )


def test_leave_leaves_a_working_order_but_follows_a_lost_one() -> None:
    bounds = Bounds(10, 120, "leave", 3, 150, 20)
    assert judge(poller(), seen(B.SUBMITTED), at(121), bounds) == Leave(None)
    assert judge(poller(), Lost("Unknown"), at(121), bounds) == Wait(None)


@pytest.mark.parametrize("status", [B.CANCELLED, B.API_CANCELLED, B.INACTIVE])
def test_a_cancelled_answer_short_of_a_full_fill_is_read_a_second_time(status: B) -> None:
    follower = poller()
    assert judge(follower, seen(status, 30), at(50), BOUNDS) == Confirm()
    assert judge(follower, seen(status, 30, second=True), at(53), BOUNDS) == Finish(
        seen(status, 30, second=True)
    )


def test_a_second_read_that_finds_the_order_filled_records_the_fill() -> None:
    follower = poller()
    assert judge(follower, seen(B.CANCELLED), at(50), BOUNDS) == Confirm()
    second = seen(B.FILLED, 100, second=True)
    assert judge(follower, second, at(53), BOUNDS) == Finish(second)


def test_an_unknown_status_is_never_recorded_and_never_final() -> None:
    follower = poller(filled=40, broker_status="Submitted")
    step = judge(follower, Lost("the bridge answers Unknown"), at(50), BOUNDS)
    assert step == Wait(None)  # nothing to record: the 40 filled stay as they are


def test_a_status_lost_past_its_bound_gives_up() -> None:
    follower = poller()
    bounds = Bounds(10, 120, "leave", 3, 150, 20)  # no cancels: only the lost clock
    assert judge(follower, Lost("the bridge answers Unknown"), at(30), bounds) == Wait(None)
    assert judge(follower, Lost("the bridge answers Unknown"), at(179), bounds) == Wait(None)
    step = judge(follower, Lost("the bridge answers Unknown"), at(180), bounds)
    assert isinstance(step, GiveUp)
    assert step.reason == "status_lost: the bridge answers Unknown for 150 s"


def test_a_status_seen_again_resets_the_lost_clock() -> None:
    follower = poller()
    bounds = Bounds(10, 1000, "cancel", 3, 150, 20)
    judge(follower, Lost("Unknown"), at(0), bounds)
    judge(follower, seen(B.SUBMITTED), at(100), bounds)
    assert judge(follower, Lost("Unknown"), at(200), bounds) == Wait(None)
    assert isinstance(judge(follower, Lost("Unknown"), at(350), bounds), GiveUp)


def test_an_unreachable_bridge_neither_starts_nor_resets_the_lost_clock() -> None:
    follower = poller()
    bounds = Bounds(10, 1000, "cancel", 3, 150, 20)
    assert judge(follower, Unreachable("down"), at(0), bounds) == Wait(None)
    assert follower.lost_since is None
    judge(follower, Lost("Unknown"), at(10), bounds)
    assert judge(follower, Unreachable("down"), at(100), bounds) == Wait(None)
    assert isinstance(judge(follower, Lost("Unknown"), at(160), bounds), GiveUp)


def test_cancels_are_bounded_then_the_order_is_given_up() -> None:
    follower = poller()
    for attempt in (1, 2, 3):
        step = judge(follower, Lost("GET /orders/42 failed"), at(120 + attempt), BOUNDS)
        assert step == Cancel(attempt)
        follower.cancel_attempts = attempt  # refused: "Order 42 not found"
        follower.last_cancel_error = "cancel refused: Order 42 not found"
    step = judge(follower, Lost("GET /orders/42 failed"), at(124), BOUNDS)
    assert step == GiveUp(
        "status_lost: GET /orders/42 failed after 3 cancel attempts"
        " (cancel refused: Order 42 not found)"
    )


def test_an_accepted_cancel_gets_time_to_be_confirmed_then_is_sent_again() -> None:
    follower = poller()
    follower.cancel_attempts, follower.cancel_sent_at = 1, at(120)
    assert judge(follower, seen(B.PENDING_CANCEL), at(130), BOUNDS) == Wait(seen(B.PENDING_CANCEL))
    assert judge(follower, seen(B.SUBMITTED), at(140), BOUNDS) == Cancel(2)


def test_a_bridge_without_cancel_keeps_the_order_followed() -> None:
    follower = poller()
    follower.cannot_cancel, follower.cancel_attempts = True, 1
    assert judge(follower, seen(B.SUBMITTED), at(500), BOUNDS) == Wait(None)
    assert judge(follower, seen(B.FILLED, 100), at(510), BOUNDS) == Finish(seen(B.FILLED, 100))


def test_the_bounds_come_from_the_settings_with_a_documented_grace() -> None:
    settings = load_settings(order_poll_interval=10, order_poll_timeout=120)
    bounds = poll_bounds(settings)
    assert bounds.lost_after == 120 + 30 == 120 + default_lost_grace(10)
    assert default_lost_grace(20) == 60  # three intervals when they are longer than 30 s
    assert bounds.max_cancel_attempts == 3
