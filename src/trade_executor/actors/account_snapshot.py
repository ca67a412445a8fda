"""The account snapshot off the approval's path (CONTRACT section 5, "Account snapshot"; issue 22).

A risk decision needs the bridge's account (`GET /account`) and positions (`GET /positions`).
Reading them for every decision put two bridge round trips on every approval's path (the
largest item of its profile, bench/ANALYSIS.md). `AccountSnapshot` keeps one snapshot fresh in
the background instead, as its own actor (`run`, started by `wiring.Actors.start`):

- it reads the snapshot every `period` (ACCOUNT_SNAPSHOT_MAX_AGE / 2), and at once after every
  activity of ours that changes the account: an order, close or protection the service sent
  (its answer, or its failure: `NotingBroker` wraps the order broker), a fill or an exit the
  pollers, the exits or the reconciler report (`noting`, around the executor's mailbox);
- a decision (`current`) uses the latest snapshot when its read began less than
  ACCOUNT_SNAPSHOT_MAX_AGE ago AND after the last such activity; otherwise it waits for a read
  that began after both (one read in progress serves every decision waiting for it).

The consistency argument: a decision never uses an account read older than the maximum age,
and never one that began before an order, fill, close or protection of ours that the service
had seen by the time the decision asked, so every fill the executor's `WorkingOrders` has
already taken off its in-flight total is in the snapshot's positions and buying power. What
is still in flight (decided, sent, not yet filled) is counted by the RiskBook and
`WorkingOrders` on top of the snapshot exactly as before (its unfilled value comes off buying
power). Activity that happens while a decision waits for its read is concurrent with it, as an
order in flight during the read always was. A failed read is never kept: the decision fails
`bridge_unavailable`, as before. The clock (anyio's, monotonic) is injectable for tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from trade_executor.actors.messages import FillsFound, Message, OrderProgress, PositionExited
from trade_executor.broker.capabilities import BridgeCapabilities
from trade_executor.broker.errors import BrokerError
from trade_executor.domain.models import (
    Account,
    AnyOrderRequest,
    BridgeHealth,
    BrokerOrder,
    CancelResult,
    OrderStatus,
    OrderType,
    PlacedOrder,
    Position,
    ProtectionPlaced,
)
from trade_executor.observability.logging import get_logger

if TYPE_CHECKING:
    from trade_executor.broker.protocol import Broker

log = get_logger("trade_executor.account_snapshot")

Snapshot = tuple[Account, list[Position]]
Clock = Callable[[], float]


@dataclass(eq=False)
class _Read:
    started: float  # the clock when the read began
    activity: int  # the activity count when the read began
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Snapshot | None = None
    error: BrokerError | None = None


class AccountSnapshot:
    """One account snapshot, kept fresh; see the module docstring. `reads` counts the reads
    made (tests and benchmarks), `served` the decisions a kept snapshot served without one."""

    def __init__(
        self,
        broker: Broker,
        max_age: float,
        *,
        period: float | None = None,
        clock: Clock = anyio.current_time,
    ) -> None:
        if max_age <= 0:
            raise ValueError("max_age must be > 0")
        self._broker = broker
        self.max_age = max_age
        self.period = max_age / 2 if period is None else period
        self._clock = clock
        self._activity = 0
        self._latest: _Read | None = None  # the newest successful read
        self._reading: _Read | None = None  # the read in progress
        self._wake = anyio.Event()
        self._tg: TaskGroup | None = None
        self.reads = 0
        self.served = 0

    # -- what the rest of the service tells it ---------------------------------------------------

    def note_activity(self) -> None:
        """An order, fill, close or protection of ours: no snapshot read before now is used by
        a later decision; a new read starts at once."""
        self._activity += 1
        self._wake.set()

    def prefetch(self, tg: TaskGroup) -> None:
        """An approval was seen: if its decision could not use what is kept, start the read now
        (it overlaps the claim) unless one that would serve it is under way."""
        if self._usable(self._latest):
            return
        reading = self._reading
        if reading is None or reading.activity < self._activity:
            self._start(tg)

    # -- what a decision asks --------------------------------------------------------------------

    async def current(self) -> Snapshot:
        """A snapshot read less than max_age ago and after every activity of ours seen so far;
        waits for a read when the kept one is not; raises that read's BrokerError."""
        required = self._activity
        latest = self._latest
        if self._usable(latest):
            assert latest is not None and latest.result is not None
            self.served += 1
            return latest.result
        read = self._reading
        if read is None or read.activity < required:
            if self._tg is None:  # not running as an actor (a test's executor): read here
                read = self._begin()
                await self._fill(read)
            else:
                read = self._start(self._tg)
        await read.done.wait()
        if read.error is not None:
            raise read.error
        assert read.result is not None
        return read.result

    def _usable(self, read: _Read | None) -> bool:
        return (
            read is not None
            and read.result is not None
            and read.activity == self._activity
            and self._clock() - read.started < self.max_age
        )

    # -- the actor -------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep the snapshot fresh until cancelled: a read every `period`, and at once after
        activity. A failed read is retried at the next period (decisions see their own error)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                while True:
                    self._wake = anyio.Event()
                    read = self._reading
                    if read is None or read.activity < self._activity:
                        read = self._start(tg)
                    await read.done.wait()
                    with anyio.move_on_after(self.period):
                        await self._wake.wait()
            finally:
                self._tg = None

    def _begin(self) -> _Read:
        read = _Read(self._clock(), self._activity)
        self._reading = read
        self.reads += 1
        return read

    def _start(self, tg: TaskGroup) -> _Read:
        read = self._begin()
        tg.start_soon(self._fill, read)
        return read

    async def _fill(self, read: _Read) -> None:
        try:
            read.result = await self._read_both()
        except BrokerError as error:
            read.error = error
        except Exception as error:  # a bug below must fail the decisions, not strand them
            log.exception("account_snapshot.read_crashed")
            read.error = BrokerError(f"the read crashed: {error}", endpoint="GET /account")
        finally:
            if read.result is not None and (
                self._latest is None or read.started >= self._latest.started
            ):
                self._latest = read
            if self._reading is read:
                self._reading = None
            read.done.set()

    async def _read_both(self) -> Snapshot:
        """Both reads concurrently; a failure raises the BrokerError itself, not a group."""
        results: dict[str, Any] = {}

        async def fetch(name: str, call: Callable[[], Any]) -> None:
            results[name] = await call()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(fetch, "account", self._broker.account)
                tg.start_soon(fetch, "positions", self._broker.positions)
        except* BrokerError as group:
            raise _first_leaf(group) from None
        return results["account"], results["positions"]


def _first_leaf(group: BaseExceptionGroup[BrokerError]) -> BrokerError:
    """The first BrokerError in `group`, however nested (trio nests a nursery's groups)."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def noting(keeper: AccountSnapshot, send: Callable[[Message], None]) -> Callable[[Message], None]:
    """`send`, noting a fill or an exit (the pollers', the exits', the reconciler's messages to
    the executor) as activity first: the next decision's snapshot reflects it."""

    def sent(message: Message) -> None:
        if isinstance(message, OrderProgress | PositionExited | FillsFound):
            keeper.note_activity()
        send(message)

    return sent


class NotingBroker:
    """`inner`, with every order, cancel, close and protection noted as activity once the call
    ends (answered or not: a failure may have placed it). Reads pass straight through."""

    def __init__(self, inner: Broker, keeper: AccountSnapshot) -> None:
        self.inner = inner
        self._keeper = keeper

    async def health(self) -> BridgeHealth:
        return await self.inner.health()

    async def capabilities(self) -> BridgeCapabilities:
        return await self.inner.capabilities()

    async def account(self) -> Account:
        return await self.inner.account()

    async def positions(self) -> list[Position]:
        return await self.inner.positions()

    async def order_status(self, order_id: int) -> OrderStatus:
        return await self.inner.order_status(order_id)

    async def orders(self) -> list[BrokerOrder]:
        return await self.inner.orders()

    async def place(self, req: AnyOrderRequest) -> PlacedOrder:
        try:
            return await self.inner.place(req)
        finally:
            self._keeper.note_activity()

    async def cancel_order(self, order_id: int) -> CancelResult:
        try:
            return await self.inner.cancel_order(order_id)
        finally:
            self._keeper.note_activity()

    async def close_position(
        self,
        symbol: str,
        *,
        quantity: int | None = None,
        order_type: OrderType = OrderType.MKT,
        limit_price: Decimal | None = None,
    ) -> PlacedOrder:
        try:
            return await self.inner.close_position(
                symbol, quantity=quantity, order_type=order_type, limit_price=limit_price
            )
        finally:
            self._keeper.note_activity()

    async def protect_position(
        self,
        symbol: str,
        *,
        stop_loss: Decimal,
        take_profit: Decimal | None = None,
        quantity: int | None = None,
        replace_existing: bool = True,
    ) -> ProtectionPlaced:
        try:
            return await self.inner.protect_position(
                symbol,
                stop_loss=stop_loss,
                take_profit=take_profit,
                quantity=quantity,
                replace_existing=replace_existing,
            )
        finally:
            self._keeper.note_activity()


if TYPE_CHECKING:
    # mypy checks here that the wrapper satisfies the seam the actors depend on.
    def _satisfies_broker(broker: NotingBroker) -> Broker:
        return broker
