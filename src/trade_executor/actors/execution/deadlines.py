"""No execution is stranded (CONTRACT section 5): every non-final state has a bound, and a
periodic scan moves on what passed it.

The bounds (`StateBounds`, measured from the moment the execution entered the state):
- `received`, from `created_at` (the claim): RECEIVED_BOUND (30 s). Past it the execution is
  decided again, as start-up recovery does; it ends `failed: internal: <error>` once the same
  error has repeated SAME_ERROR_LIMIT (3) times in a row, or after MAX_ATTEMPTS (5) attempts that
  each met an error.
- `submitting`, from `attempted_at` (the intent): IB_BRIDGE_TIMEOUT + RECONCILE_WINDOW
  (15 + 300 = 315 s). Past it the execution is reconciled through the bridge
  (`Submitter.settle_submitting`: adopted, `not found` -> `unknown`); it ends
  `unknown: reconcile_failed: <error>` once reconciliation has raised as above.
- `submitted` / `partially_filled`, from `submitted_at`: ORDER_POLL_TIMEOUT + the pollers'
  grace, max(30 s, 3 x ORDER_POLL_INTERVAL) (120 + 30 = 150 s): `actors.following.judge`. The
  pollers end them (final, or `unknown` when the bridge cannot say); here the bound is what
  `resolve` checks.
- `unknown`: no bound; it waits for an operator's `resolve`.

Guarantees:
- The scan runs inside the executor's task group, so every state change it causes goes through
  the executor (its core, its outcomes) like any other; it runs only on the active instance,
  because only the active instance runs an executor.
- An execution a task of this run is working on (`ExecutionCore.in_hand`) is never touched: the scan
  acts only on rows nobody here handles (left by a crash, a deposed leader, a database outage,
  an error). Each task that owns an execution is itself bounded (the POST by IB_BRIDGE_TIMEOUT,
  reconciliation by RECONCILE_WINDOW, a ledger write by the Recorder's deadline).
- The RiskBook is kept equal to the ledger's: an execution in flight in it whose row is final
  (the message that would have said so was lost) is settled as the ledger says.
- Nothing loops without a bound: attempts per execution are counted (in this process; a restart
  counts afresh, but an error that repeats before the POST ends the execution at once, see
  `Submitter.submit`), and the scan's own failures are logged rate-limited.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

import anyio

from trade_executor.actors.execution.outcomes import Outcomes
from trade_executor.actors.execution.recovery import Recovery
from trade_executor.actors.execution.shared import Candidate, Shared, describe_error, log
from trade_executor.actors.execution.shared import log_context as execution_context
from trade_executor.actors.execution.submit import Submitter
from trade_executor.domain.bounds import RECEIVED_BOUND, StateBounds
from trade_executor.domain.execution import Execution
from trade_executor.domain.ledger import holds_symbol
from trade_executor.domain.states import NOT_FINAL_STATES, ExecutionState
from trade_executor.observability.logging import clear_repeated, log_repeated

S = ExecutionState

SCAN_INTERVAL = 5.0  # seconds between two scans
SAME_ERROR_LIMIT = 3  # the same error this many times in a row ends the execution
MAX_ATTEMPTS = 5  # attempts that met an error, whatever the errors, before giving up

SCANNED_STATES = (S.RECEIVED, S.SUBMITTING)

__all__ = ["RECEIVED_BOUND", "SCAN_INTERVAL", "DeadlineScan", "StateBounds", "Strikes"]


class Strikes:
    """Errors met per execution: how often the same one repeated in a row, and how many
    attempts met one at all. Pure bookkeeping; forgotten once an execution leaves the scan."""

    def __init__(self) -> None:
        self._last: dict[UUID, tuple[str, int]] = {}
        self._attempts: dict[UUID, int] = {}

    def note(self, execution_id: UUID, error: str) -> tuple[int, int]:
        """Record an error; returns (times in a row it was this error, attempts with an error)."""
        last, count = self._last.get(execution_id, ("", 0))
        count = count + 1 if last == error else 1
        self._last[execution_id] = (error, count)
        attempts = self._attempts.get(execution_id, 0) + 1
        self._attempts[execution_id] = attempts
        return count, attempts

    def exhausted(self, execution_id: UUID) -> bool:
        _, count = self._last.get(execution_id, ("", 0))
        return count >= SAME_ERROR_LIMIT or self._attempts.get(execution_id, 0) >= MAX_ATTEMPTS

    def keep_only(self, execution_ids: set[UUID]) -> None:
        for table in (self._last, self._attempts):
            for key in [k for k in table if k not in execution_ids]:
                del table[key]


class DeadlineScan:
    """Run by the executor (`run_forever` in its task group) once start-up recovery is done."""

    def __init__(
        self,
        shared: Shared,
        outcomes: Outcomes,
        submitter: Submitter,
        recovery: Recovery,
        decide: Callable[[Candidate], None],
        draining: Callable[[], bool],
        bounds: StateBounds,
        *,
        interval: float = SCAN_INTERVAL,
    ) -> None:
        self._s = shared
        self._outcomes = outcomes
        self._submitter = submitter
        self._recovery = recovery
        self._decide = decide
        self._draining = draining
        self.bounds = bounds
        self.interval = interval
        self.strikes = Strikes()
        self.scans = 0

    async def run_forever(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            try:
                await self.scan_once()
            except Exception as error:  # the database may be away: the next scan tries again
                log_repeated("deadline.scan", "deadline.scan_failed", error=describe_error(error))
            else:
                clear_repeated("deadline.scan", "deadline.scan_recovered")

    async def scan_once(self) -> None:
        """One pass: every `received`/`submitting` execution past its bound and handled by no
        task of this run is moved on."""
        s = self._s
        if self._draining():
            return  # shutting down: what is left stays for the next start
        self.scans += 1
        # Ids of every open execution, rows of the scanned states only: with 10,000 orders
        # working, reading every open row each scan cost a 21 MB peak every 5 s (issue 22).
        not_final = set(await s.store.execution_ids_in(sorted(NOT_FINAL_STATES)))
        stuck = await s.store.executions_in(SCANNED_STATES)
        self.strikes.keep_only({e.id for e in stuck})
        await self._heal_riskbook(not_final | {e.id for e in stuck})
        now = s.clock()
        for execution in stuck:
            deadline = self.bounds.deadline(execution)
            if s.core.in_hand(execution.id) or deadline is None or now < deadline:
                continue
            try:
                if execution.state is S.RECEIVED:
                    await self._received(execution, now - deadline)
                else:
                    await self._submitting(execution, now - deadline)
            except Exception as error:
                # One execution's trouble (it moved meanwhile, the write failed) must not keep
                # the scan from the others; the next scan sees it again.
                log.warning(
                    "deadline.move_failed",
                    error=describe_error(error),
                    **execution_context(execution),
                )

    async def _received(self, execution: Execution, late: timedelta) -> None:
        s = self._s
        error = self._note_trouble(execution)
        if error is not None and self.strikes.exhausted(execution.id):
            await self._outcomes.fail(execution, f"internal: {error}", attempted=False)
            return
        log.warning(
            "deadline.redecide",
            late_seconds=round(late.total_seconds(), 3),
            last_error=error,
            **execution_context(execution),
        )
        # A `received` row holds nothing in the ledger's rule (`domain.ledger.holds_symbol`):
        # whatever an earlier attempt of this run reserved is dropped before deciding again.
        s.core.redeciding(execution.id)
        try:
            await self._recovery.resume_received(execution, self._decide)
        except Exception as failure:
            s.core.troubled(execution.id, failure)
            log.warning("deadline.redecide_failed", error=describe_error(failure))

    async def _submitting(self, execution: Execution, late: timedelta) -> None:
        s = self._s
        error = self._note_trouble(execution)
        if error is not None and self.strikes.exhausted(execution.id):
            await self._outcomes.unknown(execution, f"reconcile_failed: {error}")
            return
        s.core.entered(execution, s.clock())
        log.warning(
            "deadline.reconcile",
            late_seconds=round(late.total_seconds(), 3),
            last_error=error,
            **execution_context(execution),
        )
        s.core.claimed(execution.id)
        s.submissions.begin()
        s.spawn("deadline_reconcile", lambda: self._submitter.settle_submitting(execution))

    async def _heal_riskbook(self, not_final: set[UUID]) -> None:
        """An execution in flight in the RiskBook whose row is final (the message that would
        have said so was lost: a poller whose final write committed but whose answer did not
        arrive stops without reporting) is settled as the ledger says, so the RiskBook stays
        `rebuild_riskbook` of the ledger."""
        s = self._s
        today = s.core.trading_day(s.clock())
        for execution_id in s.core.orphans(not_final):
            execution = await s.store.get_execution(execution_id)
            if execution is None or not execution.state.is_final:
                continue
            if holds_symbol(execution, today):
                continue  # final yet held by the ledger's own rule (today's dry run)
            log.warning(
                "deadline.riskbook_healed",
                state=execution.state.value,
                **execution_context(execution),
            )
            self._outcomes.settled_elsewhere(execution)

    def _note_trouble(self, execution: Execution) -> str | None:
        """The error the last attempt met (counted), or None if it met none."""
        error = self._s.core.take_trouble(execution.id)
        if error is not None:
            self.strikes.note(execution.id, error)
        return error
