"""The execution state machine: every legal transition succeeds, every other one raises, and
every transition can be reached from a new execution."""

from __future__ import annotations

import itertools
from collections import deque

import pytest

from trade_executor.domain.states import (
    FINAL_STATES,
    EventKind,
    ExecutionState,
    IllegalTransition,
    Transition,
    event_kind,
)

S = ExecutionState
LEGAL = [(state, t) for t in Transition for state in sorted(t.sources)]
ILLEGAL = [
    (state, t) for state, t in itertools.product(ExecutionState, Transition) if not t.allows(state)
]


@pytest.mark.parametrize(("state", "transition"), LEGAL)
def test_legal_transition(state: ExecutionState, transition: Transition) -> None:
    assert transition.apply(state) is (transition.target or state)


@pytest.mark.parametrize(("state", "transition"), ILLEGAL)
def test_illegal_transition_raises(state: ExecutionState, transition: Transition) -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition.apply(state)
    assert caught.value.transition is transition
    assert caught.value.current is state
    assert state.value in str(caught.value)


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_final_states_have_no_way_out(state: ExecutionState) -> None:
    """Only field updates that keep the state (the position after a fill, fills reconciliation
    found after a `Cancelled`) touch a final one."""
    assert state.is_final
    assert all(t.apply(state) is state for t in Transition if t.allows(state))
    assert {t for t in Transition if t.allows(state)} <= {
        Transition.POSITION,
        Transition.CORRECT_FILL,
    }


def test_every_transition_is_reachable_from_received() -> None:
    reachable, frontier = {S.RECEIVED}, deque([S.RECEIVED])
    used: set[Transition] = set()
    while frontier:
        state = frontier.popleft()
        for t in Transition:
            if t.allows(state):
                used.add(t)
                target = t.apply(state)
                if target not in reachable:
                    reachable.add(target)
                    frontier.append(target)
    assert used == set(Transition)
    assert reachable == set(ExecutionState)


def test_the_happy_path_and_the_unknown_detour() -> None:
    state = S.RECEIVED
    for t in (
        Transition.BEGIN_SUBMIT,
        Transition.ACCEPT,
        Transition.PARTIAL_FILL,
        Transition.PARTIAL_FILL,
        Transition.FILL,
    ):
        state = t.apply(state)
    assert state is S.FILLED
    unknown = Transition.LOSE_TRACK.apply(S.SUBMITTING)
    assert Transition.RESOLVE_SUBMITTED.apply(unknown) is S.SUBMITTED
    assert not S.UNKNOWN.is_final


def test_working_states() -> None:
    assert {s for s in ExecutionState if s.is_working} == {S.SUBMITTED, S.PARTIALLY_FILLED}
    assert Transition.ACCEPT.sources == frozenset({S.SUBMITTING})
    assert Transition.PROGRESS.target is None


def test_event_kinds_are_dotted_and_old_ones_stay_readable() -> None:
    kinds = [t.event for t in Transition] + [k.value for k in EventKind]
    assert all("." in kind for kind in kinds)
    assert event_kind("claimed") == EventKind.CLAIMED
    assert event_kind("submitting") == Transition.BEGIN_SUBMIT.event
    assert event_kind("order.filled") == "order.filled"
