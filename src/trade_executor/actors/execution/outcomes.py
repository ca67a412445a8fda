"""Final decisions about an execution, recorded, and reported to the core (which reflects them in
the RiskBook); the circuit breaker's halts carried out.

Guarantees: each outcome is written to the ledger (through the Recorder, which retries while the
database is away) before it is published to waiting API callers; the core follows the outcome
whether or not the write succeeded, because the risk rule is about the broker: a
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
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.store.errors import StoreError, StoreUnavailable


class Outcomes:
    def __init__(self, shared: Shared) -> None:
        self._s = shared

    # -- the circuit breaker ---------------------------------------------------------------------

    @property
    def breaker(self) -> Breaker:
        """The current run's circuit breaker (the core counts; this is for reading)."""
        return self._s.core.breaker

    async def restore_breaker(self) -> None:
        """At the start of a run: the breaker's count from the ledger (today's outcomes and
        every `unknown`, after the kill switch's last change). If the ledger shows the limit was
        reached but the kill switch is not set (a crash between the two), halt now."""
        s = self._s
        control = await s.store.control()
        today = s.core.trading_day(s.clock())
        executions = [
            *await s.store.executions_on(today),
            *await s.store.executions_in([ExecutionState.UNKNOWN]),
        ]
        breaker, trip = restore_breaker(
            s.settings.max_consecutive_failures, executions, since=control.changed_at
        )
        self.carry_out(s.core.breaker_restored(breaker, trip, control.halted))
        log.info(
            "executor.breaker_restored",
            failures=breaker.failures,
            limit=breaker.limit,
            tripped=breaker.tripped,
        )

    @property
    def holds_halt(self) -> bool:
        """True while a breaker halt is being written: the RiskBook stays halted meanwhile."""
        return self._s.core.holds_halt

    def count_failure(self, reason: str) -> None:
        """A `failed`/`unknown` outcome recorded elsewhere (a poller giving up) counts too."""
        self.carry_out(self._s.core.failure(reason))

    def carry_out(self, trip: Trip | None) -> None:
        """Halt as `halt` would, for a trip the core reported (it halted its RiskBook at once, so
        no decision after this one passes): close the wall, then write `executor_control`
        (retried while the database is away), which also tells `status`."""
        if trip is None:
            return
        s = self._s
        s.wall.close()  # entries waiting for the pacer end `rejected: halted` now
        s.metrics.set_halted(True, trip.reason)
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
            self._s.core.halt_written()
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
        self._s.core.released(execution.id)
        log.info("execution.rejected", reason=reason, **(numbers or {}), **log_context(execution))
        self._s.metrics.executions.labels(state="rejected").inc()
        self._publish(updated)

    async def fail(
        self, execution: Execution, reason: str, *, attempted: bool, count: bool = True
    ) -> None:
        """`count` False: an outcome of recovery after our own crash or takeover, which never
        counts toward the breaker (CONTRACT v3). The failure is counted before it is written:
        a trip closes the wall at once, not after a ledger write during which the pacer could
        let more entries out."""
        if count:
            self.count_failure(reason)
        updated = await self._s.recorder.apply(execution, Transition.FAIL, Changes(reason=reason))
        self._s.core.released(execution.id)
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
        self._s.core.held_for_day(execution.id)
        log.info("execution.dry_run", **log_context(execution), **detail)
        self._s.metrics.executions.labels(state="dry_run").inc()
        self._publish(updated)

    async def unknown(self, execution: Execution, reason: str, *, count: bool = True) -> None:
        """The broker outcome cannot be established: the order may be working, so its risk
        stays committed and its symbol open until an operator resolves it. `count`: as for
        `fail` (counted before it is written)."""
        if count:
            self.count_failure(reason)
        updated = await self._s.recorder.apply(
            execution, Transition.LOSE_TRACK, Changes(reason=reason)
        )
        log.error("execution.unknown", reason=reason, **log_context(execution))
        self._s.core.lost_track(execution.id)
        if updated is not None:
            self._s.metrics.executions.labels(state="unknown").inc()
        self._publish(updated)

    def settled_elsewhere(self, execution: Execution) -> None:
        """An execution changed outside this actor (an operator's `resolve`): the core agrees
        with the ledger's row, and a working one is followed again."""
        if self._s.core.settled(execution):
            self._s.follow(execution)
        self._publish(execution)

    def _publish(self, execution: Execution | None) -> None:
        if execution is not None:
            self._s.outcomes.publish(execution)
