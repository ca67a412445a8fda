"""One look at every followed position: judged against one order list, exits recorded,
siblings cancelled, lost protection reported, an ended close order noticed.

Guarantees:
- A look reads at most one order list: the pollers' own read when one arrived since the last
  look, else one `GET /orders`. Nothing is read per position.
- A position is judged under its lock; a look skips a busy position (a close or a protection
  is changing it) and takes it up at the next look.
- An exit is written by one `Store.apply` (POSITION) together with the `trades` row's notes,
  and only then reported to the executor (`PositionExited`); what the ledger holds never
  shrinks (`positions.assess`).
- A sibling still working after its position closed is cancelled a few times at most
  (MAX_SIBLING_CANCELS), then reported once.
"""

from __future__ import annotations

from trade_executor.actors.messages import PositionExited
from trade_executor.broker.errors import BrokerError
from trade_executor.broker.orderbook import OrderIndex
from trade_executor.crashpoints import fault_point
from trade_executor.domain.states import IllegalTransition, Transition
from trade_executor.observability.logging import log_context

from .core import MAX_SIBLING_CANCELS, SiblingCancel
from .positions import Assessment, assess, exit_orders, over_exit, remaining, trade_notes
from .protection import Protection
from .shared import Followed, Shared, log, projected

__all__ = ["MAX_SIBLING_CANCELS", "Looks"]


class Looks:
    def __init__(self, shared: Shared, protection: Protection) -> None:
        self._s = shared
        self._protection = protection

    async def look(self) -> None:
        """Judge every followed position against one order list."""
        core = self._s.core
        if not len(core):
            core.take_index()  # nothing to look at: a later look reads afresh
            return
        index = await self._order_list()
        if index is None:
            return
        core.looked()
        for followed in core.positions():
            if followed.lock.locked():
                continue  # a close or a protection is changing it: the next look
            async with followed.lock:
                await self.review(followed, index)

    async def _order_list(self) -> OrderIndex | None:
        """The pollers' latest list read if one arrived since the last look, else our own."""
        index = self._s.core.take_index()
        if index is not None:
            return index
        return await self._s.fresh_list()

    async def review(self, followed: Followed, index: OrderIndex) -> Assessment | None:
        """Judge one position against one list read and carry out what that calls for. Runs
        under the position's lock. None: the execution left the states a position has."""
        execution = followed.execution
        orders = exit_orders(execution, index.by_id)
        now = self._s.clock()
        verdict = assess(execution, orders, now, closing=followed.closing is not None)
        excess = over_exit(execution, orders)
        if excess and verdict.record is not None:
            # Both children filled (no OCA at the bridge): the exit is capped at the position;
            # the rest is a new position at the broker that the reconciler reports.
            log.error(
                "position.over_exit",
                excess_qty=excess,
                position_qty=execution.filled_qty,
                **log_context(execution),
            )
        try:
            if verdict.record is not None:
                await self._record_exit(followed, verdict)
            for order_id in verdict.cancel:
                await self._cancel_sibling(followed, order_id)
            if verdict.lost_protection:
                await self._protection.lost(followed)
        except IllegalTransition as settled:
            log.info("exits.stopped", state=str(settled.current), **log_context(execution))
            self._s.core.forget(execution.id)
            return None
        self._close_order_ended(followed, index, verdict)
        if verdict.settled:
            self._s.core.forget(execution.id)
        return verdict

    def _close_order_ended(
        self, followed: Followed, index: OrderIndex, verdict: Assessment
    ) -> None:
        """A close order that ended (cancelled, refused by IB) before the position was out:
        the close is over; the position stays open for another `close`."""
        execution = followed.execution
        if followed.closing is None or verdict.closed or not (execution.exit_order_id or 0) > 0:
            return
        order = index.by_id.get(execution.exit_order_id or 0)
        if order is not None and order.status.is_final:
            self._s.core.close_over(followed)
            log.error(
                "position.close_failed",
                error=f"the close order ended {order.status.value} with {order.filled_qty} filled",
                **log_context(execution),
            )

    async def _record_exit(self, followed: Followed, verdict: Assessment) -> None:
        s = self._s
        execution, changes, exit = followed.execution, verdict.record, verdict.exit
        assert changes is not None and exit is not None
        fault_point("exit_after_fill_read")
        updated = await s.store.apply(
            execution.id,
            Transition.POSITION,
            changes,
            {"exit_reason": changes.exit_reason, "exit_qty": exit.quantity},
            trade_notes=trade_notes(projected(execution, changes)),
        )
        s.core.recorded(followed, updated)
        fault_point("exit_after_recorded")
        moment = updated.closed_at or s.clock()
        pnl = updated.realized_pnl if updated.realized_pnl is not None else exit.realized_pnl
        s.report(PositionExited(updated.id, pnl, s.day(moment), verdict.closed))
        numbers = {
            "exit_reason": updated.exit_reason,
            "exit_qty": updated.exit_qty,
            "exit_avg_price": str(updated.exit_avg_price),
            "entry_price": str(updated.avg_fill_price),
            "realized_pnl": str(updated.realized_pnl),
            "r_multiple": str(updated.r_multiple),
            "risk_amount": str(updated.risk_amount),
        }
        if verdict.closed:
            s.core.position_closed(followed)
            log.info("position.closed", **numbers, **log_context(updated))
        else:
            log.info(
                "position.reduced", remaining=remaining(updated), **numbers, **log_context(updated)
            )

    async def _cancel_sibling(self, followed: Followed, order_id: int) -> None:
        """An exit order still working after its position closed: cancel it (IB's
        one-cancels-other normally did already), a few times at most."""
        execution = followed.execution
        match self._s.core.sibling_cancel(followed, order_id):
            case SiblingCancel.REPORT:
                log.error(
                    "position.sibling_not_cancelled",
                    sibling_order_id=order_id,
                    **log_context(execution),
                )
                return
            case SiblingCancel.NOTHING:
                return
            case SiblingCancel.SEND:
                pass
        try:
            await self._s.broker.cancel_order(order_id)
        except BrokerError as error:  # filled or cancelled meanwhile: the next look tells
            log.warning(
                "position.sibling_cancel_failed",
                sibling_order_id=order_id,
                error=str(error),
                **log_context(execution),
            )
            return
        log.info("position.sibling_cancelled", sibling_order_id=order_id, **log_context(execution))
        await self._s.store.add_event(
            execution.id, "position.sibling_cancelled", {"order_id": order_id}
        )
