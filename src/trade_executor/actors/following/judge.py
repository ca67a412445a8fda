"""What one look at an order means: the pure core of following (no I/O, no clock of its own).

A look yields an `Observation` of one working order:
- `Seen`: the bridge stated a status (from the order list, or from `GET /orders/{id}`);
- `Lost`: the bridge answered but cannot say (`Unknown` after its restart, the order missing from
  the list and its own read refused, a 404, a malformed answer);
- `Unreachable`: the bridge could not be asked (down, 503 not connected): nothing is learnt.

`judge` turns it into the next `Step`, updating the poller's own bookkeeping. Guarantees, with
`Bounds` b (CONTRACT section 5, "following orders" and "no execution is stranded"):
- A final status wins whenever it is seen, before or after ORDER_POLL_TIMEOUT: a fill one second
  before the timeout is recorded filled. A `Cancelled`/`Inactive` answer short of a full fill is
  first confirmed by a second read (`Confirm`), since IB can report `Cancelled` for an order that
  filled (error 10349).
- Only an order still working (or whose status is lost) at the timeout gets the timeout action;
  a cancel is sent at most `b.max_cancel_attempts` times; after the last one the next look that
  still finds no final status gives up (`GiveUp` -> `unknown`).
- A status lost without interruption for `b.lost_after` seconds gives up, whatever the timeout
  action. `Unknown` never becomes a status to record, so it never overwrites recorded fills.
- An unreachable bridge neither starts nor resets the lost clock: the order may be working fine,
  and `bridge.down` already says the bridge is away.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from trade_executor.domain.execution import Execution
from trade_executor.domain.models import BrokerStatus
from trade_executor.domain.states import ExecutionState

MAX_CANCEL_ATTEMPTS = 3
MIN_LOST_GRACE = 30.0  # seconds
LOST_GRACE_INTERVALS = 3


def default_lost_grace(interval: float) -> float:
    """The grace added to ORDER_POLL_TIMEOUT before a lost status gives up: max(30 s, 3
    intervals), so a bridge restart or a few failed reads around the timeout never suffice."""
    return max(MIN_LOST_GRACE, LOST_GRACE_INTERVALS * interval)


@dataclass(frozen=True, slots=True)
class Bounds:
    """Every bound a poller works within, in seconds."""

    interval: float
    timeout: float
    timeout_action: Literal["cancel", "leave"]
    recheck_delay: float
    lost_after: float  # a status lost this long without interruption -> unknown
    cancel_wait: float  # an accepted cancel not yet confirmed is sent again after this
    max_cancel_attempts: int = MAX_CANCEL_ATTEMPTS


# -- observations -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """A status the bridge stated. Never `Unknown` (that is `Lost`)."""

    status: BrokerStatus
    filled_qty: int
    avg_fill_price: Decimal | None
    second_read: bool = False  # the confirming read of a Cancelled/Inactive answer


@dataclass(frozen=True, slots=True)
class Lost:
    """The bridge answered but cannot say; `what` says how, for logs and the give-up reason."""

    what: str


@dataclass(frozen=True, slots=True)
class Unreachable:
    error: str


Observation = Seen | Lost | Unreachable


# -- steps --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wait:
    """Look again at the next interval, after recording `record` if given."""

    record: Seen | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """A final status: `filled` or `cancelled` (possibly partly filled)."""

    seen: Seen


@dataclass(frozen=True, slots=True)
class Confirm:
    """Read the order again (`GET /orders/{id}`) after the recheck delay before recording it."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """ORDER_TIMEOUT_ACTION=cancel: send cancel attempt number `attempt`."""

    attempt: int
    record: Seen | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    """ORDER_TIMEOUT_ACTION=leave: the order stays working at the broker, no longer followed."""

    record: Seen | None = None


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The status cannot be established within the bounds: `unknown`, for an operator."""

    reason: str
    record: Seen | None = None


Step = Wait | Finish | Confirm | Cancel | Leave | GiveUp


# -- the poller's bookkeeping -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Followed:
    """What a poller keeps of its execution: what `judge` and the acts need, nothing more (the
    whole `Execution` is 1.7 KB; 10,000 of them were 17 MB of the executor's memory, issue 22).
    Rebuilt from the row every time the ledger answers with it (`of`)."""

    id: UUID
    signal_id: UUID
    state: ExecutionState
    symbol: str | None
    action: str | None
    order_id: int | None
    child_order_ids: tuple[int, ...]
    quantity: int | None
    filled_qty: int
    broker_status: str | None
    submitted_at: datetime | None

    @classmethod
    def of(cls, execution: Execution | Followed) -> Followed:
        if isinstance(execution, Followed):
            return execution
        return cls(
            execution.id,
            execution.signal_id,
            execution.state,
            execution.symbol,
            execution.action,
            execution.order_id,
            execution.child_order_ids,
            execution.quantity,
            execution.filled_qty,
            execution.broker_status,
            execution.submitted_at,
        )


@dataclass(eq=False, slots=True, init=False)
class Poller:
    """One working order's follower between two looks: a small object, not a task. Built from
    an `Execution` (or its `Followed` view), it keeps only the view."""

    execution: Followed
    failures: int = 0  # unexpected errors in a row (backoff)
    stale: bool = False  # re-read the execution from the ledger before the next look
    missing: bool = False  # the next read is for an order the list lacked
    confirming: bool = False  # the next read is the second read of a Cancelled/Inactive answer
    lost_since: datetime | None = None
    lost_what: str | None = None
    cancel_attempts: int = 0
    cancel_sent_at: datetime | None = None  # when the bridge last accepted a cancel
    last_cancel_error: str | None = None
    cannot_cancel: bool = False  # the bridge has no DELETE /orders/{id}

    def __init__(self, execution: Execution | Followed) -> None:
        self.execution = Followed.of(execution)
        self.failures = self.cancel_attempts = 0
        self.stale = self.missing = self.confirming = self.cannot_cancel = False
        self.lost_since = self.cancel_sent_at = None
        self.lost_what = self.last_cancel_error = None


def judge(poller: Poller, seen: Observation, now: datetime, bounds: Bounds) -> Step:
    """The next step for `poller` after observing `seen` at wall-clock time `now`."""
    execution = poller.execution
    age = (now - (execution.submitted_at or now)).total_seconds()
    match seen:
        case Unreachable():
            return Wait()
        case Lost(what=what):
            if poller.lost_since is None:
                poller.lost_since = now
            poller.lost_what = what
            lost_for = (now - poller.lost_since).total_seconds()
            if lost_for >= bounds.lost_after:
                return GiveUp(f"status_lost: {what} for {lost_for:.0f} s")
            return _past_timeout(poller, None, what, age, now, bounds, lost=True)
        case Seen():
            pass
    poller.lost_since = poller.lost_what = None
    if seen.status is BrokerStatus.UNKNOWN:  # defensive: readers turn Unknown into Lost
        return judge(poller, Lost("the bridge answers Unknown"), now, bounds)
    if seen.status.is_final:
        short = seen.filled_qty < (execution.quantity or 0)
        if seen.status.needs_confirmation and short and not seen.second_read:
            return Confirm()
        return Finish(seen)
    record = seen if changed(execution, seen) else None
    return _past_timeout(poller, record, seen.status.value, age, now, bounds, lost=False)


def changed(execution: Execution | Followed, seen: Seen) -> bool:
    """Whether `seen` says something the ledger does not have yet (more fills, a new status)."""
    return seen.filled_qty > execution.filled_qty or seen.status.value != execution.broker_status


def _past_timeout(
    poller: Poller,
    record: Seen | None,
    status: str,
    age: float,
    now: datetime,
    bounds: Bounds,
    *,
    lost: bool,
) -> Step:
    """A working (or lost) order: the timeout action once ORDER_POLL_TIMEOUT has passed."""
    if age < bounds.timeout:
        return Wait(record)
    if bounds.timeout_action == "leave":
        # Only an order known to be working is left to the broker; a lost one is followed
        # until its status comes back or the lost clock gives up.
        return Wait(record) if lost else Leave(record)
    if poller.cannot_cancel:
        return Wait(record)  # followed until final; the capability warning says why
    sent = poller.cancel_sent_at
    if sent is not None and (now - sent).total_seconds() < bounds.cancel_wait:
        return Wait(record)  # an accepted cancel is given time to be confirmed
    if poller.cancel_attempts >= bounds.max_cancel_attempts:
        last = f" ({poller.last_cancel_error})" if poller.last_cancel_error else ""
        attempts = poller.cancel_attempts
        return GiveUp(f"status_lost: {status} after {attempts} cancel attempts{last}", record)
    return Cancel(poller.cancel_attempts + 1, record)
