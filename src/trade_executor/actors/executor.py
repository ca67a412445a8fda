"""The executor actor: owns the RiskBook and turns claimed approvals into orders.

Pipeline, per approval:
1. *prepare* (concurrent, bounded): claim the approval in the database (the unique `signal_id`
   makes a second claim fail in PostgreSQL), then validate the signal;
2. *decide* (serial, one task): check the kill switch, read the account, ask the RiskBook, which
   reserves the risk; every decision sees every earlier reservation, so limits hold under load;
3. *submit* (concurrent): persist the intent (`submitting`, `client_order_id`) before the POST,
   place the order once, record the answer, commit or release the reservation, start the poller.

Only this actor's tasks touch the RiskBook, always through synchronous calls, so no decision can
interleave with another. Pollers report back through the mailbox (`OrderProgress`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from trade_executor.actors.backoff import Backoff
from trade_executor.actors.messages import ApprovalSeen, ControlChanged, Message, OrderProgress
from trade_executor.actors.pollers import PollerPool
from trade_executor.actors.recording import Recorder, trade_from_execution
from trade_executor.actors.snapshots import AccountSnapshots
from trade_executor.actors.working import WorkingOrders
from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import (
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
)
from trade_executor.config import Settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import Action, AnyOrderRequest, OrderType, PlacedOrder
from trade_executor.domain.orders import build_order
from trade_executor.domain.riskbook import Decision, RiskBook
from trade_executor.domain.sizing import RiskLimits, RiskRejection, Sizing
from trade_executor.domain.states import AT_BROKER_STATES, ExecutionState
from trade_executor.domain.validation import Rejection, ValidSignal, validate
from trade_executor.faults import fault_point
from trade_executor.logging import bind_context, get_logger
from trade_executor.metrics import Metrics
from trade_executor.store.protocol import AlreadyClaimed, Claimed, NotClaimable, Store

log = get_logger("trade_executor.executor")

PREPARE_CONCURRENCY = 32
DECISION_BATCH = 256
RECONCILE_ATTEMPTS = 3
RECONCILE_DELAY = 1.0
CLOCK_SKEW = timedelta(seconds=5)  # the bridge's clock against ours, for the fallback match

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_client_order_id(execution_id: UUID) -> str:
    return f"te-{execution_id.hex}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A claimed, valid approval waiting for its risk decision."""

    execution: Execution
    valid: ValidSignal
    seen_at: float


CandidateQueue = MemoryObjectSendStream[Candidate]


class Executor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: BrokerClient,
        pollers: PollerPool,
        metrics: Metrics,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self._settings = settings
        self._store = store
        self._broker = broker
        self._pollers = pollers
        self._metrics = metrics
        self._clock = clock
        self._recorder = Recorder(store, metrics)
        self._snapshots = AccountSnapshots(broker)
        self._send, self._receive = anyio.create_memory_object_stream[Message](math.inf)
        self._riskbook = self._new_riskbook()
        self._working = WorkingOrders()
        self._preparing: set[UUID] = set()
        self._halted = False
        self._draining = False
        self._submissions = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._tg: TaskGroup | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self.outcomes = OutcomeBoard()

    # -- the mailbox ---------------------------------------------------------------------------

    def post(self, message: Message) -> None:
        """Deliver a message; never blocks (the mailbox is unbounded, hints are tiny)."""
        self._send.send_nowait(message)

    @property
    def halted(self) -> bool:
        return self._halted

    @property
    def riskbook(self) -> RiskBook:
        return self._riskbook

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Recover from the ledger, then serve the mailbox until cancelled."""
        self._riskbook = self._new_riskbook()
        self._snapshots = AccountSnapshots(self._broker)  # no read of a cancelled run is reused
        self._working.clear()
        self._preparing.clear()
        self._halted = (await self._store.control()).halted
        self._limiter = anyio.CapacityLimiter(PREPARE_CONCURRENCY)
        candidates_send, candidates = anyio.create_memory_object_stream[Candidate](math.inf)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._decide_forever, candidates)
            await self._recover(candidates_send)
            task_status.started()
            async for message in self._receive:
                self._dispatch(message, candidates_send)

    async def drain(self, grace: float) -> bool:
        """Stop taking approvals and wait (at most `grace` s) for submissions in flight."""
        self._draining = True
        with anyio.move_on_after(grace):
            await self._idle.wait()
            return True
        return False

    def _dispatch(self, message: Message, candidates: CandidateQueue) -> None:
        assert self._tg is not None
        match message:
            case ApprovalSeen():
                if self._draining or message.approval_id in self._preparing:
                    return
                self._preparing.add(message.approval_id)
                self._tg.start_soon(self._prepare, message, candidates)
                self._snapshots.prefetch(self._tg)  # overlaps the claim (see snapshots.py)
            case OrderProgress():
                self._on_progress(message)
            case ControlChanged():
                if message.halted != self._halted:
                    log.warning(
                        "executor.halted" if message.halted else "executor.resumed",
                        reason=message.reason,
                    )
                self._halted = message.halted

    # -- 1. prepare: claim and validate ---------------------------------------------------------

    async def _prepare(self, seen: ApprovalSeen, candidates: CandidateQueue) -> None:
        try:
            assert self._limiter is not None
            async with self._limiter:
                execution_id = uuid4()
                outcome = await self._store.claim(
                    seen.approval_id, execution_id, new_client_order_id(execution_id)
                )
                match outcome:
                    case NotClaimable(reason=reason):
                        log.info(
                            "approval.ignored", approval_id=str(seen.approval_id), reason=reason
                        )
                        return
                    case AlreadyClaimed(execution=existing):
                        log.debug(
                            "approval.duplicate",
                            approval_id=str(seen.approval_id),
                            execution_id=str(existing.id),
                            state=existing.state.value,
                        )
                        return
                    case Claimed(execution=execution, signal=signal, approval=approval):
                        pass
                bind_context(**self._context(execution))  # this task's log lines carry the ids
                fault_point("after_claim")
                self._metrics.approvals_received.inc()
                log.info(
                    "approval.received",
                    source=seen.source,
                    **self._context(execution),
                    approval_id=str(approval.id),
                )
                max_age = timedelta(seconds=self._settings.approval_max_age)
                result = validate(signal, approval, self._clock(), max_age)
                if isinstance(result, Rejection):
                    await self._reject(execution, result.reason)
                    return
                candidates.send_nowait(Candidate(execution, result, seen.seen_at))
        except Exception:
            # The claim is in the database: the periodic sweep or the next start picks it up.
            log.exception("approval.prepare_failed", approval_id=str(seen.approval_id))
        finally:
            self._preparing.discard(seen.approval_id)

    # -- 2. decide: serial, against the RiskBook ------------------------------------------------

    async def _decide_forever(self, candidates: MemoryObjectReceiveStream[Candidate]) -> None:
        async for first in candidates:
            batch = [first]
            while len(batch) < DECISION_BATCH:
                try:
                    batch.append(candidates.receive_nowait())
                except anyio.WouldBlock:
                    break
            await self._decide_batch(batch)

    async def _decide_batch(self, batch: list[Candidate]) -> None:
        assert self._tg is not None
        if self._draining:
            return  # left `received`: the next start decides them again
        if self._halted:
            for candidate in batch:
                self._tg.start_soon(self._reject, candidate.execution, "halted")
            return
        try:
            since = max(candidate.seen_at for candidate in batch)
            account, positions = await self._snapshots.fresh(since, self._tg)
        except BrokerError as error:
            for candidate in batch:
                self._tg.start_soon(
                    self._fail, candidate.execution, f"bridge_unavailable: {error}", False
                )
            return
        held = {p.symbol.upper(): abs(p.quantity) for p in positions if p.quantity != 0}
        self._riskbook.set_broker_positions(held)
        # The broker's buying power does not yet reflect orders that are working but unfilled.
        unfilled = self._working.unfilled_value(held)
        available = replace(account, buying_power=account.buying_power - unfilled)
        now = self._clock()
        for candidate in batch:
            decision = self._riskbook.decide(
                candidate.execution.id, candidate.valid, available, now
            )
            if isinstance(decision, RiskRejection):
                self._metrics.risk_rejections.labels(gate=decision.gate.value).inc()
                self._tg.start_soon(self._reject, candidate.execution, decision.reason)
                continue
            sizing = decision.sizing
            self._working.add(
                candidate.execution.id,
                candidate.valid.symbol,
                sizing.quantity,
                candidate.valid.entry,
            )
            available = replace(
                available, buying_power=available.buying_power - sizing.position_value
            )
            self._begin_submission()
            self._tg.start_soon(self._submit, candidate, decision)
        self._metrics.set_daily_risk(self._riskbook.daily_risk_used(now))

    # -- 3. submit: intent, POST once, record --------------------------------------------------

    async def _submit(self, candidate: Candidate, decision: Decision) -> None:
        execution, valid, sizing = candidate.execution, candidate.valid, decision.sizing
        bind_context(**self._context(execution))
        try:
            order_type = OrderType(self._settings.default_order_type)
            order = build_order(
                valid,
                sizing.quantity,
                order_type,
                self._settings.order_protection,
                execution.client_order_id,
            )
            now = self._clock()
            plan = Changes(
                action=valid.action.value,
                order_type=order_type.value,
                quantity=sizing.quantity,
                entry_price=valid.entry,
                stop_loss=valid.stop,
                take_profit=valid.take_profit,
                risk_amount=sizing.risk_amount,
                risk_percent=sizing.risk_percent,
                position_value=sizing.position_value,
                trading_day=decision.reservation.trading_day,  # the day the RiskBook counts it on
                attempted_at=now,
            )
            sizing_detail = {
                "quantity": sizing.quantity,
                "risk_amount": sizing.risk_amount,
                "position_value": sizing.position_value,
                "binding": sizing.binding,
            }
            if not self._settings.execution_enabled:
                await self._finish_dry_run(execution, valid, sizing, plan, sizing_detail)
                return
            intent = await self._recorder.apply(
                execution, "begin_submit", plan, "submitting", sizing_detail
            )
            if intent is None:
                # Nothing was sent: free the risk. The claim stays `received` if the database
                # was away, and the next start decides it again.
                self._forget(execution.id, release=True)
                return
            fault_point("after_submitting")
            placed = await self._place(intent, order)
            if placed is None:
                return
            fault_point("after_broker_accepted")
            bind_context(order_id=placed.order_id)
            self._riskbook.commit(execution.id)
            self._metrics.orders_submitted.inc()
            self._metrics.approval_to_submit.observe(anyio.current_time() - candidate.seen_at)
            recorded = await self._recorder.accepted(
                intent, placed, valid.strategy_id, self._clock()
            )
            fault_point("after_recorded")
            if recorded is not None:
                self.outcomes.publish(recorded)
                self._pollers.follow(recorded)
        except Exception:
            log.exception("execution.submit_crashed", **self._context(execution))
            # Whatever was persisted stays; start-up recovery settles a `submitting` row.
        finally:
            self._end_submission()

    async def _place(self, intent: Execution, order: AnyOrderRequest) -> PlacedOrder | None:
        """POST exactly once. Returns the placed order, or None after recording the outcome."""
        bound = self._context(intent)
        try:
            return await self._broker.place(order)
        except BrokerRejected as error:
            await self._fail(intent, f"broker_rejected: {error.detail}", True)
        except BrokerUnavailable as error:
            await self._fail(intent, f"bridge_unavailable: {error}", True)
        except BrokerError as error:  # AmbiguousSubmission, or anything else after sending
            log.warning("order.ambiguous", error=str(error), **bound)
            return await self.reconcile(intent)
        return None

    async def reconcile(self, execution: Execution) -> PlacedOrder | None:
        """Find a submission whose answer was lost; adopt it, or mark the execution `unknown`.
        Never re-sends. While the bridge does not answer at all, nothing can be concluded:
        the execution stays `submitting` (its risk held) and the look-up is retried."""
        bound = self._context(execution)
        unreachable = Backoff(base=1.0, cap=30.0)
        misses = 0
        ambiguous = False
        while misses < RECONCILE_ATTEMPTS and not ambiguous:
            try:
                found = await self._broker.find_order(
                    execution.client_order_id,
                    symbol=execution.symbol or "",
                    action=_action(execution),
                    quantity=execution.quantity or 0,
                    price=execution.entry_price
                    if execution.order_type != OrderType.MKT.value
                    else None,
                    placed_after=(execution.attempted_at or self._clock()) - CLOCK_SKEW,
                )
            except BrokerError as error:
                log.warning("order.reconcile_retry", error=str(error), **bound)
                await anyio.sleep(unreachable.next())
                continue
            if found.found is not None:
                children = await self._children_of(found.found.order_id)
                log.warning("order.adopted", order_id=found.found.order_id, **bound)
                return PlacedOrder(found.found.order_id, children, "adopted by reconciliation")
            ambiguous = found.ambiguous
            misses += 1
            if misses < RECONCILE_ATTEMPTS and not ambiguous:
                await anyio.sleep(RECONCILE_DELAY)  # a slow bridge may list the order late
        reason = (
            "ambiguous_submission: several orders at the broker match"
            if ambiguous
            else "ambiguous_submission: the order could not be found at the broker"
        )
        updated = await self._recorder.apply(
            execution, "lose_track", Changes(reason=reason), "order.unknown"
        )
        log.error("execution.unknown", reason=reason, **bound)
        if updated is not None:
            self._metrics.executions.labels(state="unknown").inc()
            self.outcomes.publish(updated)
        # The order may be working: its risk stays committed and its symbol stays open.
        self._riskbook.commit(execution.id)
        return None

    async def _children_of(self, parent_id: int) -> tuple[int, ...]:
        try:
            orders = await self._broker.orders()
        except BrokerError:
            return ()
        return tuple(o.order_id for o in orders if o.parent_id == parent_id)

    # -- outcomes -------------------------------------------------------------------------------

    async def _reject(self, execution: Execution, reason: str) -> None:
        updated = await self._recorder.apply(
            execution, "reject", Changes(reason=reason), "execution.rejected"
        )
        self._forget(execution.id, release=True)
        log.info("execution.rejected", reason=reason, **self._context(execution))
        self._metrics.executions.labels(state="rejected").inc()
        if updated is not None:
            self.outcomes.publish(updated)

    async def _fail(self, execution: Execution, reason: str, attempted: bool) -> None:
        updated = await self._recorder.apply(
            execution, "fail", Changes(reason=reason), "execution.failed"
        )
        self._forget(execution.id, release=True)
        log.warning(
            "execution.failed", reason=reason, attempted=attempted, **self._context(execution)
        )
        self._metrics.executions.labels(state="failed").inc()
        if updated is not None:
            self.outcomes.publish(updated)

    async def _finish_dry_run(
        self,
        execution: Execution,
        valid: ValidSignal,
        sizing: Sizing,
        plan: Changes,
        detail: dict[str, Any],
    ) -> None:
        planned = replace(
            execution,
            action=plan.action,
            quantity=plan.quantity,
            entry_price=plan.entry_price,
            stop_loss=plan.stop_loss,
            take_profit=plan.take_profit,
            risk_amount=plan.risk_amount,
            risk_percent=plan.risk_percent,
            position_value=plan.position_value,
        )
        trade = trade_from_execution(planned, valid.strategy_id, None, "dry_run")
        updated = await self._recorder.apply(
            execution, "dry_run", plan, "execution.dry_run", detail, trade
        )
        self._forget(execution.id, release=True)
        log.info("execution.dry_run", **self._context(execution), **detail)
        self._metrics.executions.labels(state="dry_run").inc()
        if updated is not None:
            self.outcomes.publish(updated)

    def _forget(self, execution_id: UUID, *, release: bool) -> None:
        self._working.remove(execution_id)
        if release:
            self._riskbook.release(execution_id)

    def _on_progress(self, progress: OrderProgress) -> None:
        self._working.filled(progress.execution_id, progress.filled_qty)
        if progress.final:
            self._working.remove(progress.execution_id)
            self._riskbook.finish(progress.execution_id, filled_qty=progress.filled_qty)

    def _begin_submission(self) -> None:
        if self._submissions == 0:
            self._idle = anyio.Event()
        self._submissions += 1

    def _end_submission(self) -> None:
        self._submissions -= 1
        if self._submissions == 0:
            self._idle.set()

    # -- start-up recovery ----------------------------------------------------------------------

    async def _recover(self, candidates: CandidateQueue) -> None:
        """Rebuild the RiskBook from the ledger; settle what a crash left behind."""
        now = self._clock()
        today = self._riskbook.trading_day(now)
        restored: set[UUID] = set()
        for execution in await self._store.executions_on(today):
            if _counts_today(execution):
                self._restore(execution, today)
                restored.add(execution.id)
        open_states = [
            ExecutionState.RECEIVED,
            ExecutionState.SUBMITTING,
            ExecutionState.SUBMITTED,
            ExecutionState.PARTIALLY_FILLED,
            ExecutionState.UNKNOWN,
        ]
        open_executions = await self._store.executions_in(open_states)
        for execution in open_executions:
            if execution.id not in restored and execution.state is not ExecutionState.RECEIVED:
                self._restore(execution, execution.trading_day or today)
        for execution in open_executions:
            match execution.state:
                case ExecutionState.SUBMITTING:
                    log.warning("recovery.reconcile", **self._context(execution))
                    self._begin_submission()
                    assert self._tg is not None
                    self._tg.start_soon(self._settle_submitting, execution)
                case ExecutionState.SUBMITTED | ExecutionState.PARTIALLY_FILLED:
                    self._pollers.follow(execution)
                case ExecutionState.RECEIVED:
                    await self._resume_received(execution, candidates)
                case _:
                    pass
        log.info(
            "recovery.done",
            open_executions=len(open_executions),
            daily_risk_used=str(self._riskbook.daily_risk_used(now)),
            halted=self._halted,
        )

    def _restore(self, execution: Execution, day: date) -> None:
        working = not execution.state.is_final
        self._riskbook.restore(
            execution.id,
            execution.symbol or "",
            execution.risk_amount or Decimal(0),
            day,
            working=working,
        )
        if working and execution.quantity and execution.entry_price is not None:
            self._working.add(
                execution.id,
                execution.symbol or "",
                execution.quantity,
                execution.entry_price,
                execution.filled_qty,
            )

    async def _settle_submitting(self, execution: Execution) -> None:
        bind_context(**self._context(execution))
        try:
            placed = await self.reconcile(execution)
            if placed is None:
                return
            signal = await self._store.get_signal(execution.signal_id)
            recorded = await self._recorder.accepted(
                execution,
                placed,
                signal.strategy_id if signal is not None else None,
                self._clock(),
                event="order.adopted",
            )
            if recorded is not None:
                self._pollers.follow(recorded)
        except Exception:
            log.exception("recovery.reconcile_crashed", **self._context(execution))
        finally:
            self._end_submission()

    async def _resume_received(self, execution: Execution, candidates: CandidateQueue) -> None:
        """A claim that never reached `submitting`: no order was attempted; decide it again.
        Staleness is judged at the time of the claim, expiry now."""
        signal = await self._store.get_signal(execution.signal_id)
        approval = (
            await self._store.get_approval(execution.approval_id)
            if execution.approval_id is not None
            else None
        )
        if signal is None or approval is None:
            await self._reject(execution, "invalid_signal: signal or approval not found")
            return
        now = self._clock()
        waited = now - (execution.created_at or now)
        max_age = timedelta(seconds=self._settings.approval_max_age) + waited
        result = validate(signal, approval, now, max_age)
        if isinstance(result, Rejection):
            await self._reject(execution, result.reason)
        else:
            candidates.send_nowait(Candidate(execution, result, anyio.current_time()))

    # -- helpers --------------------------------------------------------------------------------

    def _new_riskbook(self) -> RiskBook:
        return RiskBook(RiskLimits.from_settings(self._settings), self._settings.timezone)

    @staticmethod
    def _context(execution: Execution) -> dict[str, Any]:
        context: dict[str, Any] = {
            "execution_id": str(execution.id),
            "signal_id": str(execution.signal_id),
            "symbol": execution.symbol,
        }
        if execution.order_id is not None:
            context["order_id"] = execution.order_id
        return context


def _counts_today(execution: Execution) -> bool:
    if execution.state in AT_BROKER_STATES or execution.state is ExecutionState.SUBMITTING:
        return True
    return execution.state is ExecutionState.CANCELLED and execution.filled_qty > 0


def _action(execution: Execution) -> Action:
    return Action(execution.action or "BUY")


@dataclass(slots=True)
class _Slot:
    event: anyio.Event
    result: Execution | None = None


class OutcomeBoard:
    """Lets the HTTP API wait for the outcome of a signal, whichever path claimed it.
    `expect` before triggering the work, so that a fast outcome cannot be missed."""

    def __init__(self) -> None:
        self._slots: dict[UUID, _Slot] = {}

    def expect(self, signal_id: UUID) -> _Slot:
        return self._slots.setdefault(signal_id, _Slot(anyio.Event()))

    def publish(self, execution: Execution) -> None:
        slot = self._slots.pop(execution.signal_id, None)
        if slot is not None:
            slot.result = execution
            slot.event.set()

    async def wait(self, slot: _Slot, timeout: float) -> Execution | None:
        with anyio.move_on_after(timeout):
            await slot.event.wait()
        if not slot.event.is_set():
            for signal_id, held in list(self._slots.items()):
                if held is slot:
                    del self._slots[signal_id]
        return slot.result
