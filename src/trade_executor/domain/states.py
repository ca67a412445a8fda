"""The execution state machine (CONTRACT section 4).

Every legal transition has a name; anything else raises `IllegalTransition`, so a bug that would
move an execution backwards (say `filled` -> `submitting`) fails loudly instead of corrupting the
ledger.
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionState(StrEnum):
    RECEIVED = "received"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    FAILED = "failed"
    DRY_RUN = "dry_run"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_working(self) -> bool:
        """At the broker and not final: needs a poller."""
        return self in (ExecutionState.SUBMITTED, ExecutionState.PARTIALLY_FILLED)


FINAL_STATES = frozenset(
    {
        ExecutionState.FILLED,
        ExecutionState.CANCELLED,
        ExecutionState.REJECTED,
        ExecutionState.FAILED,
        ExecutionState.DRY_RUN,
    }
)

NOT_FINAL_STATES = frozenset(state for state in ExecutionState if state not in FINAL_STATES)

# States whose order (may have) reached the broker: their risk counts against the daily budget.
# `unknown` counts too, because the order may be working at the broker.
AT_BROKER_STATES = frozenset(
    {
        ExecutionState.SUBMITTED,
        ExecutionState.PARTIALLY_FILLED,
        ExecutionState.FILLED,
        ExecutionState.UNKNOWN,
    }
)

# Executions whose symbol is "in flight" (counts as an open position).
IN_FLIGHT_STATES = frozenset(
    {
        ExecutionState.RECEIVED,
        ExecutionState.SUBMITTING,
        ExecutionState.SUBMITTED,
        ExecutionState.PARTIALLY_FILLED,
        ExecutionState.UNKNOWN,
    }
)

S = ExecutionState
TRANSITIONS: dict[str, tuple[frozenset[ExecutionState], ExecutionState]] = {
    "reject": (frozenset({S.RECEIVED}), S.REJECTED),
    "dry_run": (frozenset({S.RECEIVED}), S.DRY_RUN),
    "begin_submit": (frozenset({S.RECEIVED}), S.SUBMITTING),
    "fail": (frozenset({S.RECEIVED, S.SUBMITTING}), S.FAILED),
    "accept": (frozenset({S.SUBMITTING}), S.SUBMITTED),
    "lose_track": (frozenset({S.SUBMITTING}), S.UNKNOWN),
    "partial_fill": (
        frozenset({S.SUBMITTING, S.SUBMITTED, S.PARTIALLY_FILLED}),
        S.PARTIALLY_FILLED,
    ),
    "fill": (frozenset({S.SUBMITTING, S.SUBMITTED, S.PARTIALLY_FILLED}), S.FILLED),
    "cancel": (frozenset({S.SUBMITTING, S.SUBMITTED, S.PARTIALLY_FILLED}), S.CANCELLED),
    "resolve_failed": (frozenset({S.UNKNOWN}), S.FAILED),
    "resolve_submitted": (frozenset({S.UNKNOWN}), S.SUBMITTED),
}


class IllegalTransition(Exception):
    """An execution was asked to move along a transition its current state does not allow."""

    def __init__(self, name: str, current: ExecutionState) -> None:
        super().__init__(f"transition {name!r} is not allowed from state {current.value!r}")
        self.name = name
        self.current = current


def transition(current: ExecutionState, name: str) -> ExecutionState:
    """Apply the named transition to `current`, returning the new state or raising."""
    try:
        sources, target = TRANSITIONS[name]
    except KeyError:
        raise IllegalTransition(name, current) from None
    if current not in sources:
        raise IllegalTransition(name, current)
    return target


def sources_of(name: str) -> frozenset[ExecutionState]:
    """The states a named transition may start from (used as a guard in SQL updates)."""
    return TRANSITIONS[name][0]


def guard(name: str | None) -> tuple[frozenset[ExecutionState], ExecutionState | None]:
    """(allowed current states, target state) of a named transition; `None` is a field update
    that keeps the state and is allowed on any execution that is not final."""
    if name is None:
        return NOT_FINAL_STATES, None
    return TRANSITIONS[name]
