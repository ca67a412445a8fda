"""The circuit breaker's rule (CONTRACT section 5): MAX_CONSECUTIVE_FAILURES `failed`/`unknown`
outcomes in a row trip it, a placed order resets the count, 0 turns it off, and the ledger
gives the count back after a restart."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.builders import an_execution
from trade_executor.domain.breaker import Breaker, Outcome, Trip, ledger_outcome, restore_breaker
from trade_executor.domain.execution import Execution
from trade_executor.domain.states import ExecutionState

S = ExecutionState
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def test_three_failures_in_a_row_trip_with_the_last_reason() -> None:
    breaker = Breaker(3)
    assert breaker.failure("bridge_unavailable: down") is None
    assert breaker.failure("broker_rejected: no") is None
    trip = breaker.failure("internal: value out of range")
    assert trip == Trip(3, "internal: value out of range")
    assert trip.reason == "breaker: internal: value out of range"
    assert breaker.tripped


def test_it_trips_once_until_reset() -> None:
    breaker = Breaker(2)
    breaker.failure("a")
    assert breaker.failure("b") is not None
    assert breaker.failure("c") is None  # already tripped: the halt is set
    breaker.reset()
    assert (breaker.failures, breaker.tripped) == (0, False)
    breaker.failure("d")
    assert breaker.failure("e") == Trip(2, "e")


def test_a_placed_order_resets_the_count() -> None:
    breaker = Breaker(3)
    breaker.failure("a")
    breaker.failure("b")
    breaker.placed()
    assert breaker.failure("c") is None
    assert breaker.failure("d") is None
    assert breaker.record(Outcome.FAILURE, "e") == Trip(3, "e")


def test_zero_turns_it_off() -> None:
    breaker = Breaker(0)
    assert all(breaker.failure(str(n)) is None for n in range(100))
    assert not breaker.tripped


def execution(state: ExecutionState, at: datetime, **fields: object) -> Execution:
    base = an_execution(state, created_at=at, updated_at=at)
    if state.is_final:
        base = replace(base, finished_at=at)
    return replace(base, **fields)  # type: ignore[arg-type]


def placed(at: datetime, state: ExecutionState = S.FILLED) -> Execution:
    return execution(state, at, order_id=7, submitted_at=at)


def test_ledger_outcomes_count_failures_and_placements_only() -> None:
    assert ledger_outcome(execution(S.FAILED, T0, reason="broker_rejected: x")) is not None
    assert ledger_outcome(execution(S.UNKNOWN, T0, reason="lost")) is not None
    assert ledger_outcome(placed(T0, S.CANCELLED)) is not None  # placed, whatever came after
    assert ledger_outcome(execution(S.REJECTED, T0, reason="risk: max_open_positions")) is None
    assert ledger_outcome(execution(S.DRY_RUN, T0)) is None
    # An operator's resolution is not an outcome of the service.
    assert ledger_outcome(execution(S.FAILED, T0, reason="resolved_failed by carol")) is None


def test_restored_from_the_ledger_in_time_order() -> None:
    ledger = [
        execution(S.FAILED, T0 + timedelta(seconds=3), reason="c"),
        placed(T0),
        execution(S.FAILED, T0 + timedelta(seconds=1), reason="a"),
        execution(S.UNKNOWN, T0 + timedelta(seconds=2), reason="b"),
    ]
    breaker, trip = restore_breaker(3, ledger)
    assert trip == Trip(3, "c")  # the process stopped between the third failure and the halt
    assert breaker.tripped

    breaker, trip = restore_breaker(4, ledger)
    assert (breaker.failures, trip) == (3, None)

    # A placement after the failures breaks the run.
    breaker, trip = restore_breaker(3, [*ledger, placed(T0 + timedelta(seconds=4))])
    assert (breaker.failures, trip) == (0, None)


def test_a_resume_starts_a_fresh_count() -> None:
    ledger = [execution(S.FAILED, T0 + timedelta(seconds=n), reason=str(n)) for n in range(1, 4)]
    breaker, trip = restore_breaker(3, ledger, since=T0 + timedelta(seconds=2, milliseconds=1))
    assert (breaker.failures, trip) == (1, None)


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_the_limit_is_the_number_of_failures(limit: int) -> None:
    breaker = Breaker(limit)
    trips = [breaker.failure(str(n)) for n in range(limit)]
    assert trips[:-1] == [None] * (limit - 1)
    assert trips[-1] == Trip(limit, str(limit - 1))
