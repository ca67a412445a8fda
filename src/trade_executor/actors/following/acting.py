"""Carrying out a poller's step: ledger writes, the executor's messages, the timeout's cancel.

Guarantees:
- Every change is one `Store.apply` (the execution row, its event and the `trades` row together);
  fills only grow (the larger of the seen and the recorded count is written).
- `filled`/`cancelled` are reported to the executor as `OrderProgress(final=True)`, which frees
  the risk; `unknown` (give up) is NOT: its risk stays committed and its symbol held until an
  operator resolves it. It is announced as `OrderStatusLost` instead, logged at error level.
- A cancel writes one audit row per attempt (at most `Bounds.max_cancel_attempts`).
- `IllegalTransition` from the store propagates: the caller stops following (settled elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from trade_executor.actors.messages import OrderProgress, OrderStatusLost
from trade_executor.broker.errors import BrokerError, EndpointMissing
from trade_executor.broker.protocol import Broker
from trade_executor.crashpoints import fault_point
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import BrokerStatus
from trade_executor.domain.states import EventKind, ExecutionState, Transition
from trade_executor.observability.logging import get_logger, log_context, log_repeated
from trade_executor.observability.metrics import Metrics
from trade_executor.store.protocol import PollerStore

from .judge import Followed, Poller, Seen

log = get_logger("trade_executor.poller")

CANCEL_FAILED = ("poller", "cancel_failed")

Report = Callable[[OrderProgress], None]
ReportLost = Callable[[OrderStatusLost], None]
OnPosition = Callable[[Execution], None]


def position_after(
    execution: Execution | Followed, transition: Transition, filled: int
) -> str | None:
    """The position an entry leaves when its order ends: none without a fill; `open` after a
    fill; `unprotected` when a cancel after a partial fill took the bracket's children with it
    (IB cancels them with their parent): the exits protect the filled quantity again."""
    if filled <= 0:
        return None
    if transition is Transition.CANCEL and execution.child_order_ids:
        return "unprotected"
    return "open"


class Acts:
    def __init__(
        self,
        store: PollerStore,
        broker: Broker,
        metrics: Metrics,
        report: Report,
        report_lost: ReportLost | None,
        on_position: OnPosition | None = None,
    ) -> None:
        self._store = store
        self._broker = broker
        self._metrics = metrics
        self._report = report
        self._report_lost = report_lost
        self._on_position = on_position

    async def record(self, execution: Followed, seen: Seen) -> Execution:
        """A working order's new status or fills; returns the execution as now recorded."""
        filled = max(seen.filled_qty, execution.filled_qty)
        fault_point("poller_after_fill_read")
        changes = Changes(
            filled_qty=filled,
            avg_fill_price=seen.avg_fill_price if filled else None,
            broker_status=seen.status.value,
        )
        transition = Transition.PARTIAL_FILL if filled > 0 else Transition.PROGRESS
        updated = await self._store.apply(
            execution.id, transition, changes, {"broker_status": seen.status}
        )
        log.info(
            "order.partially_filled" if filled else "order.status",
            broker_status=seen.status.value,
            filled_qty=filled,
            avg_fill_price=str(seen.avg_fill_price),
            **log_context(execution),
        )
        self._report(OrderProgress(execution.id, filled, final=False))
        return updated

    async def finish(self, execution: Followed, seen: Seen) -> None:
        filled = max(seen.filled_qty, execution.filled_qty)
        fault_point("poller_after_fill_read")
        if seen.status is BrokerStatus.FILLED:
            transition, reason = Transition.FILL, None
        else:
            transition, reason = Transition.CANCEL, f"broker: {seen.status.value}"
        changes = Changes(
            reason=reason,
            filled_qty=filled,
            avg_fill_price=seen.avg_fill_price if filled else None,
            broker_status=seen.status.value,
            position_state=position_after(execution, transition, filled),
        )
        updated = await self._store.apply(execution.id, transition, changes)
        log.info(
            transition.event,
            broker_status=seen.status.value,
            side=execution.action,
            filled_qty=filled,
            avg_fill_price=str(seen.avg_fill_price),
            **log_context(execution),
        )
        self._metrics.executions.labels(state=updated.state.value).inc()
        self._report(OrderProgress(execution.id, filled, final=True))
        if self._on_position is not None and updated.position_state is not None:
            self._on_position(updated)

    async def give_up(self, execution: Followed, reason: str, seen: Seen | None) -> None:
        """`unknown`: risk kept, symbol held, an operator settles it (`resolve`)."""
        changes = Changes(reason=reason)
        if seen is not None:
            filled = max(seen.filled_qty, execution.filled_qty)
            changes = Changes(
                reason=reason,
                filled_qty=filled,
                avg_fill_price=seen.avg_fill_price if filled else None,
                broker_status=seen.status.value,
            )
        updated = await self._store.apply(execution.id, Transition.GIVE_UP, changes)
        log.error(
            Transition.GIVE_UP.event,
            reason=reason,
            filled_qty=updated.filled_qty,
            **log_context(execution),
        )
        self._metrics.executions.labels(state=updated.state.value).inc()
        if self._report_lost is not None:
            self._report_lost(OrderStatusLost(execution.id, updated.filled_qty, reason))

    def settled_meanwhile(self, execution: Execution) -> None:
        """A followed execution found no longer working when re-read (its final write committed
        but the answer was lost, or another path settled it): tell the executor what the
        ledger says, as `finish`/`give_up` would have, so its RiskBook never keeps a ghost."""
        if execution.state is ExecutionState.UNKNOWN:
            if self._report_lost is not None:
                reason = execution.reason or "status_lost"
                self._report_lost(OrderStatusLost(execution.id, execution.filled_qty, reason))
        elif execution.state.is_final:
            self._report(OrderProgress(execution.id, execution.filled_qty, final=True))

    async def leave(self, execution: Followed) -> None:
        log.warning("poller.timeout", action="leave", **log_context(execution))
        await self._store.add_event(execution.id, EventKind.POLLER_TIMEOUT, {"action": "leave"})

    async def cancel(self, poller: Poller, attempt: int, now: datetime) -> None:
        """One cancel attempt; its outcome goes into the poller's bookkeeping, never raised."""
        execution = poller.execution
        assert execution.order_id is not None
        poller.cancel_attempts = attempt
        if attempt == 1:
            log.warning("poller.timeout", action="cancel", **log_context(execution))
        try:
            result = await self._broker.cancel_order(execution.order_id)
        except EndpointMissing as error:
            # A bridge from before March 2026: no cancel is possible, the order is followed on.
            poller.cannot_cancel = True
            log.error("poller.cancel_impossible", error=str(error), **log_context(execution))
            await self._store.add_event(
                execution.id, EventKind.CANCEL_FAILED, {"error": str(error), "attempt": attempt}
            )
            return
        except BrokerError as error:
            # Refused (say "not cancellable from status Filled": it filled meanwhile) or no
            # answer: the next look reads the status again before anything else is tried.
            poller.cancel_sent_at = None
            poller.last_cancel_error = error.reason
            log_repeated(
                CANCEL_FAILED,
                "poller.cancel_failed",
                error=str(error),
                attempt=attempt,
                **log_context(execution),
            )
            await self._store.add_event(
                execution.id, EventKind.CANCEL_FAILED, {"error": str(error), "attempt": attempt}
            )
            return
        poller.cancel_sent_at = now
        poller.last_cancel_error = None
        await self._store.add_event(
            execution.id,
            EventKind.POLLER_TIMEOUT,
            {
                "action": "cancel",
                "success": result.success,
                "message": result.message,
                "attempt": attempt,
            },
        )
