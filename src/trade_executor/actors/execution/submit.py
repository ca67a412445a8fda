"""Submitting a decided order: persist the intent, POST exactly once, record the answer.

Guarantees:
- the intent (`submitting`, with its `client_order_id`) is committed before the POST, so a crash
  at any instant leaves a row that recovery reconciles;
- the POST is attempted once; a definite refusal fails the execution (risk released); an answer
  that was lost is reconciled through the bridge's order list and never re-sent: the order is
  adopted, or the execution ends `unknown` with its risk kept;
- while the bridge cannot be reached at all, reconciliation keeps the execution `submitting`
  (risk held) and retries the look-up with capped backoff.
"""

from __future__ import annotations

from datetime import timedelta

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
from trade_executor.broker.errors import BrokerError, BrokerRejected, BrokerUnavailable
from trade_executor.domain.bounds import RECONCILE_WINDOW
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import Action, AnyOrderRequest, OrderType, PlacedOrder
from trade_executor.domain.orders import build_order
from trade_executor.domain.riskbook import Decision
from trade_executor.domain.states import Transition
from trade_executor.logging import bind_context
from trade_executor.store.errors import Fenced, StoreError
from trade_executor.testing.faults import fault_point

RECONCILE_ATTEMPTS = 3
RECONCILE_DELAY = 1.0
CLOCK_SKEW = timedelta(seconds=5)  # the bridge's clock against ours, for the fallback match


class Submitter:
    def __init__(
        self, shared: Shared, outcomes: Outcomes, *, reconcile_window: float = RECONCILE_WINDOW
    ) -> None:
        self._s = shared
        self._outcomes = outcomes
        self.reconcile_window = reconcile_window

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
                    self._outcomes.forget(execution, release=True)
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
                self._outcomes.forget(execution, release=True)
                return
            placed = await self._answered(intent, answer)
            if placed is None:
                return
            fault_point("after_broker_accepted")
            bind_context(order_id=placed.order_id)
            s.riskbook.commit(execution.id)
            self._outcomes.placed()
            s.metrics.orders_submitted.inc()
            s.metrics.approval_to_submit.observe(anyio.current_time() - candidate.seen_at)
            recorded = await s.recorder.accepted(intent, placed, valid.strategy_id, s.clock())
            fault_point("after_recorded")
            if recorded is not None:
                s.outcomes.publish(recorded)
                s.follow(recorded)
        except Exception as error:
            log.exception("execution.submit_crashed", **log_context(execution))
            # Whatever was persisted stays; the deadline scan (and start-up recovery) settles a
            # `received` or `submitting` row, counting how often the same error repeats.
            s.trouble(execution.id, error)
        finally:
            s.in_hand.discard(execution.id)
            s.submissions.end()

    async def _place(self, intent: Execution, order: AnyOrderRequest) -> PlacedOrder | None:
        """POST exactly once. Returns the placed order, or None after recording the outcome."""
        return await self._answered(intent, await self._send(order))

    async def _send(self, order: AnyOrderRequest) -> PlacedOrder | BrokerError:
        """The one POST: the placed order, or the bridge's error (never raised)."""
        try:
            return await self._s.broker.place(order)
        except BrokerError as error:
            return error

    async def _answered(
        self, intent: Execution, answer: PlacedOrder | BrokerError
    ) -> PlacedOrder | None:
        """The placed order, or None after recording what the bridge's error means."""
        try:
            if isinstance(answer, BrokerError):
                raise answer
            return answer
        except BrokerRejected as error:
            await self._outcomes.fail(intent, f"broker_rejected: {error.detail}", attempted=True)
        except BrokerUnavailable as error:
            await self._outcomes.fail(intent, f"bridge_unavailable: {error}", attempted=True)
        except BrokerError as error:  # AmbiguousSubmission, or anything else after sending
            log.warning("order.ambiguous", error=str(error), **log_context(intent))
            return await self.reconcile(intent)
        return None

    async def reconcile(self, execution: Execution) -> PlacedOrder | None:
        """Find a submission whose answer was lost; adopt it, or mark the execution `unknown`.
        Never re-sends. While the bridge does not answer at all, nothing can be concluded:
        the execution stays `submitting` (its risk held) and the look-up is retried."""
        s = self._s
        bound = log_context(execution)
        unreachable = Backoff(base=1.0, cap=30.0)
        misses = 0
        ambiguous = False
        # Bounded (CONTRACT section 5, "no execution is stranded"): a bridge that stays away for
        # the whole reconcile window leaves the outcome unknown, for an operator to settle.
        give_up_at = anyio.current_time() + self.reconcile_window
        while misses < RECONCILE_ATTEMPTS and not ambiguous:
            if anyio.current_time() >= give_up_at:
                await self._outcomes.unknown(
                    execution,
                    "ambiguous_submission: the bridge could not be reached to look the order up",
                )
                return None
            try:
                found = await s.broker.find_order(
                    execution.client_order_id,
                    symbol=execution.symbol or "",
                    action=Action(execution.action or "BUY"),
                    quantity=execution.quantity or 0,
                    price=execution.entry_price
                    if execution.order_type != OrderType.MKT.value
                    else None,
                    placed_after=(execution.attempted_at or s.clock()) - CLOCK_SKEW,
                )
            except BrokerError as error:
                log.warning("order.reconcile_retry", error=str(error), **bound)
                delay = min(unreachable.next(), give_up_at - anyio.current_time())
                await anyio.sleep(max(0.0, delay))
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
        await self._outcomes.unknown(execution, reason)
        return None

    async def settle_submitting(self, execution: Execution) -> None:
        """Recovery of a `submitting` row a crash left behind (`Submissions.begin` done)."""
        s = self._s
        bind_context(**log_context(execution))
        s.in_hand.add(execution.id)
        try:
            placed = await self.reconcile(execution)
            if placed is None:
                return
            self._outcomes.placed()
            signal = await s.store.get_signal(execution.signal_id)
            recorded = await s.recorder.accepted(
                execution,
                placed,
                signal.strategy_id if signal is not None else None,
                s.clock(),
                transition=Transition.ADOPT,
            )
            if recorded is not None:
                s.follow(recorded)
        except Exception as error:
            log.exception("recovery.reconcile_crashed", **log_context(execution))
            s.trouble(execution.id, error)  # the deadline scan retries, a bounded number of times
        finally:
            s.in_hand.discard(execution.id)
            s.submissions.end()

    async def _children_of(self, parent_id: int) -> tuple[int, ...]:
        try:
            orders = await self._s.broker.orders()
        except BrokerError:
            return ()
        return tuple(o.order_id for o in orders if o.parent_id == parent_id)
