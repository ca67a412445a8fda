"""Final decisions about an execution, recorded and reflected in the RiskBook.

Guarantees: each outcome is written to the ledger (through the Recorder, which retries while the
database is away) before it is published to waiting API callers; the RiskBook follows the
outcome whether or not the write succeeded, because the risk rule is about the broker: a
rejection or failure never reached it (risk and symbol freed), an `unknown` may have (risk kept,
symbol held until an operator resolves it).
"""

from __future__ import annotations

from typing import Any

from trade_executor.actors.execution.shared import Shared, log, log_context
from trade_executor.domain.execution import Changes, Execution, TradeRecord
from trade_executor.domain.ledger import counts_against_budget
from trade_executor.domain.states import Transition


class Outcomes:
    def __init__(self, shared: Shared) -> None:
        self._s = shared

    async def reject(self, execution: Execution, reason: str) -> None:
        updated = await self._s.recorder.apply(execution, Transition.REJECT, Changes(reason=reason))
        self.forget(execution, release=True)
        log.info("execution.rejected", reason=reason, **log_context(execution))
        self._s.metrics.executions.labels(state="rejected").inc()
        self._publish(updated)

    async def fail(self, execution: Execution, reason: str, *, attempted: bool) -> None:
        updated = await self._s.recorder.apply(execution, Transition.FAIL, Changes(reason=reason))
        self.forget(execution, release=True)
        log.warning(
            "execution.failed", reason=reason, attempted=attempted, **log_context(execution)
        )
        self._s.metrics.executions.labels(state="failed").inc()
        self._publish(updated)

    async def dry_run(
        self,
        execution: Execution,
        plan: Changes,
        detail: dict[str, Any],
        trade: TradeRecord | None = None,
    ) -> None:
        """What live would have done, without the broker: the decision keeps its budget and
        its symbol for the day (CONTRACT section 5). `trade` is kept for callers of the old
        signature and ignored: a dry run writes no `trades` row (the original's UI and its
        daily-risk query read that table)."""
        del trade
        updated = await self._s.recorder.apply(execution, Transition.DRY_RUN, plan, detail)
        self._s.working.remove(execution.id)
        self._s.riskbook.hold_for_day(execution.id)
        log.info("execution.dry_run", **log_context(execution), **detail)
        self._s.metrics.executions.labels(state="dry_run").inc()
        self._publish(updated)

    async def unknown(self, execution: Execution, reason: str) -> None:
        """The broker outcome cannot be established: the order may be working, so its risk
        stays committed and its symbol open until an operator resolves it."""
        updated = await self._s.recorder.apply(
            execution, Transition.LOSE_TRACK, Changes(reason=reason)
        )
        log.error("execution.unknown", reason=reason, **log_context(execution))
        self._s.riskbook.commit(execution.id)
        if updated is not None:
            self._s.metrics.executions.labels(state="unknown").inc()
        self._publish(updated)

    def settled_elsewhere(self, execution: Execution) -> None:
        """An execution changed outside this actor (an operator's `resolve`): make the RiskBook
        and the followers agree with the ledger's row."""
        riskbook = self._s.riskbook
        if execution.state.is_final:
            self._s.working.remove(execution.id)
            if counts_against_budget(execution):
                # Its risk stays on its day (a resolved fill may carry no fill count).
                riskbook.finish(execution.id, filled_qty=max(execution.filled_qty, 1))
            else:
                riskbook.release(execution.id)
        elif execution.state.is_working:
            riskbook.commit(execution.id)
            self._s.follow(execution)
        self._publish(execution)

    def forget(self, execution: Execution, *, release: bool) -> None:
        self._s.working.remove(execution.id)
        if release:
            self._s.riskbook.release(execution.id)
            self._s.instance_tally.remove(str(execution.id))

    def _publish(self, execution: Execution | None) -> None:
        if execution is not None:
            self._s.outcomes.publish(execution)
