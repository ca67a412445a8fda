"""Corrections that reconciliation with the broker asks the executor to make (CONTRACT section 5:
"it corrects the ledger where the broker is authoritative").

The reconciler never writes the ledger: it posts `FillsFound` to the executor's mailbox, and the
executor records the fills here and reports them to its core, so the ledger and the RiskBook
change together, in the one actor that owns the RiskBook.

Guarantees: only more fills are ever recorded (a correction that is not news is ignored); a
`cancelled` entry that had no fill counts its risk again on its own trading day.
"""

from __future__ import annotations

from trade_executor.actors.execution.shared import Shared, log, log_context
from trade_executor.actors.messages import FillsFound
from trade_executor.domain.execution import Changes
from trade_executor.domain.states import ExecutionState, Transition


class Corrections:
    def __init__(self, shared: Shared) -> None:
        self._s = shared

    async def fills_found(self, found: FillsFound) -> None:
        s = self._s
        execution = await s.store.get_execution(found.execution_id)
        if execution is None or execution.state is not ExecutionState.CANCELLED:
            return
        if found.filled_qty <= execution.filled_qty:
            return  # already recorded (a second pass, or the poller caught up)
        updated = await s.recorder.apply(
            execution,
            Transition.CORRECT_FILL,
            Changes(
                filled_qty=found.filled_qty,
                avg_fill_price=found.avg_fill_price,
                broker_status=found.broker_status,
            ),
            {"previous_filled_qty": execution.filled_qty, "source": "reconcile"},
        )
        if updated is None:
            return  # the database stayed away: the next pass finds the fills again
        log.warning(
            "reconcile.fill_corrected",
            previous_filled_qty=execution.filled_qty,
            filled_qty=found.filled_qty,
            avg_fill_price=str(found.avg_fill_price),
            **log_context(updated),
        )
        if s.core.fill_corrected(updated, execution.filled_qty):
            # Its risk was returned when it was recorded cancelled without a fill: it reached
            # the broker after all, so it counts on its day's budget again.
            s.metrics.set_daily_risk(s.core.daily_risk_used(s.clock()))
