"""The circuit breaker (CONTRACT section 5): MAX_CONSECUTIVE_FAILURES `failed` or `unknown`
outcomes in a row halt the service, as `halt` would, with reason `breaker: <last reason>`.

Pure: no I/O and no clock. The executor feeds it outcomes and, when `failure` answers a `Trip`,
sets the kill switch (the RiskBook's trading state at once, `executor_control` durably). What
counts: an execution ending `failed` (whatever the reason: the broker refused it, the bridge was
away, an internal error) or `unknown`. What resets the count: an order the broker took (placed
or adopted). What does neither: a rejection by the risk gates or validation, a dry run, a
cancellation, a fill (the count is about reaching the broker, not about the market). An operator's
`resolve` is not an outcome of the service and does not count.

A limit of 0 turns the breaker off. Once tripped it stays tripped (it reports nothing more)
until `reset`, which the executor calls when the kill switch is cleared (`resume`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from trade_executor.domain.states import ExecutionState

if TYPE_CHECKING:
    from trade_executor.domain.execution import Execution

BREAKER_PREFIX = "breaker: "
BREAKER_ACTOR = "breaker"  # `executor_control.changed_by` when the breaker halts
RESOLVED_PREFIX = "resolved"  # an operator's `resolve --as failed` reason


class Outcome(StrEnum):
    FAILURE = "failure"  # failed or unknown: counts
    PLACED = "placed"  # the broker took an order: resets


@dataclass(frozen=True, slots=True)
class Trip:
    """The breaker tripped: halt with `reason`."""

    failures: int
    last_reason: str

    @property
    def reason(self) -> str:
        return f"{BREAKER_PREFIX}{self.last_reason}"


class Breaker:
    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.failures = 0
        self.tripped = False

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def failure(self, reason: str) -> Trip | None:
        """A `failed`/`unknown` outcome. Returns a `Trip` the first time the count reaches the
        limit (never again until `reset`)."""
        self.failures += 1
        if not self.enabled or self.tripped or self.failures < self.limit:
            return None
        self.tripped = True
        return Trip(self.failures, reason)

    def placed(self) -> None:
        """The broker took an order: the run of failures is broken."""
        self.failures = 0

    def reset(self) -> None:
        """The kill switch was cleared: count afresh."""
        self.failures = 0
        self.tripped = False

    def record(self, outcome: Outcome, reason: str = "") -> Trip | None:
        if outcome is Outcome.PLACED:
            self.placed()
            return None
        return self.failure(reason)


@dataclass(frozen=True, slots=True)
class LedgerOutcome:
    """One outcome read back from the ledger, at the time it happened."""

    at: datetime
    outcome: Outcome
    reason: str


def ledger_outcome(execution: Execution) -> LedgerOutcome | None:
    """What `execution` contributed to the breaker, and when; None when it counts for nothing.
    A placed order counts at its `submitted_at` (whatever happened to it later); a `failed` one
    at `finished_at`, an `unknown` one at `updated_at`; an operator's resolution not at all."""
    reason = execution.reason or ""
    if execution.state is ExecutionState.FAILED and not reason.startswith(RESOLVED_PREFIX):
        at = execution.finished_at or execution.updated_at
        return None if at is None else LedgerOutcome(at, Outcome.FAILURE, reason)
    if execution.state is ExecutionState.UNKNOWN:
        at = execution.updated_at
        return None if at is None else LedgerOutcome(at, Outcome.FAILURE, reason)
    if execution.submitted_at is not None and execution.order_id is not None:
        return LedgerOutcome(execution.submitted_at, Outcome.PLACED, "")
    return None


def restore_breaker(
    limit: int, executions: Iterable[Execution], *, since: datetime | None = None
) -> tuple[Breaker, Trip | None]:
    """The breaker as the ledger leaves it: the outcomes of `executions` after `since` (the last
    change of the kill switch: a `resume` starts a fresh count) replayed in time order. The
    `Trip` is returned when the replay trips it: the process stopped between the last failure
    and the halt, so the caller halts now (if the kill switch is not set already)."""
    breaker = Breaker(limit)
    trip: Trip | None = None
    outcomes = [o for e in executions if (o := ledger_outcome(e)) is not None]
    for outcome in sorted(outcomes, key=lambda o: o.at):
        if since is None or outcome.at > since:
            trip = breaker.record(outcome.outcome, outcome.reason) or trip
    if breaker.failures < max(breaker.limit, 1):
        # An order placed after the run of failures ended it: nothing is left to halt for.
        trip = None
        breaker.tripped = False
    return breaker, trip
