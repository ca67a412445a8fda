"""The executor actor: owns the core (and so the RiskBook) and turns claimed approvals into orders.

Pipeline, per approval:
1. *prepare* (concurrent, bounded): claim the approval in the database (the unique `signal_id`
   makes a second claim fail in PostgreSQL), then validate the signal;
2. *decide* (serial, one task, `execution.decide`): the trading state and the RiskBook, which
   reserves the risk; every decision sees every earlier reservation, so limits hold under load;
3. *submit* (concurrent, `execution.submit`): persist the intent before the POST, place the
   order once, record the answer, commit or release the reservation, start following it.

The kill switch is also a wall in front of the bridge (`execution.wall`): an entry leaving the
pacing queue after a halt is never sent, and a halt is acknowledged only once no entry that
passed the wall before it is still on the wire.

Every change of state reaches this actor as a message in its mailbox: approvals seen, pollers'
progress, the kill switch, and executions an operator settled (`resolve`). The state (the
RiskBook, the working orders, the tallies) is held by one synchronous core
(`execution.core.ExecutionCore`): this actor's tasks do the I/O and report each fact to it, so
no decision can interleave with another. `run` is cancelled by the supervisor; a cancelled run
leaves nothing that the next run's recovery does not rebuild from the ledger.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from trade_executor.actors.account_snapshot import AccountSnapshot
from trade_executor.actors.execution.core import ExecutionCore
from trade_executor.actors.execution.corrections import Corrections
from trade_executor.actors.execution.deadlines import SCAN_INTERVAL, DeadlineScan, StateBounds
from trade_executor.actors.execution.decide import Decider
from trade_executor.actors.execution.outcomes import Outcomes
from trade_executor.actors.execution.recovery import Recovery
from trade_executor.actors.execution.shared import (
    Candidate,
    Clock,
    OutcomeBoard,
    Shared,
    log,
    log_context,
    new_client_order_id,
    utcnow,
)
from trade_executor.actors.execution.submit import Submitter
from trade_executor.actors.execution.vetting import vet
from trade_executor.actors.messages import (
    ApprovalSeen,
    ControlChanged,
    ExecutionChanged,
    FillsFound,
    Message,
    OrderProgress,
    OrderStatusLost,
    PositionExited,
)
from trade_executor.broker.protocol import Broker
from trade_executor.config.limits import state_bounds
from trade_executor.config.sources import Settings
from trade_executor.crashpoints import fault_point
from trade_executor.domain.execution import Execution
from trade_executor.domain.riskbook import Decision, RiskBook
from trade_executor.observability.logging import bind_context
from trade_executor.observability.metrics import Metrics
from trade_executor.store.errors import Fenced, StoreError
from trade_executor.store.identity import instance_id
from trade_executor.store.protocol import AlreadyClaimed, Claimed, NotClaimable, Store

PREPARE_CONCURRENCY = 32

Mailbox = MemoryObjectSendStream[Message]


def create_mailbox() -> tuple[Mailbox, MemoryObjectReceiveStream[Message]]:
    """The executor's mailbox: created before any actor, so that every sender (pollers,
    listener, API) is handed its send side. Unbounded: hints are tiny and must never block."""
    return anyio.create_memory_object_stream[Message](math.inf)


class Executor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        metrics: Metrics,
        mailbox: MemoryObjectReceiveStream[Message],
        follow: Callable[[Execution], None],
        *,
        clock: Clock = utcnow,
        bounds: StateBounds | None = None,
        scan_interval: float = SCAN_INTERVAL,
        account: AccountSnapshot | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._receive = mailbox
        self._s = Shared(settings, store, broker, metrics, follow, clock, account)
        self._outcomes = Outcomes(self._s)
        self.bounds = bounds or state_bounds(settings)
        self._submitter = Submitter(
            self._s, self._outcomes, reconcile_window=self.bounds.reconcile_window
        )
        self._recovery = Recovery(self._s, self._outcomes, self._submitter)
        # An intent a crash left behind, proven never sent, is decided again as a claim is.
        self._submitter.redecide = lambda e: self._recovery.resume_received(e, self._enqueue)
        self._corrections = Corrections(self._s)
        self._scan_interval = scan_interval
        self.deadlines: DeadlineScan | None = None  # the current run's scan (tests read it)
        self._draining = False
        self._candidates: MemoryObjectSendStream[Candidate] | None = None

    @property
    def outcomes(self) -> OutcomeBoard:
        return self._s.outcomes

    def note_account_mode(self, paper_trading: bool | None) -> None:
        """The bridge watcher's reading of the account's mode (CONTRACT section 5, "Live or
        paper"): the next decision uses it, without waiting for a reconnect. An unsaid mode
        only makes the decision read /health itself again."""
        if paper_trading is None:
            self._s.core.account_mode_unknown()
            return
        self._s.core.account_mode(paper_trading)

    @property
    def halted(self) -> bool:
        return self._s.core.halted

    @property
    def riskbook(self) -> RiskBook:
        """The current run's RiskBook, for reading (status, gauges, tests)."""
        return self._s.core.book

    @property
    def core(self) -> ExecutionCore:
        """The current run's core: the RiskBook, the working orders and the tallies."""
        return self._s.core

    @property
    def breaker_failures(self) -> int:
        """`failed`/`unknown` outcomes in a row, as the circuit breaker counts them."""
        return self._s.core.breaker.failures

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Recover from the ledger, then serve the mailbox until cancelled."""
        self._s.reset()
        limiter = anyio.CapacityLimiter(PREPARE_CONCURRENCY)
        candidates_send, candidates = anyio.create_memory_object_stream[Candidate](math.inf)
        self._candidates = candidates_send
        decider = Decider(self._s, self._outcomes, self._start_submit, lambda: self._draining)
        self.deadlines = DeadlineScan(
            self._s,
            self._outcomes,
            self._submitter,
            self._recovery,
            self._enqueue,
            lambda: self._draining,
            self.bounds,
            interval=self._scan_interval,
        )
        async with anyio.create_task_group() as tg:
            self._s.tg = tg
            tg.start_soon(decider.decide_forever, candidates)
            await self._recovery.recover(self._enqueue)
            await self._outcomes.restore_breaker()
            tg.start_soon(self.deadlines.run_forever)  # re-examines, not only at start-up
            task_status.started()
            async for message in self._receive:
                self._dispatch(message, limiter)

    async def drain(self, grace: float) -> bool:
        """Stop taking approvals and wait (at most `grace` s) for submissions in flight."""
        self._draining = True
        with anyio.move_on_after(grace):
            await self._s.submissions.wait_idle()
            return True
        return False

    def _dispatch(self, message: Message, limiter: anyio.CapacityLimiter) -> None:
        s = self._s
        assert s.tg is not None
        match message:
            case ApprovalSeen():
                if self._draining or not s.core.approval_seen(message.key):
                    return
                s.tg.start_soon(self._prepare, message, limiter)
                s.snapshots.prefetch(s.tg)  # overlaps the claim (see account_snapshot.py)
            case OrderProgress():
                self._on_progress(message)
            case OrderStatusLost():
                # Now `unknown`: its risk stays committed and its symbol held (the RiskBook
                # keeps it live); it counts for the circuit breaker like any `unknown`.
                trip = s.core.status_lost(message.execution_id, message.filled_qty, message.reason)
                self._outcomes.carry_out(trip)
            case ControlChanged():
                self._on_control(message)
            case ExecutionChanged():
                s.spawn("settled", lambda: self._on_changed(message.execution_id))
            case FillsFound():
                s.spawn("fills_found", lambda: self._corrections.fills_found(message))

            case PositionExited():
                self._on_exit(message)

    def _on_control(self, message: ControlChanged) -> None:
        """Apply the kill switch, log a change (a new reason too) with who made it, and
        acknowledge each newly written state once (`halt` waits for it)."""
        s = self._s
        applied = s.core.control(message.halted, message.reason, message.changed_at)
        if applied is None:
            return  # the breaker's halt is not in the table yet: a stale "running"
        if applied.changed:  # a resume also makes the breaker count afresh
            previous = applied.previous
            log.warning(
                "executor.halted" if message.halted else "executor.resumed",
                reason=message.reason,
                by=message.changed_by,
                previous_reason=previous.reason if previous.halted else None,
            )
        if message.halted:
            s.wall.close()  # entries waiting for the pacer end `rejected: halted` now
        s.metrics.set_halted(message.halted, message.reason)
        changed_at = message.changed_at
        if applied.acknowledge and changed_at is not None:
            s.spawn("control_ack", lambda: self._acknowledge(changed_at, message.halted))

    async def _acknowledge(self, changed_at: datetime, halted: bool) -> None:
        """(CONTRACT v3) A halt is acknowledged (`halt --wait` returns) only once nothing
        decided before it can still reach the bridge: the entry POSTs that passed the wall
        before it have been answered (each bounded by IB_BRIDGE_TIMEOUT)."""
        if halted:
            await self._s.wall.wait_clear()
        try:
            await self._store.acknowledge_control(changed_at, halted, instance_id())
        except StoreError as error:
            self._s.core.acknowledge_failed()  # the next sweep's reading acknowledges it again
            log.warning("executor.control_ack_failed", error=str(error))

    # -- prepare: claim and validate -------------------------------------------------------------

    async def _prepare(self, seen: ApprovalSeen, limiter: anyio.CapacityLimiter) -> None:
        claimed: Execution | None = None
        try:
            async with limiter:
                execution_id = uuid4()
                client_order_id = new_client_order_id(execution_id)
                if seen.approval_id is not None:
                    outcome = await self._store.claim(
                        seen.approval_id, execution_id, client_order_id
                    )
                else:  # a status approval (the original's UI): claimed by its signal
                    outcome = await self._store.claim_status(
                        seen.key, execution_id, client_order_id
                    )
                match outcome:
                    case NotClaimable(reason=reason):
                        log.info("approval.ignored", **_hint_ids(seen), reason=reason)
                        return
                    case AlreadyClaimed(execution=existing):
                        log.debug(
                            "approval.duplicate",
                            **_hint_ids(seen),
                            execution_id=str(existing.id),
                            state=existing.state.value,
                        )
                        return
                    case Claimed(execution=execution, signal=signal, approval=approval):
                        self._s.core.claimed(execution.id)
                        claimed = execution
                bind_context(**log_context(execution))  # this task's log lines carry the ids
                fault_point("after_claim")
                self._s.metrics.approvals_received.inc()
                # An approval the HTTP API is waiting for came through the API, whichever hint
                # (its own, or the trigger's NOTIFY of the row it inserted) reached us first.
                api = self._s.outcomes.waiting_for(execution.signal_id)
                log.info(
                    "approval.received",
                    source="api" if api else seen.source,
                    hint=seen.source,
                    approved_by=approval.approved_by,
                    **log_context(execution),
                    approval_id=str(approval.id) if approval.id is not None else None,
                    approval_source=approval.source,
                )
                max_age = timedelta(seconds=self._settings.approval_max_age)
                candidate = await vet(
                    self._s, self._outcomes, execution, signal, approval, max_age, seen.seen_at
                )
                if candidate is None:
                    return
                self._enqueue(candidate)
        except Fenced as error:
            # Another instance leads now: the claim inserted nothing; the approval is its.
            log.warning("approval.fenced", **_hint_ids(seen), error=str(error))
        except Exception as error:
            # The claim is in the database: the deadline scan (or the next start) decides it.
            log.exception("approval.prepare_failed", **_hint_ids(seen))
            if claimed is not None:
                self._s.core.troubled(claimed.id, error)
        finally:
            self._s.core.approval_prepared(seen.key)

    def _enqueue(self, candidate: Candidate) -> None:
        """Hand a valid claim to the decider; it is in this run's hands until its outcome."""
        assert self._candidates is not None
        self._s.core.claimed(candidate.execution.id)
        self._candidates.send_nowait(candidate)

    # -- submit and progress ---------------------------------------------------------------------

    def _start_submit(self, candidate: Candidate, decision: Decision) -> None:
        assert self._s.tg is not None
        self._s.tg.start_soon(self._submitter.submit, candidate, decision)

    def _on_progress(self, progress: OrderProgress) -> None:
        self._s.core.progressed(progress.execution_id, progress.filled_qty, final=progress.final)

    def _on_exit(self, exited: PositionExited) -> None:
        """An exit's realized P&L (its running total): MAX_DAILY_REALIZED_LOSS gates on it."""
        s = self._s
        today = s.core.exited(
            exited.execution_id, exited.realized_pnl, exited.trading_day, s.clock()
        )
        s.metrics.set_realized_pnl_today(today)

    async def _on_changed(self, execution_id: UUID) -> None:
        """An execution changed outside this process (an operator's `resolve`): re-read it."""
        execution = await self._store.get_execution(execution_id)
        if execution is not None:
            log.info(
                "executor.execution_settled",
                state=execution.state.value,
                reason=execution.reason,
                **log_context(execution),
            )
            self._outcomes.settled_elsewhere(execution)
            if execution.realized_pnl is not None:
                # An operator's exit price (`resolve-position`): the real P&L replaces the
                # stop's that the reconciler booked.
                moment = execution.closed_at or self._s.clock()
                day = self._s.core.trading_day(moment)
                self._on_exit(
                    PositionExited(
                        execution.id,
                        execution.realized_pnl,
                        day,
                        execution.position_state == "closed",
                    )
                )


def _hint_ids(seen: ApprovalSeen) -> dict[str, str]:
    """The ids a log line about an approval hint carries."""
    if seen.approval_id is not None:
        return {"approval_id": str(seen.approval_id)}
    return {"signal_id": str(seen.key), "approval_source": "signal_status"}
