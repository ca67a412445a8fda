"""Recording a placed order: the one database write that must not be lost.

The broker has the order at this point, so a failed write is retried with backoff for a while;
if the database stays away the execution is left `submitting`, which start-up recovery
reconciles through the broker (adopting the order, never re-sending it).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import anyio

from trade_executor.actors.backoff import Backoff
from trade_executor.domain.execution import Changes, Execution, TradeRecord
from trade_executor.domain.models import BrokerStatus, PlacedOrder
from trade_executor.domain.states import IllegalTransition, Transition
from trade_executor.observability.logging import get_logger
from trade_executor.observability.metrics import Metrics
from trade_executor.store.errors import StoreUnavailable
from trade_executor.store.protocol import Transitions

log = get_logger("trade_executor.recording")

RECORD_DEADLINE = 30.0


def trade_from_execution(
    execution: Execution, strategy_id: str | None, order_id: int | None, status: str
) -> TradeRecord:
    """The `trades` row of the original service, from what `submitting` persisted."""
    zero = Decimal(0)
    return TradeRecord(
        trade_id=str(execution.id),
        signal_id=execution.signal_id,
        symbol=execution.symbol or "",
        direction=execution.action or "",
        entry=execution.entry_price or zero,
        stop=execution.stop_loss or zero,
        take_profit=execution.take_profit or zero,
        strategy_id=strategy_id,
        notes=None,
        quantity=execution.quantity or 0,
        risk_amount=execution.risk_amount or zero,
        risk_percent=execution.risk_percent or zero,
        position_value=execution.position_value or zero,
        order_id=order_id,
        order_status=status,
    )


def _text(value: Decimal | None) -> str | None:
    """A Decimal for a log line, exactly as recorded (never through a float)."""
    return None if value is None else format(value, "f")


class Recorder:
    def __init__(self, store: Transitions, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    async def accepted(
        self,
        intent: Execution,
        placed: PlacedOrder,
        strategy_id: str | None,
        now: datetime,
        *,
        transition: Transition = Transition.ACCEPT,
    ) -> Execution | None:
        """Record `submitted` with the broker's order id, the trade row and the approval link."""
        status = BrokerStatus.SUBMITTED.value
        changes = Changes(
            order_id=placed.order_id,
            child_order_ids=placed.child_order_ids,
            submitted_at=now,
            broker_status=status,
        )
        trade = trade_from_execution(intent, strategy_id, placed.order_id, status)
        detail = {"order_id": placed.order_id, "child_order_ids": list(placed.child_order_ids)}
        recorded = await self.apply(intent, transition, changes, detail, trade)
        if recorded is not None:
            log.info(
                transition.event,
                side=recorded.action,
                quantity=recorded.quantity,
                order_type=recorded.order_type,
                price=_text(recorded.entry_price),
                stop_loss=_text(recorded.stop_loss),
                take_profit=_text(recorded.take_profit),
                risk_amount=_text(recorded.risk_amount),
                child_order_ids=list(placed.child_order_ids),
                order_id=placed.order_id,
            )
        return recorded

    async def apply(
        self,
        execution: Execution,
        transition: Transition,
        changes: Changes,
        detail: dict[str, Any] | None = None,
        trade: TradeRecord | None = None,
    ) -> Execution | None:
        """`Store.apply`, retried with backoff for up to RECORD_DEADLINE seconds while the
        database is unavailable. Returns None only if the database stayed away: the execution
        then keeps its state and recovery settles it.

        Raises `IllegalTransition` if the current state does not allow the move, with one
        exception: after a retry, a state already at the transition's target means the earlier
        attempt committed and only its answer was lost, so the row is read back and returned.
        Any other store error (a bug, a value out of range) is raised at once."""
        backoff = Backoff(base=0.2, cap=5.0)
        retried = False
        with anyio.move_on_after(RECORD_DEADLINE):
            while True:
                try:
                    return await self._store.apply(execution.id, transition, changes, detail, trade)
                except StoreUnavailable as error:
                    log.warning(
                        "execution.record_retry", event_kind=transition.event, error=str(error)
                    )
                    retried = True
                    await anyio.sleep(backoff.next())
                except IllegalTransition as conflict:
                    if retried and conflict.current is transition.target:
                        return await self._store.get_execution(execution.id)
                    log.error(
                        "execution.record_conflict",
                        event_kind=transition.event,
                        state=conflict.current.value if conflict.current else None,
                    )
                    raise
        log.error("execution.record_failed", event_kind=transition.event)
        return None
