"""Order pollers: one task per open order, all in the pool's task group.

A poller reads `GET /orders/{id}` every ORDER_POLL_INTERVAL, writes each change to the ledger and
reports it to the executor (`OrderProgress`), until the broker reports a final status or
ORDER_POLL_TIMEOUT has passed since submission (then ORDER_TIMEOUT_ACTION). Per-poller state is
a coroutine and a few fields: 10,000 of them must fit in little memory. A poller that fails is
restarted with backoff; if the pool itself is restarted it resumes every working execution.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import anyio
from anyio.abc import TaskGroup, TaskStatus

from trade_executor.actors.backoff import Backoff
from trade_executor.actors.messages import OrderProgress
from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.config import Settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import BrokerStatus, OrderStatus
from trade_executor.domain.states import ExecutionState
from trade_executor.faults import fault_point
from trade_executor.logging import bind_context, get_logger
from trade_executor.metrics import Metrics
from trade_executor.store.protocol import Store

log = get_logger("trade_executor.poller")

Report = Callable[[OrderProgress], None]
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PollerPool:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: BrokerClient,
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
        self._active: set[UUID] = set()
        self._left: set[UUID] = set()
        self._tg: TaskGroup | None = None

    def set_report(self, report: Report) -> None:
        self._report = report

    @property
    def active(self) -> int:
        return len(self._active)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Resume a poller for every working execution, then host new ones until cancelled."""
        self._active.clear()
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self._follow_all_working()
            task_status.started()
            while True:
                # Self-healing: an execution an operator resolved as `submitted`, or whose
                # poller could not be started, gets one within SWEEP_INTERVAL.
                await anyio.sleep(self._settings.sweep_interval)
                await self._follow_all_working()

    async def _follow_all_working(self) -> None:
        working = await self._store.executions_in(
            [ExecutionState.SUBMITTED, ExecutionState.PARTIALLY_FILLED]
        )
        for execution in working:
            if execution.id not in self._left:
                self.follow(execution)

    def follow(self, execution: Execution) -> None:
        """Start polling an execution's order (once: a second call is ignored)."""
        if self._tg is None or execution.id in self._active or execution.order_id is None:
            return
        self._active.add(execution.id)
        self._metrics.open_pollers.set(len(self._active))
        self._tg.start_soon(self._poller, execution, name=f"poller-{execution.order_id}")

    async def _poller(self, execution: Execution) -> None:
        bind_context(**_context(execution))  # every log line of this task carries the ids
        backoff = Backoff(base=1.0, cap=30.0)
        try:
            while True:
                try:
                    await self._follow(execution)
                    return
                except Exception:
                    log.exception("poller.crashed", **_context(execution))
                await anyio.sleep(backoff.next())
                refreshed = await self._store.get_execution(execution.id)
                if refreshed is None or refreshed.state.is_final:
                    return
                execution = refreshed
                log.warning("poller.restarted", **_context(execution))
        finally:
            self._active.discard(execution.id)
            self._metrics.open_pollers.set(len(self._active))

    async def _follow(self, execution: Execution) -> None:
        interval = self._settings.order_poll_interval
        submitted_at = execution.submitted_at or self._clock()
        while True:
            elapsed = (self._clock() - submitted_at).total_seconds()
            remaining = self._settings.order_poll_timeout - elapsed
            if remaining <= 0:
                await self._on_timeout(execution)
                return
            await anyio.sleep(min(interval, remaining))
            status = await self._read(execution)
            if status is None:
                continue
            if status.status.is_final:
                await self._finish(execution, status)
                return
            updated = await self._record_progress(execution, status)
            if updated is not None:
                execution = updated

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
        transition = "partial_fill" if filled > 0 else None
        updated = await self._store.apply(
            execution.id, transition, changes, "order.progress", {"broker_status": status.status}
        )
        if updated is not None:
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
            name, event, reason = "fill", "order.filled", None
        else:
            name, event = "cancel", "order.cancelled"
            reason = f"broker: {status.status.value}"
        changes = Changes(
            reason=reason,
            filled_qty=filled,
            avg_fill_price=status.avg_fill_price if filled else None,
            broker_status=status.status.value,
        )
        updated = await self._store.apply(execution.id, name, changes, event, {})
        log.info(
            event,
            broker_status=status.status.value,
            filled_qty=filled,
            avg_fill_price=str(status.avg_fill_price),
            **_context(execution),
        )
        if updated is not None:
            self._metrics.executions.labels(state=updated.state.value).inc()
        self._report(OrderProgress(execution.id, filled, final=True))

    async def _on_timeout(self, execution: Execution) -> None:
        action = self._settings.order_timeout_action
        log.warning("poller.timeout", action=action, **_context(execution))
        if action == "leave":
            self._left.add(execution.id)  # working at the broker, no longer followed
            await self._store.add_event(execution.id, "poller.timeout", {"action": "leave"})
            return
        assert execution.order_id is not None
        try:
            result = await self._broker.cancel_order(execution.order_id)
        except BrokerError as error:
            log.error("poller.cancel_failed", error=str(error), **_context(execution))
            await self._store.add_event(execution.id, "poller.cancel_failed", {"error": str(error)})
            raise  # the poller is restarted and tries again at once (its clock has run out)
        await self._store.add_event(
            execution.id,
            "poller.timeout",
            {"action": "cancel", "success": result.success, "message": result.message},
        )
        # Read the final state back: the order may have filled, fully or partly, meanwhile.
        with anyio.move_on_after(self._settings.order_poll_interval * 3 + 5):
            while True:
                status = await self._read(execution)
                if status is not None and status.status.is_final:
                    await self._finish(execution, status)
                    return
                await anyio.sleep(min(1.0, self._settings.order_poll_interval))
        log.error("poller.cancel_unconfirmed", **_context(execution))


def _context(execution: Execution) -> dict[str, object]:
    return {
        "execution_id": str(execution.id),
        "signal_id": str(execution.signal_id),
        "symbol": execution.symbol,
        "order_id": execution.order_id,
    }
