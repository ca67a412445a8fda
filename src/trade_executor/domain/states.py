"""The execution state machine (CONTRACT section 4) and the names of its audit trail.

Every legal move of an execution is a `Transition`: it carries its source states, its target
state and the kind of the event it appends, so a call site names one thing. A move the current
state does not allow raises `IllegalTransition`, in the pure core (`Transition.apply`) and in the
stores (`Store.apply`, where the table's guard is the real check), so a bug that would move an
execution backwards (say `filled` -> `submitting`) fails loudly instead of corrupting the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
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
        return self in WORKING_STATES


S = ExecutionState

FINAL_STATES = frozenset({S.FILLED, S.CANCELLED, S.REJECTED, S.FAILED, S.DRY_RUN})
NOT_FINAL_STATES = frozenset(state for state in ExecutionState if state not in FINAL_STATES)
WORKING_STATES = frozenset({S.SUBMITTED, S.PARTIALLY_FILLED})


class EventKind(StrEnum):
    """Kinds of `execution_events` rows that are not a transition's own event."""

    CLAIMED = "execution.claimed"
    POLLER_TIMEOUT = "poller.timeout"
    CANCEL_FAILED = "poller.cancel_failed"


# Kinds written before the audit trail took the dotted names of the logs: still readable.
LEGACY_EVENT_KINDS = {
    "claimed": EventKind.CLAIMED.value,
    "submitting": "order.submitting",
    "resolved": "execution.resolved",
    "broker_status": "order.progress",
}


def event_kind(stored: str) -> str:
    """The dotted name of a stored event kind, whichever era wrote it."""
    return LEGACY_EVENT_KINDS.get(stored, stored)


@dataclass(frozen=True, slots=True)
class _Rule:
    sources: frozenset[ExecutionState]
    target: ExecutionState | None  # None: the state is kept (a field update)
    event: str


_AT_BROKER_WORKING = frozenset({S.SUBMITTING, S.SUBMITTED, S.PARTIALLY_FILLED})
# What an operator may settle: `unknown`, and (once past their bound, which the command checks)
# executions stuck in `submitting` or at the broker.
_SETTLEABLE = frozenset({S.UNKNOWN, S.SUBMITTING, S.SUBMITTED, S.PARTIALLY_FILLED})
# Executions that hold (or held) shares: their position is followed to its exit.
_HOLDING = frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED})


class Transition(StrEnum):
    """A named, legal move. `sources`, `target` (None keeps the state) and `event` come with it."""

    REJECT = "reject"
    HOLD_BACK = "hold_back"
    RETRY_UNSENT = "retry_unsent"
    DRY_RUN = "dry_run"
    BEGIN_SUBMIT = "begin_submit"
    FAIL = "fail"
    ACCEPT = "accept"
    ADOPT = "adopt"
    LOSE_TRACK = "lose_track"
    PROGRESS = "progress"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCEL = "cancel"
    GIVE_UP = "give_up"
    POSITION = "position"
    RESOLVE_FAILED = "resolve_failed"
    RESOLVE_SUBMITTED = "resolve_submitted"
    RESOLVE_FILLED = "resolve_filled"
    RESOLVE_CANCELLED = "resolve_cancelled"
    CORRECT_FILL = "correct_fill"

    @property
    def sources(self) -> frozenset[ExecutionState]:
        return _RULES[self].sources

    @property
    def target(self) -> ExecutionState | None:
        return _RULES[self].target

    @property
    def event(self) -> str:
        return _RULES[self].event

    def allows(self, current: ExecutionState) -> bool:
        return current in self.sources

    def apply(self, current: ExecutionState) -> ExecutionState:
        """The state after this transition from `current`; raises `IllegalTransition`."""
        if current not in self.sources:
            raise IllegalTransition(self, current)
        return self.target or current


T = Transition
_RULES: dict[Transition, _Rule] = {
    T.REJECT: _Rule(frozenset({S.RECEIVED}), S.REJECTED, "execution.rejected"),
    # (CONTRACT v3, kill switch) An entry whose intent was written but which was still waiting
    # in the pacing queue when the service halted: never sent, so rejected like any other.
    T.HOLD_BACK: _Rule(frozenset({S.SUBMITTING}), S.REJECTED, "execution.rejected"),
    # (CONTRACT v3, ambiguity) An intent our own crash or a takeover left behind whose order the
    # bridge's list proves absent: back to `received`, to be decided again and sent once.
    T.RETRY_UNSENT: _Rule(frozenset({S.SUBMITTING}), S.RECEIVED, "order.not_sent"),
    T.DRY_RUN: _Rule(frozenset({S.RECEIVED}), S.DRY_RUN, "execution.dry_run"),
    T.BEGIN_SUBMIT: _Rule(frozenset({S.RECEIVED}), S.SUBMITTING, "order.submitting"),
    T.FAIL: _Rule(frozenset({S.RECEIVED, S.SUBMITTING}), S.FAILED, "execution.failed"),
    T.ACCEPT: _Rule(frozenset({S.SUBMITTING}), S.SUBMITTED, "order.submitted"),
    T.ADOPT: _Rule(frozenset({S.SUBMITTING}), S.SUBMITTED, "order.adopted"),
    T.LOSE_TRACK: _Rule(frozenset({S.SUBMITTING}), S.UNKNOWN, "order.unknown"),
    T.PROGRESS: _Rule(WORKING_STATES, None, "order.progress"),
    T.PARTIAL_FILL: _Rule(_AT_BROKER_WORKING, S.PARTIALLY_FILLED, "order.partially_filled"),
    T.FILL: _Rule(_AT_BROKER_WORKING, S.FILLED, "order.filled"),
    T.CANCEL: _Rule(_AT_BROKER_WORKING, S.CANCELLED, "order.cancelled"),
    # The broker cannot say what became of a working order (Unknown, refused cancels) past its
    # bound: an operator must settle it.
    T.GIVE_UP: _Rule(WORKING_STATES, S.UNKNOWN, "order.status_lost"),
    # The position after the entry (exit, P&L, protection): fields only, the state is kept.
    T.POSITION: _Rule(_HOLDING, None, "position.changed"),
    T.RESOLVE_FAILED: _Rule(_SETTLEABLE, S.FAILED, "execution.resolved"),
    T.RESOLVE_SUBMITTED: _Rule(
        frozenset({S.UNKNOWN, S.SUBMITTING}), S.SUBMITTED, "execution.resolved"
    ),
    T.RESOLVE_FILLED: _Rule(_SETTLEABLE, S.FILLED, "execution.resolved"),
    T.RESOLVE_CANCELLED: _Rule(_SETTLEABLE, S.CANCELLED, "execution.resolved"),
    # Reconciliation with the broker found fills after IB reported the entry `Cancelled` (its
    # error 10349): the broker is authoritative for fills, so `filled_qty` and the average price
    # are corrected; the state stays final (`cancelled`, whose `filled_qty` tells the fill).
    T.CORRECT_FILL: _Rule(frozenset({S.CANCELLED}), None, "reconcile.fill_corrected"),
}
assert set(_RULES) == set(Transition), "every transition needs its rule"


class IllegalTransition(Exception):
    """An execution was asked to move along a transition its current state does not allow
    (`current` is None when the execution does not exist)."""

    def __init__(self, transition: Transition, current: ExecutionState | None) -> None:
        where = current.value if current is not None else "a missing execution"
        super().__init__(f"transition {transition.value!r} is not allowed from {where!r}")
        self.transition = transition
        self.current = current
