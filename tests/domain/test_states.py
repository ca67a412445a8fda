"""The execution state machine: every legal transition succeeds, every other one raises."""

from __future__ import annotations

import itertools

import pytest

from trade_executor.domain.states import (
    FINAL_STATES,
    TRANSITIONS,
    ExecutionState,
    IllegalTransition,
    sources_of,
    transition,
)

S = ExecutionState
LEGAL = [
    (state, name, target)
    for name, (sources, target) in TRANSITIONS.items()
    for state in sorted(sources)
]
ILLEGAL = [
    (state, name)
    for state, name in itertools.product(ExecutionState, TRANSITIONS)
    if state not in TRANSITIONS[name][0]
]


@pytest.mark.parametrize(("state", "name", "target"), LEGAL)
def test_legal_transition(state: ExecutionState, name: str, target: ExecutionState) -> None:
    assert transition(state, name) is target


@pytest.mark.parametrize(("state", "name"), ILLEGAL)
def test_illegal_transition_raises(state: ExecutionState, name: str) -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(state, name)
    assert caught.value.name == name
    assert caught.value.current is state
    assert state.value in str(caught.value)


@pytest.mark.parametrize("state", list(ExecutionState))
def test_unknown_transition_name_raises(state: ExecutionState) -> None:
    with pytest.raises(IllegalTransition):
        transition(state, "teleport")


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_final_states_have_no_way_out(state: ExecutionState) -> None:
    assert state.is_final
    assert not any(state in sources for sources, _ in TRANSITIONS.values())


def test_the_happy_path_and_the_unknown_detour() -> None:
    state = S.RECEIVED
    for name in ("begin_submit", "accept", "partial_fill", "partial_fill", "fill"):
        state = transition(state, name)
    assert state is S.FILLED
    assert transition(transition(S.SUBMITTING, "lose_track"), "resolve_submitted") is S.SUBMITTED
    assert not S.UNKNOWN.is_final


def test_working_states_and_sources() -> None:
    assert {s for s in ExecutionState if s.is_working} == {S.SUBMITTED, S.PARTIALLY_FILLED}
    assert sources_of("accept") == frozenset({S.SUBMITTING})
    with pytest.raises(KeyError):
        sources_of("teleport")
