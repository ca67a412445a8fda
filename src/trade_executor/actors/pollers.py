"""Order pollers: one per open order, woken by one scheduler.

A poller reads `GET /orders/{id}` every ORDER_POLL_INTERVAL, writes each change to the ledger and
reports it to the executor (`OrderProgress`), until the broker reports a final status or
ORDER_POLL_TIMEOUT has passed since submission (then ORDER_TIMEOUT_ACTION). A poller is a small
state object, not a task: the pool keeps them in a heap by due time and runs each due poll as a
short task, at most ORDER_POLL_CONCURRENCY at once. So 10,000 open orders cost 10,000 small objects,
their polls are spread over the interval instead of all waking together, and they can never
take every bridge connection from the executor's own reads and orders. A poll that fails is
retried with backoff; if the pool itself restarts it resumes every working execution.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import anyio
from anyio.abc import TaskGroup, TaskStatus

from trade_executor.actors.messages import OrderProgress
from trade_executor.broker.errors import BrokerError
from trade_executor.broker.protocol import Broker
from trade_executor.config import Settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import BrokerStatus, OrderStatus
from trade_executor.domain.states import EventKind, ExecutionState, IllegalTransition, Transition
from trade_executor.logging import bind_context, get_logger
from trade_executor.metrics import Metrics
from trade_executor.store.protocol import Store
from trade_executor.testing.faults import fault_point

log = get_logger("trade_executor.poller")

RETRY_CAP = 30.0

Report = Callable[[OrderProgress], None]
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False, slots=True)
class Poller:
    """One open order's poller, between two polls."""

    execution: Execution
    failures: int = 0
    stale: bool = False  # re-read the execution from the ledger before the next poll
    cancel_sent_at: datetime | None = None


class PollerPool:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        metrics: Metrics,
        report: Report,
        *,
        clock: Clock = _utcnow,
    ) -> None:
        self._settings = settings
        self._store = store
        self._broker = broker
        self._metrics = metrics
        self._report = report
        self._clock = clock
        self._active: dict[UUID, Poller] = {}
        self._left: set[UUID] = set()
        self._due: list[tuple[float, int, Poller]] = []
        self._order = itertools.count()
        self._wake: anyio.Event | None = None
        self._tg: TaskGroup | None = None

    @property
    def active(self) -> int:
        return len(self._active)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Resume a poller for every working execution, then schedule polls until cancelled."""
        self._active.clear()
        self._due.clear()
        self._wake = anyio.Event()
        limiter = anyio.CapacityLimiter(self._settings.order_poll_concurrency)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self._follow_all_working()
            task_status.started()
            tg.start_soon(self._rescan_forever)
            await self._schedule_forever(tg, limiter)

    def follow(self, execution: Execution, *, first_in: float | None = None) -> None:
        """Start polling an execution's order, first after `first_in` seconds (default: one
        interval). A second call for the same execution is ignored."""
        if self._tg is None or execution.id in self._active or execution.order_id is None:
            return
        poller = Poller(execution)
        self._active[execution.id] = poller
        self._metrics.open_pollers.set(len(self._active))
        self._at(poller, self._settings.order_poll_interval if first_in is None else first_in)

    async def _follow_all_working(self) -> None:
        working = await self._store.executions_in(
            [ExecutionState.SUBMITTED, ExecutionState.PARTIALLY_FILLED]
        )
        interval = self._settings.order_poll_interval
        for execution in working:
            if execution.id not in self._left:
                # Spread resumed pollers over one interval rather than waking all at once.
                self.follow(execution, first_in=random.uniform(0, interval))

    async def _rescan_forever(self) -> None:
        """Self-healing: an execution an operator resolved as `submitted`, or whose poller
        could not be started, gets one within SWEEP_INTERVAL."""
        while True:
            await anyio.sleep(self._settings.sweep_interval)
            try:
                await self._follow_all_working()
            except Exception as error:  # the database may be away: the next rescan retries
                log.warning("poller.rescan_failed", error=str(error))

    def _at(self, poller: Poller, delay: float) -> None:
        due = anyio.current_time() + max(0.0, delay)
        heapq.heappush(self._due, (due, next(self._order), poller))
        if self._due[0][2] is poller and self._wake is not None:
            self._wake.set()

    async def _schedule_forever(self, tg: TaskGroup, limiter: anyio.CapacityLimiter) -> None:
        while True:
            while self._due and self._due[0][0] <= anyio.current_time():
                _, _, poller = heapq.heappop(self._due)
                # Backpressure: a poll starts only when one of the slots is free.
                await limiter.acquire_on_behalf_of(poller)
                tg.start_soon(self._poll, poller, limiter)
            self._wake = anyio.Event()
            delay = self._due[0][0] - anyio.current_time() if self._due else math.inf
            with anyio.move_on_after(delay):
                await self._wake.wait()

    async def _poll(self, poller: Poller, limiter: anyio.CapacityLimiter) -> None:
        bind_context(**_context(poller.execution))  # this poll's log lines carry the ids
        try:
            next_in = await self._poll_once(poller)
        except IllegalTransition as settled:
            # Settled elsewhere (an operator's resolve): its row is the truth now.
            log.info("poller.stopped", state=str(settled.current), **_context(poller.execution))
            next_in = None
        except Exception:
            log.exception("poller.crashed", **_context(poller.execution))
            poller.failures += 1
            poller.stale = True
            next_in = min(RETRY_CAP, 2.0**poller.failures) * random.uniform(0.5, 1.0)
        finally:
            limiter.release_on_behalf_of(poller)
        if next_in is None:
            self._active.pop(poller.execution.id, None)
            self._metrics.open_pollers.set(len(self._active))
        else:
            self._at(poller, next_in)

    async def _poll_once(self, poller: Poller) -> float | None:
        """One poll. Returns the delay to the next one, or None when the order needs no more."""
        if poller.stale:
            refreshed = await self._store.get_execution(poller.execution.id)
            if refreshed is None or refreshed.state.is_final:
                return None
            poller.execution, poller.stale = refreshed, False
        execution = poller.execution
        now = self._clock()
        elapsed = (now - (execution.submitted_at or now)).total_seconds()
        if poller.cancel_sent_at is None and elapsed >= self._settings.order_poll_timeout:
            return await self._on_timeout(poller)
        status = await self._read(execution)
        if status is not None:
            poller.failures = 0
        if status is not None and status.status.is_final:
            await self._finish(execution, status)
            return None
        if status is not None:
            updated = await self._record_progress(execution, status)
            poller.execution = updated or execution
        interval = self._settings.order_poll_interval
        if poller.cancel_sent_at is not None:
            waited = (self._clock() - poller.cancel_sent_at).total_seconds()
            if waited > interval * 3 + 5:
                log.error("poller.cancel_unconfirmed", **_context(execution))
                return None  # the periodic rescan tries again
            return min(1.0, interval)
        return min(interval, self._settings.order_poll_timeout - elapsed)

    async def _read(self, execution: Execution) -> OrderStatus | None:
        """The order's status, or None when there is nothing usable to record this time."""
        status = await self._read_once(execution)
        if (
            status is not None
            and status.status.needs_confirmation
            and status.filled_qty < (execution.quantity or 0)
        ):
            # IB can report Cancelled for an order that filled: read it again a bit later.
            await anyio.sleep(self._settings.cancelled_recheck_delay)
            status = await self._read_once(execution)
        return status

    async def _read_once(self, execution: Execution) -> OrderStatus | None:
        assert execution.order_id is not None
        try:
            status = await self._broker.order_status(execution.order_id)
        except BrokerError as error:
            log.warning("poller.read_failed", error=str(error), **_context(execution))
            return None
        if status.status is BrokerStatus.UNKNOWN:
            # The bridge does not know the order (its own restart, say): never final, and
            # never allowed to overwrite fills already recorded.
            log.warning("poller.status_unknown", **_context(execution))
            return None
        return status

    async def _record_progress(self, execution: Execution, status: OrderStatus) -> Execution | None:
        filled = max(status.filled_qty, execution.filled_qty)
        if filled == execution.filled_qty and status.status.value == execution.broker_status:
            return None
        fault_point("poller_after_fill_read")
        changes = Changes(
            filled_qty=filled,
            avg_fill_price=status.avg_fill_price if filled else None,
            broker_status=status.status.value,
        )
        transition = Transition.PARTIAL_FILL if filled > 0 else Transition.PROGRESS
        updated = await self._store.apply(
            execution.id, transition, changes, {"broker_status": status.status}
        )
        log.info(
            "order.partially_filled" if filled else "order.status",
            broker_status=status.status.value,
            filled_qty=filled,
            avg_fill_price=str(status.avg_fill_price),
            **_context(execution),
        )
        self._report(OrderProgress(execution.id, filled, final=False))
        return updated

    async def _finish(self, execution: Execution, status: OrderStatus) -> None:
        filled = max(status.filled_qty, execution.filled_qty)
        fault_point("poller_after_fill_read")
        if status.status is BrokerStatus.FILLED:
            transition, reason = Transition.FILL, None
        else:
            transition, reason = Transition.CANCEL, f"broker: {status.status.value}"
        changes = Changes(
            reason=reason,
            filled_qty=filled,
            avg_fill_price=status.avg_fill_price if filled else None,
            broker_status=status.status.value,
        )
        updated = await self._store.apply(execution.id, transition, changes)
        log.info(
            transition.event,
            broker_status=status.status.value,
            filled_qty=filled,
            avg_fill_price=str(status.avg_fill_price),
            **_context(execution),
        )
        self._metrics.executions.labels(state=updated.state.value).inc()
        self._report(OrderProgress(execution.id, filled, final=True))

    async def _on_timeout(self, poller: Poller) -> float | None:
        execution = poller.execution
        action = self._settings.order_timeout_action
        log.warning("poller.timeout", action=action, **_context(execution))
        if action == "leave":
            self._left.add(execution.id)  # working at the broker, no longer followed
            await self._store.add_event(execution.id, EventKind.POLLER_TIMEOUT, {"action": "leave"})
            return None
        assert execution.order_id is not None
        try:
            result = await self._broker.cancel_order(execution.order_id)
        except BrokerError as error:
            log.error("poller.cancel_failed", error=str(error), **_context(execution))
            await self._store.add_event(
                execution.id, EventKind.CANCEL_FAILED, {"error": str(error)}
            )
            poller.failures += 1
            return min(RETRY_CAP, 2.0**poller.failures)  # its clock has run out: cancel again
        await self._store.add_event(
            execution.id,
            EventKind.POLLER_TIMEOUT,
            {"action": "cancel", "success": result.success, "message": result.message},
        )
        # Read the final state back at once: the order may have filled, fully or partly.
        poller.cancel_sent_at = self._clock()
        return 0.0


def _context(execution: Execution) -> dict[str, object]:
    return {
        "execution_id": str(execution.id),
        "signal_id": str(execution.signal_id),
        "symbol": execution.symbol,
        "order_id": execution.order_id,
    }
