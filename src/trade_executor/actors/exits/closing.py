"""Closing positions: `close` (from the API or another shell), FLATTEN_AT and the strategy
instances' `flatten_by_close_time`, and a close an interrupted run left unanswered.

Guarantees:
- Nothing here consults the kill switch: a halt stops entries, never a close or a flatten.
- A close's intent (`exit_attempted_at`, `exit_order_id` 0) is in the ledger before its POST;
  a close whose answer was lost is located in the order list (`locate_submission`), never sent
  twice. Only a bridge that lists its orders and shows none gets it sent (again).
- The position's working exit orders are cancelled and confirmed final (bounded reads) before
  the close is placed, and fills they made meanwhile are recorded: the close is for what is
  left.
- One close per position at a time; a crashed close leaves its intent for the next rescan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import time
from uuid import UUID

import anyio

from trade_executor.broker.errors import AmbiguousSubmission, BrokerError
from trade_executor.broker.locate import Adopted, Ambiguous, NotPlaced
from trade_executor.broker.reconcile import SubmissionKey
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import OrderType
from trade_executor.domain.states import Transition
from trade_executor.domain.truth import broker_quantity, working_orders_of
from trade_executor.store.errors import StoreError
from trade_executor.testing.faults import fault_point

from .flatten import GLOBAL_KEY, FlattenRule
from .looks import Looks
from .positions import ExitReason, close_kind, exit_orders, is_open, remaining, side_of
from .shared import Followed, Shared, context, log

# The event recording the quantity a close is sent with when it is not the ledger's.
CLOSE_QUANTITY = "position.close_quantity"
REFUSED = -1  # exit_order_id of a close the bridge refused: nothing placed, nothing to locate
CANCEL_CONFIRM_READS = 5


class Closes:
    def __init__(self, shared: Shared, looks: Looks) -> None:
        self._s = shared
        self._looks = looks

    async def close(
        self, followed: Followed, kind: ExitReason, reason: str, requested_by: str
    ) -> None:
        """Close one position (a task of its own; a second close of it meanwhile is a no-op)."""
        key = ("close", followed.execution.id)
        if key in self._s.busy:
            return
        self._s.busy.add(key)
        try:
            await self._close_steps(followed, kind, reason, requested_by)
        except Exception:
            followed.closing = None  # the intent is in the ledger: the next rescan settles it
            log.exception("exits.task_crashed", task="close", **context(followed.execution))
        finally:
            self._s.busy.discard(key)

    async def _close_steps(
        self, followed: Followed, kind: ExitReason, reason: str, requested_by: str
    ) -> None:
        async with followed.lock:
            execution = followed.execution
            if not is_open(execution) or followed.closing is not None:
                return
            if execution.exit_order_id is not None and execution.exit_order_id > 0:
                return  # a close order is already working for it
            followed.closing = kind
            intent = Changes(
                exit_reason=kind.value, exit_attempted_at=self._s.clock(), exit_order_id=0
            )
            detail = {
                "close": kind.value,
                "reason": reason,
                "requested_by": requested_by,
                "quantity": remaining(execution),
            }
            followed.execution = await self._s.store.apply(
                execution.id, Transition.POSITION, intent, detail
            )
            log.info(
                "position.closing",
                kind=kind.value,
                reason=reason,
                requested_by=requested_by,
                quantity=remaining(execution),
                **context(execution),
            )
        await self._cancel_then_place(followed)

    async def _cancel_then_place(self, followed: Followed) -> None:
        await self._cancel_exit_orders(followed)
        async with followed.lock:
            await self._place_close(followed)

    async def _cancel_exit_orders(self, followed: Followed) -> None:
        """Cancel the position's working exit orders, then read the list until they are final
        (bounded), recording any fill they made meanwhile: the close is for what is left."""
        for attempt in range(CANCEL_CONFIRM_READS):
            index = await self._s.fresh_list()
            if index is None:
                await anyio.sleep(self._s.settings.order_poll_interval)
                continue
            async with followed.lock:
                verdict = await self._looks.review(followed, index)
            if verdict is None or verdict.closed:
                return
            execution = followed.execution
            working = [
                o.order_id
                for o in exit_orders(execution, index.by_id)
                if o.working and o.order_id != execution.exit_order_id
            ]
            # (v3) Every other working order of ours for the symbol goes too (children by
            # parent_id, a protection placed by hand): after a close nothing of ours works.
            working += [
                o.order_id
                for o in working_orders_of(execution.symbol or "", index.by_id.values())
                if o.order_id not in working and o.order_id != execution.exit_order_id
            ]
            if not working:
                return
            if attempt == 0 or attempt == CANCEL_CONFIRM_READS // 2:
                for order_id in working:
                    self._s.stats.cancels += 1
                    try:
                        await self._s.broker.cancel_order(order_id)
                    except BrokerError as error:
                        log.warning(
                            "position.exit_cancel_failed",
                            exit_order_id=order_id,
                            error=str(error),
                            **context(followed.execution),
                        )
            await anyio.sleep(self._s.settings.cancelled_recheck_delay)
        log.warning("position.exit_orders_still_working", **context(followed.execution))

    async def _place_close(self, followed: Followed) -> None:
        """The close order for what is left. Runs under the position's lock; its intent is
        in the ledger already."""
        execution = followed.execution
        quantity = remaining(execution)
        if not is_open(execution) or quantity <= 0 or execution.symbol is None:
            followed.closing = None
            return
        quantity = await self._broker_quantity(execution.symbol, quantity)
        if quantity <= 0:
            # The broker holds none: nothing to sell; the reconciler settles the ledger.
            followed.closing = None
            log.warning("position.close_nothing_held", **context(execution))
            return
        # What is sent is the broker's quantity: kept, so that a restart that finds this close
        # unanswered looks it up by what was sent (`settle_close`).
        await self._s.store.add_event(
            execution.id, CLOSE_QUANTITY, {"quantity": quantity, "ledger": remaining(execution)}
        )
        self._s.stats.closes += 1
        try:
            placed = await self._s.broker.close_position(execution.symbol, quantity=quantity)
        except AmbiguousSubmission as lost:
            log.warning("position.close_answer_lost", error=str(lost), **context(execution))
            # Looked up by what was sent: the broker's quantity, not the ledger's.
            await self._locate_close(followed, lost.detail, quantity)
            return
        except BrokerError as refused:
            await self._close_refused(followed, str(refused))
            return
        fault_point("exit_after_close_post")
        await self._close_placed(followed, placed.order_id, quantity, "placed")

    async def _broker_quantity(self, symbol: str, ledger: int) -> int:
        """(v3) The quantity to close is the broker's (unsigned): the ledger's only when the
        bridge cannot be read now (the close is needed more than the read)."""
        try:
            positions = await self._s.broker.positions()
        except BrokerError as error:
            log.warning("position.close_quantity_unread", symbol=symbol, error=str(error))
            return ledger
        held = abs(broker_quantity(symbol, positions))
        if held != ledger:
            log.warning("position.close_broker_quantity", symbol=symbol, ledger=ledger, broker=held)
        return held

    async def _close_placed(
        self, followed: Followed, order_id: int, quantity: int, how: str
    ) -> None:
        execution = followed.execution
        followed.execution = await self._s.store.apply(
            execution.id,
            Transition.POSITION,
            Changes(exit_order_id=order_id),
            {"close_order_id": order_id, "quantity": quantity, "how": how},
        )
        log.info(
            "position.close_placed",
            close_order_id=order_id,
            quantity=quantity,
            how=how,
            kind=close_kind(execution).value,
            **context(execution),
        )

    async def _close_refused(self, followed: Followed, why: str) -> None:
        """The bridge placed nothing: the intent is marked so that no restart looks for it;
        the position stays open (an operator may `close` again)."""
        execution = followed.execution
        followed.closing = None
        followed.execution = await self._s.store.apply(
            execution.id,
            Transition.POSITION,
            Changes(exit_order_id=REFUSED),
            {"close": "refused", "error": why},
        )
        log.error("position.close_failed", error=why, **context(execution))

    async def settle_close(self, followed: Followed) -> None:
        """After a restart: a close whose answer was never recorded is looked up, not re-sent;
        only a bridge that lists its orders and shows none sends it (again, or for the first
        time)."""
        async with followed.lock:
            execution = followed.execution
            if not is_open(execution) or execution.exit_order_id != 0 or followed.closing:
                return
            followed.closing = close_kind(execution)
            found = await self._locate_close(followed, None, await self._sent(execution))
        if found is NotPlaced:
            await self._cancel_then_place(followed)

    async def _sent(self, execution: Execution) -> int | None:
        """The quantity the unanswered close was sent with: the latest `position.close_quantity`
        (written before every close POST; one from an earlier attempt only when this one never
        reached its POST, whose lookup then finds nothing placed); None: the ledger's."""
        try:
            events = await self._s.store.execution_events(execution.id)
        except StoreError as error:
            log.warning("position.close_unresolved", why=str(error), **context(execution))
            return None
        sent = [e.detail.get("quantity") for e in events if e.kind == CLOSE_QUANTITY]
        return sent[-1] if sent and isinstance(sent[-1], int) else None

    async def _locate_close(
        self, followed: Followed, detail: str | None, sent: int | None = None
    ) -> object:
        """Settle a close whose answer is unknown: looked up by the quantity `sent` (the
        broker's, as the POST carried it; None after a restart: the ledger's). Returns
        `NotPlaced` (the class) when it is proven not placed, for the caller to send it;
        otherwise handles the outcome."""
        execution = followed.execution
        assert execution.symbol is not None
        key = SubmissionKey(
            order_ref="",
            symbol=execution.symbol,
            action=side_of(execution).opposite,
            quantity=remaining(execution) if sent is None else sent,
            order_type=OrderType.MKT,
            price=None,
        )
        attempted_at = execution.exit_attempted_at or self._s.clock()
        located = await self._s.broker.locate_submission(
            key, attempted_at=attempted_at, detail=detail
        )
        match located:
            case Adopted(order=order):
                await self._close_placed(followed, order.order_id, key.quantity, "adopted")
                return Adopted
            case NotPlaced():
                log.warning("position.close_not_placed", **context(execution))
                return NotPlaced
            case Ambiguous(reason=reason, candidate_ids=ids):
                # A person must decide; the position stays `closing` until then.
                log.error(
                    "position.close_ambiguous",
                    why=reason,
                    candidate_ids=list(ids),
                    **context(execution),
                )
                return Ambiguous
            case _:
                followed.closing = None  # the bridge cannot be asked: the next rescan retries
                log.warning("position.close_unresolved", why=str(located), **context(execution))
                return None

    # -- flatten ---------------------------------------------------------------------------------

    async def flatten_due(self) -> None:
        """Close every open position whose flatten time (FLATTEN_AT or its instance's) came."""
        s = self._s
        rules = await self._rules()
        if not rules:
            return
        open_positions = [
            f.execution for f in s.followed.values() if is_open(f.execution) and f.closing is None
        ]
        for execution, rule in s.flatten.due(s.clock(), open_positions, rules):
            log.warning("position.flatten", rule=rule.describe(), **context(execution))
            followed = s.followed.get(execution.id)
            if followed is not None and s.tg is not None:
                s.tg.start_soon(
                    self.close, followed, ExitReason.FLATTEN, rule.describe(), "flatten"
                )

    async def _rules(self) -> Mapping[UUID, Sequence[FlattenRule]]:
        s = self._s
        positions = [f.execution for f in s.followed.values() if is_open(f.execution)]
        if not positions:
            return {}
        rules: dict[UUID, list[FlattenRule]] = {}
        at: time | None = s.settings.flatten_at
        if at is not None:
            rule = FlattenRule(GLOBAL_KEY, at, s.settings.timezone)
            for execution in positions:
                rules.setdefault(execution.id, []).append(rule)
        if s.instance_rules is not None:
            try:
                per_instance = await s.instance_rules(positions)
            except Exception as error:
                log.warning("exits.instance_rules_failed", error=str(error))
            else:
                for execution_id, found in per_instance.items():
                    rules.setdefault(execution_id, []).extend(found)
        return rules
