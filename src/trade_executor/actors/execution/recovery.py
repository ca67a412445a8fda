"""Start-up recovery: the ledger read, the core's RiskBook rebuilt from it
(`ExecutionCore.recovered`), and what a crash left behind settled.

Guarantees: the RiskBook after recovery is `domain.ledger.rebuild_riskbook` of the ledger (the
same rule `status` uses); a `submitting` row is reconciled through the broker, never re-sent; a
`submitted`/`partially_filled` row is followed again; a `received` row (no order attempted) is
validated and decided again, its staleness judged at the time of its claim.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import partial

from trade_executor.actors.execution.outcomes import Outcomes
from trade_executor.actors.execution.shared import Candidate, Shared, log, log_context
from trade_executor.actors.execution.submit import Submitter
from trade_executor.actors.execution.vetting import day_start, vet
from trade_executor.domain.execution import Execution
from trade_executor.domain.riskbook import TradingState
from trade_executor.domain.states import NOT_FINAL_STATES, ExecutionState


class Recovery:
    def __init__(self, shared: Shared, outcomes: Outcomes, submitter: Submitter) -> None:
        self._s = shared
        self._outcomes = outcomes
        self._submitter = submitter

    async def recover(self, decide: Callable[[Candidate], None]) -> None:
        s = self._s
        now = s.clock()
        control = await s.store.control()
        today = s.core.trading_day(now)
        open_executions = await s.store.executions_in(sorted(NOT_FINAL_STATES))
        # Exits booked today include positions entered on an earlier day (held overnight):
        # neither today's executions nor unfinished ones, so they are read on their own.
        positions = await s.store.positions_to_follow(day_start(today, s))
        # The original service's trades of today (a switch-over mid-day): their risk counts on
        # today's budget and their working orders' symbols are open.
        originals = await s.store.original_trades_since(day_start(today, s))
        s.core.recovered(
            [*await s.store.executions_on(today), *open_executions, *positions],
            open_executions,
            now,
            TradingState(control.halted, control.reason),
            originals,
        )
        if originals:
            log.info(
                "recovery.original_trades",
                trades=len(originals),
                risk=str(sum((t.risk_amount for t in originals), Decimal(0))),
            )
        for execution in open_executions:
            match execution.state:
                case ExecutionState.SUBMITTING:
                    log.warning("recovery.reconcile", **log_context(execution))
                    s.submissions.begin()
                    s.spawn("reconcile", partial(self._submitter.settle_submitting, execution))
                case ExecutionState.SUBMITTED | ExecutionState.PARTIALLY_FILLED:
                    s.follow(execution)
                case ExecutionState.RECEIVED:
                    await self._resume_received(execution, decide)
                case _:
                    pass
        log.info(
            "recovery.done",
            open_executions=len(open_executions),
            daily_risk_used=str(s.core.daily_risk_used(now)),
            halted=s.core.halted,
        )
        s.metrics.set_daily_risk(s.core.daily_risk_used(now))
        s.metrics.set_realized_pnl_today(s.core.realized_pnl(now))

    async def resume_received(
        self, execution: Execution, decide: Callable[[Candidate], None]
    ) -> None:
        """Decide a `received` row again (the deadline scan calls this for one past its bound)."""
        await self._resume_received(execution, decide)

    async def _resume_received(
        self, execution: Execution, decide: Callable[[Candidate], None]
    ) -> None:
        """A claim that never reached `submitting`: no order was attempted; decide it again.
        Staleness is judged at the time of the claim, expiry now."""
        s = self._s
        signal = await s.store.get_signal(execution.signal_id)
        if execution.approval_id is not None:
            approval = await s.store.get_approval(execution.approval_id)
        else:  # a status approval has no row of its own
            approval = await s.store.status_approval(execution.signal_id)
        if signal is None or approval is None:
            await self._outcomes.reject(execution, "invalid_signal: signal or approval not found")
            return
        now = s.clock()
        waited = now - (execution.created_at or now)
        max_age = timedelta(seconds=s.settings.approval_max_age) + waited
        candidate = await vet(s, self._outcomes, execution, signal, approval, max_age)
        if candidate is not None:
            decide(candidate)
