"""How long an execution may stay in each non-final state (CONTRACT section 5, "no execution
is stranded"). Pure: the executor's deadline scan (`actors/execution/deadlines.py`) moves on what
passed its bound; `resolve` (`ops/resolve.py`) accepts an execution only once past it.

- `received`: RECEIVED_BOUND (30 s) after the claim;
- `submitting`: IB_BRIDGE_TIMEOUT + RECONCILE_WINDOW (15 + 300 s) after the intent;
- `submitted` / `partially_filled`: ORDER_POLL_TIMEOUT + the pollers' grace, max(30 s,
  3 x ORDER_POLL_INTERVAL) (120 + 30 s) after the submission; the pollers give up at the same
  moment (`actors.following.judge.default_lost_grace`, checked equal by a test);
- `unknown`: none; it waits for an operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from trade_executor.domain.states import ExecutionState

if TYPE_CHECKING:
    from trade_executor.domain.execution import Execution

S = ExecutionState

RECEIVED_BOUND = 30.0  # seconds a claim may stay `received` before it is decided again
# Seconds reconciliation keeps trying to read the bridge's order list before the outcome is
# `unknown` (the bridge helper's UNREACHABLE_BOUND of 5 minutes).
RECONCILE_WINDOW = 300.0
MIN_WORKING_GRACE = 30.0
WORKING_GRACE_INTERVALS = 3


def working_grace(poll_interval: float) -> float:
    """The grace past ORDER_POLL_TIMEOUT after which a working order whose status cannot be
    established is given up (`unknown`)."""
    return max(MIN_WORKING_GRACE, WORKING_GRACE_INTERVALS * poll_interval)


@dataclass(frozen=True, slots=True)
class StateBounds:
    """How long an execution may stay in each non-final state (seconds)."""

    received: float
    submitting: float
    working: float
    ib_bridge_timeout: float
    reconcile_window: float
    order_poll_timeout: float

    def started(self, execution: Execution) -> datetime | None:
        """When `execution` entered its current state (as far as the ledger says)."""
        match execution.state:
            case S.RECEIVED:
                return execution.created_at
            case S.SUBMITTING:
                return execution.attempted_at or execution.updated_at
            case S.SUBMITTED | S.PARTIALLY_FILLED:
                return execution.submitted_at or execution.updated_at
            case _:
                return None

    def bound(self, state: ExecutionState) -> float | None:
        match state:
            case S.RECEIVED:
                return self.received
            case S.SUBMITTING:
                return self.submitting
            case S.SUBMITTED | S.PARTIALLY_FILLED:
                return self.working
            case _:
                return None

    def deadline(self, execution: Execution) -> datetime | None:
        """When `execution` passes the bound of its current state; None for a state without
        one (final, or `unknown`)."""
        started = self.started(execution)
        bound = self.bound(execution.state)
        if started is None or bound is None:
            return None
        return started + timedelta(seconds=bound)

    def describe(self, state: ExecutionState) -> str:
        """The bound of `state` in words, for operators (`resolve` refusals)."""
        match state:
            case S.RECEIVED:
                return f"{_seconds(self.received)} after its claim"
            case S.SUBMITTING:
                return (
                    f"IB_BRIDGE_TIMEOUT ({_seconds(self.ib_bridge_timeout)}) plus the reconcile"
                    f" window ({_seconds(self.reconcile_window)}) after its order was sent"
                )
            case S.SUBMITTED | S.PARTIALLY_FILLED:
                grace = self.working - self.order_poll_timeout
                return (
                    f"ORDER_POLL_TIMEOUT ({_seconds(self.order_poll_timeout)}) plus a grace of"
                    f" {_seconds(grace)} after its submission"
                )
            case _:
                return "none"


def _seconds(value: float) -> str:
    return f"{value:g} s"
