"""A position's protection: placed again after a timeout cancel took the bracket's children,
and reported when it is gone.

Guarantees:
- A protection is sent with `replace_existing`, so a repeat after a lost answer replaces the
  first instead of doubling it; no answer leaves the position for the next rescan.
- A position whose protection is refused or gone is recorded `unprotected` (one `Store.apply`)
  and reported as a reconciliation break; no order is placed for it by itself (CONTRACT:
  reconciliation never places an order on its own). `close` is the operator's remedy.
- Runs under the position's lock: `protect` takes it, `lost` is called with it held.
"""

from __future__ import annotations

from typing import Any

from trade_executor.broker.errors import BrokerError, BrokerRejected
from trade_executor.domain.execution import Changes
from trade_executor.domain.states import Transition
from trade_executor.observability.logging import log_context

from .positions import PositionState, remaining
from .shared import Followed, Shared, log


class Protection:
    def __init__(self, shared: Shared) -> None:
        self._s = shared

    async def protect(self, followed: Followed) -> None:
        """Protect the filled quantity again after a cancel took the bracket's children:
        `/positions/{symbol}/protect` with the signal's stop and take-profit. A refusal leaves
        the position `unprotected` (reported); no answer leaves it for the next rescan."""
        async with followed.lock:
            execution = followed.execution
            quantity = remaining(execution)
            if (
                execution.position_state != PositionState.UNPROTECTED
                or not execution.child_order_ids
                or quantity <= 0
                or execution.symbol is None
            ):
                return
            if execution.stop_loss is None:
                await self._refused(followed, "the execution has no stop-loss price")
                return
            self._s.core.protect_sent()
            try:
                placed = await self._s.broker.protect_position(
                    execution.symbol,
                    stop_loss=execution.stop_loss,
                    take_profit=execution.take_profit,
                    quantity=quantity,
                    replace_existing=True,
                )
            except BrokerRejected as refused:
                await self._refused(followed, f"the bridge refused: {refused.reason}")
                return
            except BrokerError as error:
                # No answer, or a bridge that cannot be reached: retried at the next rescan;
                # `replace_existing` makes a repeat replace what a lost answer placed.
                log.warning("position.protect_failed", error=str(error), **log_context(execution))
                return
            updated = await self._s.store.apply(
                execution.id,
                Transition.POSITION,
                Changes(
                    position_state=PositionState.OPEN.value,
                    child_order_ids=placed.order_ids,
                ),
                {
                    "protection": "placed",
                    "quantity": quantity,
                    "order_ids": list(placed.order_ids),
                    "cancelled_order_ids": list(placed.cancelled_order_ids),
                },
            )
            self._s.core.recorded(followed, updated)
            log.info(
                "position.protected",
                quantity=quantity,
                stop_loss=str(execution.stop_loss),
                take_profit=str(execution.take_profit),
                protect_order_ids=list(placed.order_ids),
                **log_context(execution),
            )

    async def lost(self, followed: Followed) -> None:
        """Every exit order is final and shares are left (DAY children expired at the close):
        `unprotected`, reported."""
        gone = list(followed.execution.child_order_ids)
        await self._unprotected(
            followed,
            {"protection": "gone", "order_ids": gone},
            "every exit order of the position ended",
        )

    async def _refused(self, followed: Followed, why: str) -> None:
        await self._unprotected(followed, {"protection": "refused", "why": why}, why)

    async def _unprotected(self, followed: Followed, detail: dict[str, Any], why: str) -> None:
        """Record the position `unprotected` without its exit orders, and report the break."""
        execution = followed.execution
        gone = list(execution.child_order_ids)
        updated = await self._s.store.apply(
            execution.id,
            Transition.POSITION,
            Changes(position_state=PositionState.UNPROTECTED.value, child_order_ids=()),
            detail,
        )
        self._s.core.recorded(followed, updated)
        self._s.metrics.reconcile_break("unprotected_position")
        log.error(
            "reconcile.break",
            kind="unprotected_position",
            why=why,
            exit_order_ids=gone,
            remaining=remaining(updated),
            **log_context(updated),
        )
