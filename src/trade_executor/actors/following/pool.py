"""`PollerPool`: follows every working order to a final status (or `unknown`), cheaply.

One status read serves every order (CONTRACT section 5, "following orders"):
- Each poller is a small state object (`judge.Poller`), not a task, kept in one of two heaps
  by due time (O(log n) per order per look):
  * `looks`: orders served by the order list. When the earliest is due, and the previous list
    read is at least ORDER_POLL_INTERVAL old, ONE `GET /orders` (a "tick") serves every order
    due before the next tick. So the bridge sees at most one list read per interval, whatever
    the number of orders, and every order is looked at once per interval: a fill is recorded
    from the first list read after it.
  * `reads`: `GET /orders/{id}` work, allowed only for an order the list lacks, for the second
    read of a `Cancelled`/`Inactive` answer (after CANCELLED_RECHECK_DELAY), and for every order
    when the bridge has no list (a bridge from before March 2026: learnt from its 404/405, or
    told by `order_list=False`). Those are spread over the interval as before.
- Whatever needs I/O (a per-order read, a ledger write, a cancel) runs as a short task, at most
  ORDER_POLL_CONCURRENCY at once (the poll client's connection pool is that small too), so a
  list read never waits behind thousands of writes and the executor's own bridge calls never
  wait behind polls. An order whose look changes nothing costs no task and no I/O.
- Deadlines stay per order (`judge`): the timeout is applied at the first look at or after
  ORDER_POLL_TIMEOUT (so within one interval of it), after reading the status.
- An unexpected error re-reads the execution from the ledger and retries with backoff; an
  `IllegalTransition` (settled elsewhere, e.g. an operator's `resolve`) stops the poller; the
  pool resumes every working execution when it (re)starts and every SWEEP_INTERVAL.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import anyio
from anyio.abc import TaskGroup, TaskStatus

from trade_executor.broker.orderbook import OrderIndex
from trade_executor.broker.protocol import Broker
from trade_executor.clock import Clock, utcnow
from trade_executor.config.sources import Settings
from trade_executor.domain.execution import Execution
from trade_executor.domain.states import ExecutionState, IllegalTransition
from trade_executor.observability.logging import bind_context, log_context
from trade_executor.observability.metrics import Metrics
from trade_executor.store.protocol import PollerStore

from .acting import Acts, OnPosition, Report, ReportLost, log
from .children import BracketChildren, bracket_children
from .judge import (
    Bounds,
    Cancel,
    Confirm,
    Finish,
    Followed,
    GiveUp,
    Leave,
    Observation,
    Poller,
    Step,
    Unreachable,
    Wait,
    default_lost_grace,
    judge,
)
from .reads import NoList, from_list, read_list, read_order

RETRY_CAP = 30.0

OnChildren = Callable[[BracketChildren], None]
_Entry = tuple[float, int, Poller]


def poll_bounds(settings: Settings, *, lost_grace: float | None = None) -> Bounds:
    """The judge's bounds from the settings (the judge itself takes no Settings)."""
    interval = settings.order_poll_interval
    grace = default_lost_grace(interval) if lost_grace is None else lost_grace
    return Bounds(
        interval=interval,
        timeout=settings.order_poll_timeout,
        timeout_action=settings.order_timeout_action,
        recheck_delay=settings.cancelled_recheck_delay,
        lost_after=settings.order_poll_timeout + grace,
        cancel_wait=2 * interval,
    )


@dataclass(slots=True)
class FollowStats:
    """Requests made so far (for tests and benchmarks)."""

    list_reads: int = 0
    order_reads: int = 0
    cancels: int = 0


class PollerPool:
    def __init__(
        self,
        settings: Settings,
        store: PollerStore,
        broker: Broker,
        metrics: Metrics,
        report: Report,
        *,
        clock: Clock = utcnow,
        report_lost: ReportLost | None = None,
        on_children: OnChildren | None = None,
        on_position: OnPosition | None = None,
        order_list: bool | None = None,
        lost_grace: float | None = None,
        resume_at_start: bool = True,
    ) -> None:
        """`report` receives `OrderProgress`; `report_lost` an `OrderStatusLost` when an order
        ends `unknown`; `on_children` each list read's bracket children (and the whole list);
        `on_position` each execution that ended holding shares (filled, or cancelled after a
        fill), as recorded, for the exits to follow. `order_list` False
        says the bridge has no `GET /orders` (None: find out from its first answer).
        `lost_grace` overrides the grace after ORDER_POLL_TIMEOUT (`judge.default_lost_grace`).
        `resume_at_start` False: the first run does not read the working executions itself,
        because the executor's recovery reads every open one anyway and hands each working one
        to `follow` (one read of 10,000 rows at start instead of two: issue 22); a later run
        (the pool restarted on its own) resumes them itself."""
        self._settings = settings
        self._store = store
        self._broker = broker
        self._metrics = metrics
        self._clock = clock
        self._bounds = poll_bounds(settings, lost_grace=lost_grace)
        self._acts = Acts(store, broker, metrics, report, report_lost, on_position)
        self._on_children = on_children
        self._order_list_hint = order_list
        self._resume_at_start = resume_at_start
        self._runs = 0
        self._started_at = datetime.max.replace(tzinfo=UTC)
        self.stats = FollowStats()
        self._active: dict[UUID, Poller] = {}
        self._left: set[UUID] = set()
        self._looks: list[_Entry] = []
        self._reads: list[_Entry] = []
        self._order = itertools.count()
        self._listing = order_list is not False
        self._last_list = -math.inf
        self._ticking = False
        self._wake: anyio.Event | None = None
        self._tg: TaskGroup | None = None
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def bounds(self) -> Bounds:
        return self._bounds

    @property
    def uses_order_list(self) -> bool:
        """False once the bridge turned out to have no `GET /orders` (orders read one by one)."""
        return self._listing

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Resume a poller for every working execution, then follow orders until cancelled."""
        self._active.clear()
        self._looks.clear()
        self._reads.clear()
        self._listing = self._order_list_hint is not False
        self._last_list = -math.inf
        self._ticking = False
        self._wake = anyio.Event()
        self._limiter = anyio.CapacityLimiter(self._settings.order_poll_concurrency)
        self._runs += 1
        self._started_at = self._clock()
        async with anyio.create_task_group() as tg:
            self._tg = tg
            if self._resume_at_start or self._runs > 1:
                await self._follow_all_working()
            task_status.started()
            tg.start_soon(self._rescan_forever)
            await self._schedule_forever()

    def follow(self, execution: Execution, *, first_in: float | None = None) -> None:
        """Start following an execution's order, first looked at within `first_in` seconds
        (default: one interval). A second call for the same execution is ignored."""
        if self._tg is None or execution.id in self._active or execution.order_id is None:
            return
        poller = Poller(execution)
        self._active[execution.id] = poller
        self._metrics.open_pollers.set(len(self._active))
        if first_in is None:
            submitted = execution.submitted_at
            resumed = submitted is not None and submitted < self._started_at
            # An order from before this run (handed over by recovery): spread over one
            # interval, as `_follow_all_working` spreads them (it matters for per-order reads).
            first_in = random.uniform(0, self._bounds.interval) if resumed else None
        self._push(poller, self._bounds.interval if first_in is None else first_in)

    # -- resuming --------------------------------------------------------------------------------

    async def _follow_all_working(self) -> None:
        working = await self._store.executions_in(
            [ExecutionState.SUBMITTED, ExecutionState.PARTIALLY_FILLED]
        )
        interval = self._bounds.interval
        for execution in working:
            if execution.id not in self._left:
                # Spread resumed pollers over one interval (it matters for per-order reads).
                self.follow(execution, first_in=random.uniform(0, interval))

    async def _rescan_forever(self) -> None:
        """Self-healing: an execution an operator resolved as `submitted`, or whose poller
        could not be started, gets one within SWEEP_INTERVAL. The sweep reads ids only, then
        the few rows it does not follow yet."""
        while True:
            await anyio.sleep(self._settings.sweep_interval)
            try:
                await self._follow_missing()
            except Exception as error:  # the database may be away: the next rescan retries
                log.warning("poller.rescan_failed", error=str(error))

    async def _follow_missing(self) -> None:
        ids = await self._store.execution_ids_in(
            [ExecutionState.SUBMITTED, ExecutionState.PARTIALLY_FILLED]
        )
        for execution_id in ids:
            if execution_id in self._active or execution_id in self._left:
                continue
            execution = await self._store.get_execution(execution_id)
            if execution is not None and execution.state.is_working:
                self.follow(execution)

    # -- scheduling ------------------------------------------------------------------------------

    def _push(self, poller: Poller, delay: float, *, read: bool = False) -> None:
        self._push_at(poller, anyio.current_time() + max(0.0, delay), read=read)

    def _push_at(self, poller: Poller, due: float, *, read: bool = False) -> None:
        heap = self._reads if read or not self._listing else self._looks
        heapq.heappush(heap, (due, next(self._order), poller))
        if heap[0][2] is poller and self._wake is not None:
            self._wake.set()

    def _again(self, poller: Poller) -> None:
        """Schedule a poller's next look after a step that keeps following it."""
        if poller.confirming:
            self._push(poller, self._bounds.recheck_delay, read=True)
        elif self._listing:
            self._push_at(poller, self._last_list + self._bounds.interval)  # the next tick
        else:
            # One by one: the last read before the timeout lands on it.
            execution = poller.execution
            now = self._clock()
            age = (now - (execution.submitted_at or now)).total_seconds()
            left = self._bounds.timeout - age
            self._push(
                poller, self._bounds.interval if left <= 0 else min(self._bounds.interval, left)
            )

    async def _schedule_forever(self) -> None:
        interval = self._bounds.interval
        while True:
            now = anyio.current_time()
            while self._reads and self._reads[0][0] <= now:
                _, _, poller = heapq.heappop(self._reads)
                await self._start(poller, self._read_and_act, poller)
            tick_at = math.inf
            if self._looks and not self._listing:
                # The bridge has no list: every order is read on its own.
                self._reads.extend(self._looks)
                heapq.heapify(self._reads)
                self._looks.clear()
                continue
            if self._looks and not self._ticking:
                tick_at = max(self._looks[0][0], self._last_list + interval)
                if tick_at <= anyio.current_time():
                    self._start_tick()
                    continue
            wake_at = min(tick_at, self._reads[0][0] if self._reads else math.inf)
            self._wake = anyio.Event()
            with anyio.move_on_after(wake_at - anyio.current_time()):
                await self._wake.wait()

    def _start_tick(self) -> None:
        """Take every order due before the next tick into this one (one list read)."""
        assert self._tg is not None
        now = anyio.current_time()
        horizon = now + self._bounds.interval
        batch: list[Poller] = []
        while self._looks and self._looks[0][0] < horizon:
            batch.append(heapq.heappop(self._looks)[2])
        self._ticking, self._last_list = True, now
        self._tg.start_soon(self._tick, batch)

    async def _tick(self, batch: list[Poller]) -> None:
        pending = list(reversed(batch))
        try:
            listed = await read_list(self._broker)
            self.stats.list_reads += 1
            if isinstance(listed, OrderIndex):
                self._publish_children(listed)
            elif isinstance(listed, NoList) and listed.missing and self._listing:
                self._listing = False
                log.warning("poller.no_order_list", error=listed.error)
            while pending:
                poller = pending.pop()
                try:
                    await self._serve_from_list(poller, listed)
                except Exception:
                    self._crashed(poller)
        except Exception:
            log.exception("poller.tick_crashed")
        finally:
            for poller in pending:  # only after a crash: looked at again at the next tick
                self._push_at(poller, self._last_list + self._bounds.interval)
            self._ticking = False
            if self._wake is not None:
                self._wake.set()

    async def _serve_from_list(
        self, poller: Poller, listed: OrderIndex | NoList | Unreachable
    ) -> None:
        if isinstance(listed, NoList):
            self._push(poller, 0.0, read=True)  # no usable list: its own read, this time
            return
        if isinstance(listed, Unreachable):
            await self._look(poller, listed)
            return
        order_id = poller.execution.order_id
        assert order_id is not None
        order = listed.get(order_id)
        if order is None:
            poller.missing = True  # the one case the contract allows its own read for
            self._push(poller, 0.0, read=True)
            return
        await self._look(poller, from_list(order))

    async def _look(self, poller: Poller, seen: Observation) -> None:
        """Judge at once when that needs no I/O (the common case: nothing changed)."""
        if poller.stale:
            await self._start(poller, self._act, poller, seen)
            return
        step = judge(poller, seen, self._clock(), self._bounds)
        if isinstance(step, Wait) and step.record is None:
            poller.failures = 0
            self._again(poller)
            return
        await self._start(poller, self._carry_out, poller, step)

    def _publish_children(self, index: OrderIndex) -> None:
        if self._on_children is None:
            return
        try:
            self._on_children(bracket_children(index, self._clock()))
        except Exception:  # a broken subscriber must not stop the following
            log.exception("poller.children_hook_failed")

    # -- one poller's I/O, as a short task -------------------------------------------------------

    async def _start(
        self, poller: Poller, work: Callable[..., Awaitable[bool]], *args: object
    ) -> None:
        """Run `work(*args)` (True: keep following) as a task once a slot is free."""
        assert self._tg is not None and self._limiter is not None
        await self._limiter.acquire_on_behalf_of(poller)  # backpressure before a task exists
        self._tg.start_soon(self._guarded, poller, work, args)

    async def _guarded(
        self, poller: Poller, work: Callable[..., Awaitable[bool]], args: tuple[object, ...]
    ) -> None:
        assert self._limiter is not None
        bind_context(**log_context(poller.execution))  # this task's log lines carry the ids
        try:
            keep = await work(*args)
        except IllegalTransition as settled:
            # Settled elsewhere (an operator's resolve): its row is the truth now.
            log.info("poller.stopped", state=str(settled.current), **log_context(poller.execution))
            keep = False
        except Exception:
            self._crashed(poller)
            return
        finally:
            self._limiter.release_on_behalf_of(poller)
        if keep:
            poller.failures = 0
            self._again(poller)
        else:
            self._active.pop(poller.execution.id, None)
            self._metrics.open_pollers.set(len(self._active))

    def _crashed(self, poller: Poller) -> None:
        log.exception("poller.crashed", **log_context(poller.execution))
        poller.failures += 1
        poller.stale = True
        poller.confirming = poller.missing = False
        self._push(poller, min(RETRY_CAP, 2.0**poller.failures) * random.uniform(0.5, 1.0))

    async def _read_and_act(self, poller: Poller) -> bool:
        seen = await read_order(self._broker, poller)
        self.stats.order_reads += 1
        poller.confirming = poller.missing = False
        return await self._act(poller, seen)

    async def _act(self, poller: Poller, seen: Observation) -> bool:
        if poller.stale:
            refreshed = await self._store.get_execution(poller.execution.id)
            if refreshed is None:
                return False
            if not refreshed.state.is_working:
                self._acts.settled_meanwhile(refreshed)
                return False
            poller.execution, poller.stale = Followed.of(refreshed), False
        return await self._carry_out(poller, judge(poller, seen, self._clock(), self._bounds))

    async def _carry_out(self, poller: Poller, step: Step) -> bool:
        """Carry out `step`; True while the order is still to be followed."""
        execution = poller.execution
        record = getattr(step, "record", None)
        if record is not None and not isinstance(step, GiveUp):
            poller.execution = execution = Followed.of(await self._acts.record(execution, record))
        match step:
            case Wait():
                return True
            case Finish(seen=seen):
                await self._acts.finish(execution, seen)
                return False
            case Confirm():
                poller.confirming = True
                return True
            case Cancel(attempt=attempt):
                self.stats.cancels += 1
                await self._acts.cancel(poller, attempt, self._clock())
                return True
            case Leave():
                self._left.add(execution.id)  # working at the broker, no longer followed
                await self._acts.leave(execution)
                return False
            case GiveUp(reason=reason, record=seen_last):
                await self._acts.give_up(execution, reason, seen_last)
                return False
