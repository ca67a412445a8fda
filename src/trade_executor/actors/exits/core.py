"""The exits' core: the one owner of the `ExitFollower`'s state, fed what happened, answering
what may be done. Synchronous (no I/O, no awaits, no clock of its own: moments are passed in),
like the executor's core (`actors/execution/core.py`); the shells (`looks`, `closing`,
`protection`, `reprotect`, the follower's run) do the I/O and report here.

What it holds: the positions followed (each a `Followed`: the row as last recorded, the kind of
a close under way, the sibling cancels sent), the work under way (one task per kind of work
and position), the pollers' latest order list not yet used by a look, the flatten times
already acted on, and the tallies of what was asked of the bridge (`ExitStats`).

A `Followed` also carries the position's lock and its `closed` event: the shells take the lock
around a change (the core never waits on it) and wait for the event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from uuid import UUID

import anyio

from trade_executor.broker.orderbook import OrderIndex
from trade_executor.domain.execution import Execution

from .flatten import FlattenRule, FlattenSchedule
from .positions import ExitReason, PositionState, close_kind, is_open

MAX_SIBLING_CANCELS = 3


@dataclass(eq=False)
class Followed:
    """One position followed. `closing` is the kind of a close under way."""

    execution: Execution
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    closed: anyio.Event = field(default_factory=anyio.Event)
    closing: ExitReason | None = None
    cancels: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class ExitStats:
    """What the exits asked of the bridge (for tests and the demo)."""

    looks: int = 0
    list_reads: int = 0
    closes: int = 0
    protects: int = 0
    cancels: int = 0


class SiblingCancel(Enum):
    """What to do about an exit order still working after its position closed."""

    SEND = "send"  # cancel it (again)
    REPORT = "report"  # the attempts are used up: say so, once
    NOTHING = "nothing"  # reported already


class ExitsCore:
    """Lives as long as its follower: `stats` count over every run; `reset` starts a run."""

    def __init__(self) -> None:
        self.stats = ExitStats()
        self._followed: dict[UUID, Followed] = {}
        self._busy: set[tuple[str, UUID]] = set()
        # The pollers' latest list read, until a look uses it.
        self._pool_index: OrderIndex | None = None
        self._flatten = FlattenSchedule()
        # (position, session open) whose protection at the open was skipped and said so.
        self._skips_told: set[tuple[UUID, datetime]] = set()

    def reset(self) -> None:
        """A fresh run: nothing of a cancelled run's positions or reads is reused."""
        self._followed.clear()
        self._busy.clear()
        self._pool_index = None

    # -- the positions followed ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._followed)

    def follows(self, execution_id: UUID) -> bool:
        return execution_id in self._followed

    def get(self, execution_id: UUID) -> Followed | None:
        return self._followed.get(execution_id)

    def positions(self) -> list[Followed]:
        """Every position followed, in the order they were first followed."""
        return list(self._followed.values())

    def open_positions(self, *, idle: bool = False) -> list[Followed]:
        """The open ones (`idle`: with no close under way)."""
        return [
            f
            for f in self._followed.values()
            if is_open(f.execution) and not (idle and f.closing is not None)
        ]

    def track(self, execution: Execution) -> Followed:
        """The position followed for `execution`, created or refreshed with this row; a lock's
        holder keeps its own row (and records the newer one itself)."""
        followed = self._followed.get(execution.id)
        if followed is None:
            followed = self._followed[execution.id] = Followed(execution)
        elif not followed.lock.locked():
            followed.execution = execution
        if execution.position_state == PositionState.CLOSED:
            followed.closed.set()
        return followed

    def forget(self, execution_id: UUID) -> None:
        """Settled (or left the states a position has): no longer followed."""
        self._followed.pop(execution_id, None)

    def recorded(self, followed: Followed, execution: Execution) -> Execution:
        """The ledger now holds `execution` for this position (written by its lock's holder)."""
        followed.execution = execution
        return execution

    # -- the work under way --------------------------------------------------------------------

    def begin(self, what: str, execution_id: UUID) -> bool:
        """One task per (kind of work, position): True when this one may start."""
        key = (what, execution_id)
        if key in self._busy:
            return False
        self._busy.add(key)
        return True

    def end(self, what: str, execution_id: UUID) -> None:
        self._busy.discard((what, execution_id))

    # -- the order list ------------------------------------------------------------------------

    def offer_index(self, index: OrderIndex) -> None:
        """The pollers read the order list: the next look uses it instead of its own read."""
        self._pool_index = index

    def take_index(self) -> OrderIndex | None:
        """The pollers' read since the last look (used once), or None: read one."""
        index, self._pool_index = self._pool_index, None
        return index

    def listed(self) -> None:
        """A `GET /orders` of the exits' own was answered."""
        self.stats.list_reads += 1

    def looked(self) -> None:
        self.stats.looks += 1

    # -- closing -------------------------------------------------------------------------------

    def start_close(self, followed: Followed, kind: ExitReason) -> bool:
        """A close of an open position with no close under way nor a close order working:
        True when it starts now (its intent is written next)."""
        execution = followed.execution
        if not is_open(execution) or followed.closing is not None:
            return False
        if execution.exit_order_id is not None and execution.exit_order_id > 0:
            return False  # a close order is already working for it
        followed.closing = kind
        return True

    def start_settling(self, followed: Followed) -> bool:
        """After a restart: a close sent whose answer was never recorded is settled now."""
        execution = followed.execution
        if not is_open(execution) or execution.exit_order_id != 0 or followed.closing:
            return False
        followed.closing = close_kind(execution)
        return True

    def close_over(self, followed: Followed) -> None:
        """The close ended without closing the position (refused, nothing held, its order
        ended, its task failed, the bridge could not be asked): another close may start."""
        followed.closing = None

    def close_sent(self) -> None:
        self.stats.closes += 1

    def position_closed(self, followed: Followed) -> None:
        """Its exit closed the position: those waiting for it are told."""
        followed.closing = None
        followed.closed.set()

    def flatten_due(
        self,
        now: datetime,
        positions: Iterable[Execution],
        rules: Mapping[UUID, Sequence[FlattenRule]],
    ) -> list[tuple[Execution, FlattenRule]]:
        """The positions whose flatten time came, each (rule, day, position) once."""
        return self._flatten.due(now, positions, rules)

    # -- cancels and protection ----------------------------------------------------------------

    def sibling_cancel(self, followed: Followed, order_id: int) -> SiblingCancel:
        """An exit order still working after its position closed: cancelled a few times at
        most (MAX_SIBLING_CANCELS), then reported once."""
        attempts = followed.cancels.get(order_id, 0) + 1
        if attempts > MAX_SIBLING_CANCELS:
            if attempts == MAX_SIBLING_CANCELS + 1:
                followed.cancels[order_id] = attempts
                return SiblingCancel.REPORT
            return SiblingCancel.NOTHING
        followed.cancels[order_id] = attempts
        self.stats.cancels += 1
        return SiblingCancel.SEND

    def cancel_sent(self) -> None:
        """A cancel of an exit order before a close."""
        self.stats.cancels += 1

    def protect_sent(self) -> None:
        self.stats.protects += 1

    def first_skip(self, execution_id: UUID, opened: datetime) -> bool:
        """Protection at the session open `opened` is skipped for this position (the broker
        disagrees, or a stop works): True the first time, to say so once per open."""
        key = (execution_id, opened)
        if key in self._skips_told:
            return False
        self._skips_told.add(key)
        return True
