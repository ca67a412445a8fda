"""Submitting a decided order: persist the intent, POST exactly once, record the answer.

Guarantees:
- the intent (`submitting`, with its `client_order_id`) is committed before the POST, so a crash
  at any instant leaves a row that recovery settles the same way as a lost answer;
- the POST is attempted once and never re-sent; a definite refusal fails the execution (risk
  released);
- an answer that was lost or unusable (timeout, reset, any 5xx including 503, a 2xx without a
  positive integer order id) is settled through the bridge's order list
  (`locate.locate_submission`): found -> adopted (`ADOPT`, followed like any order); not listed
  while the bridge lists orders -> `failed: not_placed: <detail>` (risk released); several
  matches -> `unknown` (error log, risk kept); the list cannot be read -> the execution stays
  `submitting` (risk held) and the look-up is retried with capped backoff for at most
  `UNREACHABLE_BOUND`, then `unknown`. A bridge that has no order list at all cannot settle
  anything: `unknown` at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from uuid import UUID

import anyio

from trade_executor.actors.backoff import Backoff
from trade_executor.actors.execution.outcomes import Outcomes
from trade_executor.actors.execution.shared import (
    Candidate,
    Shared,
    first_line,
    log,
    log_context,
)
from trade_executor.actors.execution.wall import HELD_BACK, HeldBack
from trade_executor.broker import locate as locate_module
from trade_executor.broker.errors import (
    AmbiguousSubmission,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
)
from trade_executor.broker.locate import (
    Adopted,
    Ambiguous,
    NotPlaced,
    Unreachable,
    locate_submission,
)
from trade_executor.broker.reconcile import SubmissionKey
from trade_executor.crashpoints import fault_point
from trade_executor.domain.bounds import RECONCILE_WINDOW
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import Action, AnyOrderRequest, OrderType, PlacedOrder
from trade_executor.domain.orders import build_order
from trade_executor.domain.riskbook import Decision
from trade_executor.domain.states import NOT_FINAL_STATES, Transition
from trade_executor.observability.logging import bind_context
from trade_executor.store.errors import Fenced, StoreError

# How long a lost answer may wait for the bridge's order list to become readable again before
# the execution is given up as `unknown` (its risk kept; an operator resolves it).
UNREACHABLE_BOUND = timedelta(seconds=RECONCILE_WINDOW)  # the default; see `reconcile_window`
UNREACHABLE_BACKOFF_BASE = 1.0
LIST_UNREAD = "the order list could not be read"
UNREACHABLE_BACKOFF_CAP = 30.0


def submission_key(execution: Execution) -> SubmissionKey:
    """The key of the order `execution`'s intent describes (what `build_order` sent): a bracket
    is found by its entry; LMT by its limit price, STP by its stop price (both the entry), MKT
    by having no price."""
    order_type = OrderType(execution.order_type or OrderType.LMT.value)
    return SubmissionKey(
        order_ref=execution.client_order_id,
        symbol=execution.symbol or "",
        action=Action(execution.action or Action.BUY.value),
        quantity=execution.quantity or 0,
        order_type=order_type,
        price=None if order_type is OrderType.MKT else execution.entry_price,
    )


class Submitter:
    def __init__(
        self, shared: Shared, outcomes: Outcomes, *, reconcile_window: float = RECONCILE_WINDOW
    ) -> None:
        self._s = shared
        self._outcomes = outcomes
        self.reconcile_window = reconcile_window
        # Decides a `received` execution again (the executor wires recovery's in).
        self.redecide: Callable[[Execution], Awaitable[None]] | None = None
        # Executions handed on to be decided again: still in this run's hands afterwards.
        self._handed_on: set[UUID] = set()

    async def submit(self, candidate: Candidate, decision: Decision) -> None:
        """Run by the executor for each decided candidate (`Submissions.begin` already done)."""
        s = self._s
        execution, valid, sizing = candidate.execution, candidate.valid, decision.sizing
        bind_context(**log_context(execution))
        try:
            order_type = OrderType(s.settings.default_order_type)
            order = build_order(
                valid,
                sizing.quantity,
                order_type,
                s.settings.order_protection,
                execution.client_order_id,
            )
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
                attempted_at=s.clock(),
            )
            sizing_detail = {
                "quantity": sizing.quantity,
                "risk_amount": sizing.risk_amount,
                "position_value": sizing.position_value,
                "binding": sizing.binding,
            }
            if not s.settings.execution_enabled:
                # The live decision, recorded; no `trades` row (see Outcomes.dry_run).
                await self._outcomes.dry_run(execution, plan, sizing_detail)
                return
            # From the intent write until the bridge answers the POST, no cancellation (the
            # leadership lost, a shutdown's grace over) may cut in: an intent committed whose
            # POST never left ends `unknown` with nothing at the broker, its risk standing in
            # for an order never placed. Finishing is safe: the intent write is fenced, so one
            # that committed did so before any takeover, and the new leader (which counts the
            # row) adopts the order by its order_ref. Bounded by RECORD_DEADLINE, then by the
            # pacing queue and the bridge's timeout.
            with anyio.CancelScope(shield=True):
                try:
                    intent = await s.recorder.apply(
                        execution, Transition.BEGIN_SUBMIT, plan, sizing_detail
                    )
                except Fenced as error:
                    # Deposed: the intent changed nothing, so nothing is sent or marked; the
                    # row stays `received` for the new leader, whose recovery decides it.
                    log.warning("execution.fenced", error=str(error), **log_context(execution))
                    s.core.released(execution.id)
                    return
                except StoreError as error:
                    # Not `StoreUnavailable` (the Recorder retried that), not `Fenced`: the
                    # database refused the intent itself (a value out of a column's range, say)
                    # and would refuse it again. Nothing was sent: end it now, risk released,
                    # so no restart decides it into the same error.
                    await self._outcomes.fail(
                        execution, f"internal: {first_line(error)}", attempted=False
                    )
                    return
                if intent is not None:
                    fault_point("after_submitting")
                    answer = await self._send(order)
            if intent is None:
                # Nothing was sent: free the risk. The claim stays `received` if the database
                # was away, and the next start decides it again.
                s.core.released(execution.id)
                return
            if answer is HELD_BACK:
                # Halted while it waited for the pacer: never sent (CONTRACT v3, kill switch).
                await self._outcomes.reject(
                    intent, "halted", {"stage": "pacing"}, transition=Transition.HOLD_BACK
                )
                return
            assert not isinstance(answer, HeldBack)
            result = await self._answered(intent, order, answer)
            if result is None:
                return
            placed, transition = result
            fault_point("after_broker_accepted")
            bind_context(order_id=placed.order_id)
            s.core.placed(execution.id)
            s.metrics.orders_submitted.inc()
            s.metrics.approval_to_submit.observe(anyio.current_time() - candidate.seen_at)
            recorded = await s.recorder.accepted(
                intent, placed, valid.strategy_id, s.clock(), transition=transition
            )
            fault_point("after_recorded")
            if recorded is not None:
                s.outcomes.publish(recorded)
                s.follow(recorded)
        except Exception as error:
            log.exception("execution.submit_crashed", **log_context(execution))
            # Whatever was persisted stays; the deadline scan (and start-up recovery) settles a
            # `received` or `submitting` row, counting how often the same error repeats.
            s.core.troubled(execution.id, error)
        finally:
            s.core.put_down(execution.id)
            s.submissions.end()

    async def _send(self, order: AnyOrderRequest) -> PlacedOrder | BrokerError | HeldBack:
        """The one POST through the halt wall: the placed order, the bridge's error (never
        raised), or `HELD_BACK` when the service halted before the POST started."""
        try:
            return await self._s.wall.send(self._s.broker, order)
        except BrokerError as error:
            return error

    async def _answered(
        self, intent: Execution, order: AnyOrderRequest, answer: PlacedOrder | BrokerError
    ) -> tuple[PlacedOrder, Transition] | None:
        """The placed order and how to record it, or None after recording what the bridge's
        error means (a lost answer is located through the order list, never re-sent)."""
        try:
            if isinstance(answer, BrokerError):
                raise answer
            return answer, Transition.ACCEPT
        except BrokerRejected as error:
            await self._outcomes.fail(intent, f"broker_rejected: {error.detail}", attempted=True)
        except BrokerUnavailable as error:
            await self._outcomes.fail(intent, f"bridge_unavailable: {error}", attempted=True)
        except AmbiguousSubmission as error:
            log.warning("order.ambiguous", error=str(error), **log_context(intent))
            key = SubmissionKey.of(order, order_ref=intent.client_order_id)
            placed = await self.locate(
                intent, key, attempted_at=error.attempted_at, detail=error.detail
            )
            return None if placed is None else (placed, Transition.ADOPT)
        except BrokerError as error:  # anything else after sending: the outcome is unknown too
            log.warning("order.ambiguous", error=str(error), **log_context(intent))
            key = SubmissionKey.of(order, order_ref=intent.client_order_id)
            placed = await self.locate(intent, key, detail=str(error))
            return None if placed is None else (placed, Transition.ADOPT)
        return None

    async def locate(
        self,
        execution: Execution,
        key: SubmissionKey | None = None,
        *,
        attempted_at: datetime | None = None,
        detail: str | None = None,
        recovering: bool = False,
    ) -> PlacedOrder | None:
        """Settle a submission whose answer was lost, through the bridge's order list. Returns
        the order to record as adopted, or None once the outcome (`failed: not_placed`,
        `unknown`) is recorded. Never re-sends. While the list cannot be read the execution stays
        `submitting`, its risk held, for at most the reconcile window (RECONCILE_WINDOW).

        `recovering`: an intent our own crash or a takeover left behind (`settle_submitting`).
        Its outcomes never count toward the breaker, and an order the list proves absent is
        decided again (`_absent_after_crash`) rather than failed."""
        s = self._s
        bound = log_context(execution)
        key = key or submission_key(execution)
        # The client's own attempt time is the POST's start; the intent's is a little earlier
        # (both are fine for "placed after", the later one is better for "not placed yet").
        started = attempted_at or execution.attempted_at or s.clock()
        settle: timedelta | None = None
        unproven: str | None = None
        if recovering:
            # Where the bridge's session cannot vouch for absence, no proof is attempted: the
            # usual look-up, and "not listed" ends it for an operator (`_absent_after_crash`).
            unproven = await self._session_unproven(execution)
            if unproven is not None and unproven.startswith(LIST_UNREAD):
                unproven = None  # not known yet: attempt the proof, judged again at its end
        if recovering and unproven is None:
            # The dead instance's POST, if it left at all, left before now (it is gone) and
            # within IB_BRIDGE_TIMEOUT of its intent: "not placed" only from reads spanning
            # both, plus the settle window the bridge may take to list it.
            latest_post = max(started + timedelta(seconds=s.settings.ib_bridge_timeout), s.clock())
            settle = latest_post - started + locate_module.SETTLE
        # Bounded (CONTRACT section 5, "no execution is stranded"): the reconcile window.
        give_up_at = s.clock() + timedelta(seconds=self.reconcile_window)
        backoff = Backoff(base=UNREACHABLE_BACKOFF_BASE, cap=UNREACHABLE_BACKOFF_CAP)
        while True:
            if settle is None:
                located = await locate_submission(
                    s.broker, key, attempted_at=started, detail=detail
                )
            else:
                located = await locate_submission(
                    s.broker, key, attempted_at=started, detail=detail, settle=settle
                )
            match located:
                case Adopted():
                    log.warning(
                        "order.adopted",
                        order_id=located.order.order_id,
                        matched_by=located.matched_by,
                        child_order_ids=list(located.child_order_ids),
                        **bound,
                    )
                    return located.placed
                case NotPlaced():
                    if recovering:
                        await self._absent_after_crash(execution, unproven)
                    else:
                        await self._outcomes.fail(execution, located.failure_reason, attempted=True)
                    return None
                case Ambiguous():
                    await self._outcomes.unknown(
                        execution, located.unknown_reason, count=not recovering
                    )
                    return None
                case Unreachable():
                    if located.permanent or s.clock() >= give_up_at:
                        await self._outcomes.unknown(
                            execution,
                            f"ambiguous_submission: {located.reason}",
                            count=not recovering,
                        )
                        return None
                    log.warning("order.reconcile_retry", error=located.reason, **bound)
                    left = (give_up_at - s.clock()).total_seconds()
                    await anyio.sleep(max(0.0, min(backoff.next(), left)))

    async def _absent_after_crash(self, execution: Execution, unproven: str | None) -> None:
        """(CONTRACT v3) The list shows no order for an intent a crash left behind, over reads
        spanning the POST's deadline and the settle window. If the bridge's session still lists
        our earlier orders under their own ids (not restarted with another client id, which
        would hide a working order), the order was never placed: the execution goes back to
        `received` and is decided again (validation, halt, risk on a fresh account), then sent
        once under its own client_order_id. Otherwise absence is not proven: `failed:
        not_placed: recovery: ...`, logged at error level for an operator, never re-sent.
        Neither outcome counts toward the breaker. `unproven`: why the session could not vouch
        before the reads (then they were the usual ones, not the proof's); checked again here
        otherwise, since the bridge may have restarted meanwhile."""
        s = self._s
        bound = log_context(execution)
        if unproven is None:
            unproven = await self._session_unproven(execution)
        if unproven is not None or self.redecide is None:
            why = unproven or "nothing here can decide it again"
            log.error("recovery.absence_unproven", reason=why, **bound)
            await self._outcomes.fail(
                execution, f"not_placed: recovery: {why}", attempted=True, count=False
            )
            return
        log.warning("recovery.not_sent", **bound)
        again = await s.recorder.apply(
            execution,
            Transition.RETRY_UNSENT,
            Changes(),
            {"proof": "absent from the order list; the bridge session lists our earlier orders"},
        )
        # Its reservation from the ledger is given back: the new decision reserves afresh.
        s.core.retried_unsent(execution.id)
        if again is None:
            return  # the database is away: the row stays `submitting` for the deadline scan
        self._handed_on.add(execution.id)
        await self.redecide(again)

    async def _session_unproven(self, execution: Execution) -> str | None:
        """Why the bridge's session cannot be shown to predate the intent, or None when the
        list shows one of our earlier orders (placed before the intent) under its own id."""
        s = self._s
        try:
            listed = {o.order_id for o in await s.broker.orders() if o.order_id > 0}
        except BrokerError as error:
            return f"{LIST_UNREAD}: {first_line(error)}"
        since = execution.attempted_at or s.clock()
        today = s.core.trading_day(s.clock())
        earlier = [
            *await s.store.executions_on(today),
            *await s.store.executions_in(sorted(NOT_FINAL_STATES)),
        ]
        ours: set[int] = set()
        for other in earlier:
            if other.id == execution.id or other.order_id is None:
                continue
            if other.attempted_at is not None and other.attempted_at >= since:
                continue
            ours.add(other.order_id)
            ours.update(other.child_order_ids or ())
        if not ours:
            return "no earlier order of ours shows the bridge session predates the intent"
        if not ours & listed:
            return (
                "the bridge lists none of our earlier orders under its id "
                "(restarted, perhaps with another client id)"
            )
        return None

    async def reconcile(self, execution: Execution) -> PlacedOrder | None:
        """`locate` with the key the execution's intent describes (the name recovery used)."""
        return await self.locate(execution)

    async def settle_submitting(self, execution: Execution) -> None:
        """Recovery of a `submitting` row a crash left behind (`Submissions.begin` done): the
        same path as a lost answer, so it is adopted, `not_placed` or `unknown`, never re-sent."""
        s = self._s
        bind_context(**log_context(execution))
        s.core.claimed(execution.id)
        try:
            placed = await self.locate(execution, recovering=True)
            if placed is None:
                return
            s.core.placed(execution.id, commit=False)  # entered committed by recovery
            signal = await s.store.get_signal(execution.signal_id)
            recorded = await s.recorder.accepted(
                execution,
                placed,
                signal.strategy_id if signal is not None else None,
                s.clock(),
                transition=Transition.ADOPT,
            )
            if recorded is not None:
                s.outcomes.publish(recorded)
                s.follow(recorded)
        except Exception as error:
            log.exception("recovery.reconcile_crashed", **log_context(execution))
            s.core.troubled(execution.id, error)  # the deadline scan retries, boundedly
        finally:
            if execution.id not in self._handed_on:
                s.core.put_down(execution.id)
            self._handed_on.discard(execution.id)
            s.submissions.end()
