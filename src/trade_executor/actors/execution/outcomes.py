"""Final decisions about an execution, recorded and reflected in the RiskBook.

Guarantees: each outcome is written to the ledger (through the Recorder, which retries while the
database is away) before it is published to waiting API callers; the RiskBook follows the
outcome whether or not the write succeeded, because the risk rule is about the broker: a
rejection or failure never reached it (risk and symbol freed), an `unknown` may have (risk kept,
symbol held until an operator resolves it).
"""

from __future__ import annotations

from typing import Any

import anyio

from trade_executor.actors.backoff import Backoff
from trade_executor.actors.execution.shared import Shared, log, log_context
from trade_executor.domain.breaker import BREAKER_ACTOR, Breaker, Trip, restore_breaker
from trade_executor.domain.execution import Changes, Execution, TradeRecord
from trade_executor.domain.ledger import counts_against_budget
from trade_executor.domain.riskbook import TradingState
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.store.errors import StoreError, StoreUnavailable


class Outcomes:
    def __init__(self, shared: Shared) -> None:
        self._s = shared
        self.breaker = Breaker(shared.settings.max_consecutive_failures)
        # A trip whose kill switch is not yet in `executor_control`: until it is, a sweep's
        # "not halted" read of the table must not undo the halt (see `holds_halt`).
        self._trip_pending = False

    # -- the circuit breaker ---------------------------------------------------------------------

    async def restore_breaker(self) -> None:
        """At the start of a run: the breaker's count from the ledger (today's outcomes and
        every `unknown`, after the kill switch's last change). If the ledger shows the limit was
        reached but the kill switch is not set (a crash between the two), halt now."""
        s = self._s
        control = await s.store.control()
        today = s.riskbook.trading_day(s.clock())
        executions = [
            *await s.store.executions_on(today),
            *await s.store.executions_in([ExecutionState.UNKNOWN]),
        ]
        self.breaker, trip = restore_breaker(
            s.settings.max_consecutive_failures, executions, since=control.changed_at
        )
        self._trip_pending = False
        if trip is not None and not control.halted:
            self._trip(trip)
        log.info(
            "executor.breaker_restored",
            failures=self.breaker.failures,
            limit=self.breaker.limit,
            tripped=self.breaker.tripped,
        )

    @property
    def holds_halt(self) -> bool:
        """True while a breaker halt is being written: the RiskBook stays halted meanwhile."""
        return self._trip_pending

    def placed(self) -> None:
        """The broker took an order: the breaker's run of failures is broken."""
        self.breaker.placed()

    def resumed(self) -> None:
        """The kill switch was cleared: the breaker counts afresh."""
        self.breaker.reset()

    def count_failure(self, reason: str) -> None:
        """A `failed`/`unknown` outcome recorded elsewhere (a poller giving up) counts too."""
        self._count_failure(reason)

    def _count_failure(self, reason: str) -> None:
        trip = self.breaker.failure(reason)
        if trip is not None:
            self._trip(trip)

    def _trip(self, trip: Trip) -> None:
        """Halt as `halt` would: the RiskBook at once (no decision after this one passes), then
        `executor_control` (retried while the database is away), which also tells `status`."""
        s = self._s
        if s.riskbook.halted:
            return  # already halted (an operator, or an earlier trip): nothing to add
        s.riskbook.set_trading_state(TradingState(True, trip.reason))
        s.wall.close()  # entries waiting for the pacer end `rejected: halted` now
        s.metrics.set_halted(True, trip.reason)
        self._trip_pending = True
        log.error("executor.breaker_tripped", failures=trip.failures, reason=trip.reason)
        s.spawn("breaker", lambda: self._write_halt(trip.reason))

    async def _write_halt(self, reason: str) -> None:
        backoff = Backoff(base=0.2, cap=10.0)
        while True:
            try:
                await self._s.store.set_control(True, reason, BREAKER_ACTOR)
            except StoreUnavailable as error:
                log.warning("executor.breaker_write_retry", error=str(error))
                await anyio.sleep(backoff.next())
                continue
            except StoreError as error:
                # It would only repeat: the halt stays in this process (fail safe) and is said.
                log.error("executor.breaker_write_failed", error=str(error))
                return
            self._trip_pending = False
            return

    # -- outcomes --------------------------------------------------------------------------------

    async def reject(
        self,
        execution: Execution,
        reason: str,
        numbers: dict[str, Any] | None = None,
        *,
        transition: Transition = Transition.REJECT,
    ) -> None:
        """`numbers`: what the decision was made on (budget used and left, the gate's detail),
        written to the audit trail and the log line. `transition` HOLD_BACK: an entry whose
        intent was written, held back by the halt wall before its POST."""
        updated = await self._s.recorder.apply(
            execution, transition, Changes(reason=reason), numbers
        )
        self.forget(execution, release=True)
        log.info("execution.rejected", reason=reason, **(numbers or {}), **log_context(execution))
        self._s.metrics.executions.labels(state="rejected").inc()
        self._publish(updated)

    async def fail(
        self, execution: Execution, reason: str, *, attempted: bool, count: bool = True
    ) -> None:
        """`count` False: an outcome of recovery after our own crash or takeover, which never
        counts toward the breaker (CONTRACT v3)."""
        updated = await self._s.recorder.apply(execution, Transition.FAIL, Changes(reason=reason))
        self.forget(execution, release=True)
        log.warning(
            "execution.failed", reason=reason, attempted=attempted, **log_context(execution)
        )
        self._s.metrics.executions.labels(state="failed").inc()
        self._publish(updated)
        if count:
            self._count_failure(reason)

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

    async def unknown(self, execution: Execution, reason: str, *, count: bool = True) -> None:
        """The broker outcome cannot be established: the order may be working, so its risk
        stays committed and its symbol open until an operator resolves it. `count`: as for
        `fail`."""
        updated = await self._s.recorder.apply(
            execution, Transition.LOSE_TRACK, Changes(reason=reason)
        )
        log.error("execution.unknown", reason=reason, **log_context(execution))
        self._s.riskbook.commit(execution.id)
        self.let_go(execution)
        if updated is not None:
            self._s.metrics.executions.labels(state="unknown").inc()
        self._publish(updated)
        if count:
            self._count_failure(reason)

    def settled_elsewhere(self, execution: Execution) -> None:
        """An execution changed outside this actor (an operator's `resolve`): make the RiskBook
        and the followers agree with the ledger's row."""
        riskbook = self._s.riskbook
        if execution.state.is_final:
            self._s.working.remove(execution.id)
            self.let_go(execution)
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
        self.let_go(execution)
        if release:
            self._s.riskbook.release(execution.id)
            self._s.instance_tally.remove(str(execution.id))

    def let_go(self, execution: Execution) -> None:
        """No task of this run works on `execution` any more (see `Shared.in_hand`)."""
        self._s.in_hand.discard(execution.id)
        self._s.troubles.pop(execution.id, None)

    def _publish(self, execution: Execution | None) -> None:
        if execution is not None:
            self._s.outcomes.publish(execution)
