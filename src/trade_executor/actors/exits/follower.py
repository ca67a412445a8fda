"""`ExitFollower`: follows every open position to its exit (CONTRACT section 5, "exits").

It runs inside the active instance beside the pollers and owns the positions' side of the
ledger (`position_state`, `exit_*`, `realized_pnl`, `r_multiple`, `closed_at`). The executor
owns the RiskBook, so each recorded exit reaches it as a `PositionExited` message.

How it looks: once per ORDER_POLL_INTERVAL, while it follows anything, it judges every position
against one order list: the pollers' own read when one arrived since the last look
(`on_children`), else one `GET /orders` of its own. Nothing is read per position.

Guarantees:
- An exit is written by one `Store.apply` (POSITION) together with the `trades` row's notes;
  what the ledger holds never shrinks (`positions.assess`).
- Exits are orders, and nothing here consults the kill switch: a halt stops entries, never an
  exit, a close or a flatten.
- Every order this actor sends is written as an intent first and looked up after a crash,
  never sent twice: a close's intent (`exit_attempted_at`, `exit_order_id` 0) precedes its
  POST, and a close whose answer was lost is located in the order list (`locate_submission`).
  A protection is sent with `replace_existing`, so a repeat after a lost answer replaces the
  first instead of doubling it.
- One position is changed by one task at a time (its lock); the looks skip a busy position and
  take it up at the next look.
- Per-instance flatten times are read through `instance_rules` (None: only FLATTEN_AT).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any
from uuid import UUID

import anyio
from anyio.abc import TaskGroup, TaskStatus

from trade_executor.actors.messages import (
    CloseRequested,
    ExecutionChanged,
    Message,
    PositionExited,
)
from trade_executor.broker.errors import AmbiguousSubmission, BrokerError, BrokerRejected
from trade_executor.broker.locate import Adopted, Ambiguous, NotPlaced
from trade_executor.broker.orderbook import OrderIndex
from trade_executor.broker.protocol import Broker
from trade_executor.broker.reconcile import SubmissionKey
from trade_executor.config import Settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import OrderType
from trade_executor.domain.states import IllegalTransition, Transition
from trade_executor.logging import bind_context, clear_repeated, get_logger, log_repeated
from trade_executor.metrics import Metrics
from trade_executor.store.protocol import Store
from trade_executor.testing.faults import fault_point

from ..following.children import BracketChildren
from .flatten import GLOBAL_KEY, FlattenRule, FlattenSchedule
from .positions import (
    Assessment,
    ExitReason,
    PositionState,
    assess,
    close_kind,
    exit_orders,
    is_open,
    remaining,
    side_of,
    trade_notes,
)

log = get_logger("trade_executor.exits")

Clock = Callable[[], datetime]
Report = Callable[[Message], None]
InstanceRules = Callable[[Sequence[Execution]], Awaitable[Mapping[UUID, Sequence[FlattenRule]]]]

LIST_FAILED = ("exits", "list_failed")
REFUSED = -1  # exit_order_id of a close the bridge refused: nothing placed, nothing to locate
MAX_SIBLING_CANCELS = 3
CANCEL_CONFIRM_READS = 5


def _utcnow() -> datetime:
    return datetime.now(UTC)


def context(execution: Execution) -> dict[str, Any]:
    return {
        "execution_id": str(execution.id),
        "signal_id": str(execution.signal_id),
        "symbol": execution.symbol,
        "order_id": execution.order_id,
    }


@dataclass(eq=False)
class Followed:
    """One position this actor follows. `closing` is the kind of a close under way."""

    execution: Execution
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    closed: anyio.Event = field(default_factory=anyio.Event)
    closing: ExitReason | None = None
    cancels: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class ExitStats:
    """What the exits asked of the bridge (for tests and the demo)."""

    looks: int = 0
    list_reads: int = 0
    closes: int = 0
    protects: int = 0
    cancels: int = 0


class ExitFollower:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        metrics: Metrics,
        report: Report,
        *,
        clock: Clock = _utcnow,
        instance_rules: InstanceRules | None = None,
    ) -> None:
        """`report` is the executor's mailbox (`PositionExited`); `clock` the wall clock of
        exits and flatten times (tests move it)."""
        self._settings = settings
        self._store = store
        self._broker = broker
        self._metrics = metrics
        self._report = report
        self._clock = clock
        self._instance_rules = instance_rules
        self._followed: dict[UUID, Followed] = {}
        self._pool_index: OrderIndex | None = None
        self._flatten = FlattenSchedule()
        self._tg: TaskGroup | None = None
        self._busy: set[tuple[str, UUID]] = set()
        self.stats = ExitStats()

    # -- what others call ------------------------------------------------------------------------

    @property
    def followed(self) -> list[Execution]:
        """The positions followed now, as last recorded."""
        return [f.execution for f in self._followed.values()]

    def on_children(self, children: BracketChildren) -> None:
        """The pollers' list read (`PollerPool(on_children=...)`): the next look uses it."""
        if children.index is not None:
            self._pool_index = children.index

    def on_position(self, execution: Execution) -> None:
        """An entry ended holding shares (`PollerPool(on_position=...)`): follow its position."""
        if self._tg is not None:
            self._resume(self._track(execution))

    def on_message(self, message: Message) -> None:
        """From the control channel: a `close` from another shell, or an execution an operator
        changed (a position `resolve` made appear)."""
        tg = self._tg
        if tg is None:
            return
        if isinstance(message, CloseRequested):
            log.info(
                "position.close_requested",
                symbol=message.symbol or "all",
                reason=message.reason,
                requested_by=message.requested_by,
            )
            tg.start_soon(self._close_quietly, message)
        elif isinstance(message, ExecutionChanged):
            tg.start_soon(self._reread, message.execution_id)

    async def close_positions(
        self,
        symbol: str | None,
        reason: str,
        requested_by: str,
        *,
        kind: ExitReason = ExitReason.CLOSE,
        wait: float = 0.0,
    ) -> list[Execution]:
        """Close the open positions of `symbol` (None: all): cancel their exit orders, close
        each through the bridge and follow the close order to its fill. Waits up to `wait`
        seconds for them to be recorded closed; returns them as recorded then (empty: none
        open)."""
        tg = self._tg
        if tg is None:
            return []
        wanted = symbol.strip().upper() if symbol is not None else None
        targets = [
            f
            for f in self._followed.values()
            if is_open(f.execution) and (wanted is None or f.execution.symbol == wanted)
        ]
        for followed in targets:
            tg.start_soon(self._close, followed, kind, reason, requested_by)
        if wait > 0:
            with anyio.move_on_after(wait):
                for followed in targets:
                    await followed.closed.wait()
        return [f.execution for f in targets]

    # -- the run ---------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the ledger's open positions (and today's closed ones, for their siblings)
        until cancelled."""
        self._followed.clear()
        self._busy.clear()
        self._pool_index = None
        positions = await self._store.positions_to_follow(self._day_start(self._clock()))
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                for execution in positions:
                    self._resume(self._track(execution))
                log.info("exits.started", positions=len(self._followed))
                task_status.started()
                tg.start_soon(self._rescan_forever)
                await self._look_forever()
            finally:
                self._tg = None

    def _track(self, execution: Execution) -> Followed:
        followed = self._followed.get(execution.id)
        if followed is None:
            followed = self._followed[execution.id] = Followed(execution)
        elif not followed.lock.locked():
            followed.execution = execution  # a newer row (the lock's holder keeps its own)
        if execution.position_state == PositionState.CLOSED:
            followed.closed.set()
        return followed

    def _resume(self, followed: Followed) -> None:
        """What an interrupted run left to do: a close sent without its answer recorded, or a
        partly filled entry whose children a cancel took away."""
        execution = followed.execution
        if not is_open(execution) or followed.closing is not None:
            return  # a close of this run is under way: its own task carries it through
        if execution.exit_attempted_at is not None and execution.exit_order_id == 0:
            self._spawn("settle_close", execution.id, self._settle_close, followed)
        elif execution.position_state == PositionState.UNPROTECTED and execution.child_order_ids:
            self._spawn("protect", execution.id, self._protect, followed)

    def _spawn(
        self,
        what: str,
        execution_id: UUID,
        work: Callable[[Followed], Awaitable[None]],
        f: Followed,
    ) -> None:
        """One task per (kind of work, position) at a time; a crash is logged, never fatal."""
        key = (what, execution_id)
        if self._tg is None or key in self._busy:
            return
        self._busy.add(key)

        async def guarded() -> None:
            bind_context(**context(f.execution))
            try:
                await work(f)
            except Exception:
                log.exception("exits.task_crashed", task=what, **context(f.execution))
            finally:
                self._busy.discard(key)

        self._tg.start_soon(guarded, name=f"exits.{what}")

    async def _rescan_forever(self) -> None:
        """Self-healing every SWEEP_INTERVAL: positions whose callback was missed, and work
        (a protection, a close's answer) that failed for a reason that may have passed."""
        while True:
            await anyio.sleep(self._settings.sweep_interval)
            try:
                for execution in await self._store.positions_to_follow(
                    self._day_start(self._clock())
                ):
                    self._resume(self._track(execution))
            except Exception as error:  # the database may be away: the next rescan retries
                log.warning("exits.rescan_failed", error=str(error))

    async def _look_forever(self) -> None:
        while True:
            await anyio.sleep(self._settings.order_poll_interval)
            try:
                await self._look()
                await self._flatten_due()
            except Exception:
                log.exception("exits.look_failed")

    # -- one look at every position --------------------------------------------------------------

    async def _look(self) -> None:
        if not self._followed:
            self._pool_index = None
            return
        index = await self._order_list()
        if index is None:
            return
        self.stats.looks += 1
        for followed in list(self._followed.values()):
            if followed.lock.locked():
                continue  # a close or a protection is changing it: the next look
            async with followed.lock:
                await self._review(followed, index)

    async def _order_list(self) -> OrderIndex | None:
        """The pollers' latest list read if one arrived since the last look, else our own."""
        index, self._pool_index = self._pool_index, None
        if index is not None:
            return index
        try:
            index = await self._broker.order_index()
        except BrokerError as error:
            log_repeated(LIST_FAILED, "exits.list_failed", error=str(error))
            return None
        self.stats.list_reads += 1
        clear_repeated(LIST_FAILED, "exits.list_recovered")
        return index

    async def _review(self, followed: Followed, index: OrderIndex) -> Assessment | None:
        """Judge one position against one list read and carry out what that calls for. Runs
        under the position's lock."""
        execution = followed.execution
        orders = exit_orders(execution, index.by_id)
        now = self._clock()
        verdict = assess(execution, orders, now, closing=followed.closing is not None)
        try:
            if verdict.record is not None:
                await self._record_exit(followed, verdict)
            for order_id in verdict.cancel:
                await self._cancel_sibling(followed, order_id)
            if verdict.lost_protection:
                await self._lost_protection(followed)
        except IllegalTransition as settled:
            log.info("exits.stopped", state=str(settled.current), **context(execution))
            self._followed.pop(execution.id, None)
            return None
        self._close_order_ended(followed, index, verdict)
        if verdict.settled:
            self._followed.pop(execution.id, None)
        return verdict

    def _close_order_ended(
        self, followed: Followed, index: OrderIndex, verdict: Assessment
    ) -> None:
        """A close order that ended (cancelled, refused by IB) before the position was out:
        the close is over; the position stays open for another `close`."""
        execution = followed.execution
        if followed.closing is None or verdict.closed or not (execution.exit_order_id or 0) > 0:
            return
        order = index.by_id.get(execution.exit_order_id or 0)
        if order is not None and order.status.is_final:
            followed.closing = None
            log.error(
                "position.close_failed",
                error=f"the close order ended {order.status.value} with {order.filled_qty} filled",
                **context(execution),
            )

    async def _record_exit(self, followed: Followed, verdict: Assessment) -> None:
        execution, changes, exit = followed.execution, verdict.record, verdict.exit
        assert changes is not None and exit is not None
        fault_point("exit_after_fill_read")
        projected = _with(execution, changes)
        updated = await self._store.apply(
            execution.id,
            Transition.POSITION,
            changes,
            {"exit_reason": changes.exit_reason, "exit_qty": exit.quantity},
            trade_notes=trade_notes(projected),
        )
        followed.execution = updated
        fault_point("exit_after_recorded")
        moment = updated.closed_at or self._clock()
        pnl = updated.realized_pnl if updated.realized_pnl is not None else exit.realized_pnl
        self._report(PositionExited(updated.id, pnl, self._day(moment), verdict.closed))
        numbers = {
            "exit_reason": updated.exit_reason,
            "exit_qty": updated.exit_qty,
            "exit_avg_price": str(updated.exit_avg_price),
            "entry_price": str(updated.avg_fill_price),
            "realized_pnl": str(updated.realized_pnl),
            "r_multiple": str(updated.r_multiple),
            "risk_amount": str(updated.risk_amount),
        }
        if verdict.closed:
            followed.closing = None
            followed.closed.set()
            log.info("position.closed", **numbers, **context(updated))
        else:
            log.info(
                "position.reduced", remaining=remaining(updated), **numbers, **context(updated)
            )

    async def _cancel_sibling(self, followed: Followed, order_id: int) -> None:
        """An exit order still working after its position closed: cancel it (IB's
        one-cancels-other normally did already), a few times at most."""
        execution = followed.execution
        attempts = followed.cancels.get(order_id, 0) + 1
        if attempts > MAX_SIBLING_CANCELS:
            if attempts == MAX_SIBLING_CANCELS + 1:
                followed.cancels[order_id] = attempts
                log.error(
                    "position.sibling_not_cancelled",
                    sibling_order_id=order_id,
                    **context(execution),
                )
            return
        followed.cancels[order_id] = attempts
        self.stats.cancels += 1
        try:
            await self._broker.cancel_order(order_id)
        except BrokerError as error:  # filled or cancelled meanwhile: the next look tells
            log.warning(
                "position.sibling_cancel_failed",
                sibling_order_id=order_id,
                error=str(error),
                **context(execution),
            )
            return
        log.info("position.sibling_cancelled", sibling_order_id=order_id, **context(execution))
        await self._store.add_event(
            execution.id, "position.sibling_cancelled", {"order_id": order_id}
        )

    async def _lost_protection(self, followed: Followed) -> None:
        """Every exit order is final and shares are left (DAY children expired at the close):
        `unprotected`, reported. No order is placed for it (CONTRACT: reconciliation never
        places an order by itself); `close` is the operator's remedy."""
        execution = followed.execution
        gone = list(execution.child_order_ids)
        followed.execution = await self._store.apply(
            execution.id,
            Transition.POSITION,
            Changes(position_state=PositionState.UNPROTECTED.value, child_order_ids=()),
            {"protection": "gone", "order_ids": gone},
        )
        self._break(followed.execution, "every exit order of the position ended", gone)

    def _break(self, execution: Execution, why: str, order_ids: list[int]) -> None:
        self._metrics.reconcile_break("unprotected_position")
        log.error(
            "reconcile.break",
            kind="unprotected_position",
            why=why,
            exit_order_ids=order_ids,
            remaining=remaining(execution),
            **context(execution),
        )

    # -- protection kept after a timeout cancel --------------------------------------------------

    async def _protect(self, followed: Followed) -> None:
        """Protect the filled quantity again after a cancel took the bracket's children:
        `/positions/{symbol}/protect` with the signal's stop and take-profit. A refusal leaves
        the position `unprotected` (reported); no answer leaves it for the next rescan."""
        async with followed.lock:
            execution = followed.execution
            quantity = remaining(execution)
            if (
                execution.position_state != PositionState.UNPROTECTED
                or not execution.child_order_ids
                or quantity <= 0
                or execution.symbol is None
            ):
                return
            if execution.stop_loss is None:
                await self._unprotectable(followed, "the execution has no stop-loss price")
                return
            self.stats.protects += 1
            try:
                placed = await self._broker.protect_position(
                    execution.symbol,
                    stop_loss=execution.stop_loss,
                    take_profit=execution.take_profit,
                    quantity=quantity,
                    replace_existing=True,
                )
            except BrokerRejected as refused:
                await self._unprotectable(followed, f"the bridge refused: {refused.reason}")
                return
            except BrokerError as error:
                # No answer, or a bridge that cannot be reached: retried at the next rescan;
                # `replace_existing` makes a repeat replace what a lost answer placed.
                log.warning("position.protect_failed", error=str(error), **context(execution))
                return
            followed.execution = await self._store.apply(
                execution.id,
                Transition.POSITION,
                Changes(
                    position_state=PositionState.OPEN.value,
                    child_order_ids=placed.order_ids,
                ),
                {
                    "protection": "placed",
                    "quantity": quantity,
                    "order_ids": list(placed.order_ids),
                    "cancelled_order_ids": list(placed.cancelled_order_ids),
                },
            )
            log.info(
                "position.protected",
                quantity=quantity,
                stop_loss=str(execution.stop_loss),
                take_profit=str(execution.take_profit),
                protect_order_ids=list(placed.order_ids),
                **context(execution),
            )

    async def _unprotectable(self, followed: Followed, why: str) -> None:
        execution = followed.execution
        gone = list(execution.child_order_ids)
        followed.execution = await self._store.apply(
            execution.id,
            Transition.POSITION,
            Changes(position_state=PositionState.UNPROTECTED.value, child_order_ids=()),
            {"protection": "refused", "why": why},
        )
        self._break(followed.execution, why, gone)

    # -- close and flatten -----------------------------------------------------------------------

    async def _close_quietly(self, request: CloseRequested) -> None:
        closing = await self.close_positions(request.symbol, request.reason, request.requested_by)
        if not closing:
            log.warning("position.nothing_to_close", symbol=request.symbol or "all")

    async def _close(
        self, followed: Followed, kind: ExitReason, reason: str, requested_by: str
    ) -> None:
        key = ("close", followed.execution.id)
        if key in self._busy:
            return
        self._busy.add(key)
        try:
            await self._close_steps(followed, kind, reason, requested_by)
        except Exception:
            followed.closing = None  # the intent is in the ledger: the next rescan settles it
            log.exception("exits.task_crashed", task="close", **context(followed.execution))
        finally:
            self._busy.discard(key)

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
                exit_reason=kind.value, exit_attempted_at=self._clock(), exit_order_id=0
            )
            detail = {
                "close": kind.value,
                "reason": reason,
                "requested_by": requested_by,
                "quantity": remaining(execution),
            }
            followed.execution = await self._store.apply(
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
        await self._cancel_exit_orders(followed)
        async with followed.lock:
            await self._place_close(followed)

    async def _cancel_exit_orders(self, followed: Followed) -> None:
        """Cancel the position's working exit orders, then read the list until they are final
        (bounded), recording any fill they made meanwhile: the close is for what is left."""
        for attempt in range(CANCEL_CONFIRM_READS):
            index = await self._fresh_list()
            if index is None:
                await anyio.sleep(self._settings.order_poll_interval)
                continue
            async with followed.lock:
                verdict = await self._review(followed, index)
            if verdict is None or verdict.closed:
                return
            working = [
                o.order_id
                for o in exit_orders(followed.execution, index.by_id)
                if o.working and o.order_id != followed.execution.exit_order_id
            ]
            if not working:
                return
            if attempt == 0 or attempt == CANCEL_CONFIRM_READS // 2:
                for order_id in working:
                    self.stats.cancels += 1
                    try:
                        await self._broker.cancel_order(order_id)
                    except BrokerError as error:
                        log.warning(
                            "position.exit_cancel_failed",
                            exit_order_id=order_id,
                            error=str(error),
                            **context(followed.execution),
                        )
            await anyio.sleep(self._settings.cancelled_recheck_delay)
        log.warning("position.exit_orders_still_working", **context(followed.execution))

    async def _fresh_list(self) -> OrderIndex | None:
        try:
            index = await self._broker.order_index()
        except BrokerError as error:
            log_repeated(LIST_FAILED, "exits.list_failed", error=str(error))
            return None
        self.stats.list_reads += 1
        return index

    async def _place_close(self, followed: Followed) -> None:
        """The close order for what is left. Runs under the position's lock; its intent is
        in the ledger already."""
        execution = followed.execution
        quantity = remaining(execution)
        if not is_open(execution) or quantity <= 0 or execution.symbol is None:
            followed.closing = None
            return
        self.stats.closes += 1
        try:
            placed = await self._broker.close_position(execution.symbol, quantity=quantity)
        except AmbiguousSubmission as lost:
            log.warning("position.close_answer_lost", error=str(lost), **context(execution))
            await self._locate_close(followed, lost.detail)
            return
        except BrokerError as refused:
            await self._close_refused(followed, str(refused))
            return
        fault_point("exit_after_close_post")
        await self._close_placed(followed, placed.order_id, quantity, "placed")

    async def _close_placed(
        self, followed: Followed, order_id: int, quantity: int, how: str
    ) -> None:
        execution = followed.execution
        followed.execution = await self._store.apply(
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
        followed.execution = await self._store.apply(
            execution.id,
            Transition.POSITION,
            Changes(exit_order_id=REFUSED),
            {"close": "refused", "error": why},
        )
        log.error("position.close_failed", error=why, **context(execution))

    async def _settle_close(self, followed: Followed) -> None:
        """After a restart: a close whose answer was never recorded is looked up, not re-sent;
        only a bridge that lists its orders and shows none sends it (again, or for the first
        time)."""
        async with followed.lock:
            execution = followed.execution
            if not is_open(execution) or execution.exit_order_id != 0 or followed.closing:
                return
            followed.closing = close_kind(execution)
            found = await self._locate_close(followed, None)
        if found is NotPlaced:
            await self._cancel_exit_orders(followed)
            async with followed.lock:
                await self._place_close(followed)

    async def _locate_close(self, followed: Followed, detail: str | None) -> object:
        """Settle a close whose answer is unknown. Returns `NotPlaced` (the class) when it is
        proven not placed, for the caller to send it; otherwise handles the outcome."""
        execution = followed.execution
        assert execution.symbol is not None
        key = SubmissionKey(
            order_ref="",
            symbol=execution.symbol,
            action=side_of(execution).opposite,
            quantity=remaining(execution),
            order_type=OrderType.MKT,
            price=None,
        )
        attempted_at = execution.exit_attempted_at or self._clock()
        located = await self._broker.locate_submission(
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

    async def _flatten_due(self) -> None:
        rules = await self._rules()
        if not rules:
            return
        open_positions = [
            f.execution
            for f in self._followed.values()
            if is_open(f.execution) and f.closing is None
        ]
        for execution, rule in self._flatten.due(self._clock(), open_positions, rules):
            log.warning("position.flatten", rule=rule.describe(), **context(execution))
            followed = self._followed.get(execution.id)
            if followed is not None and self._tg is not None:
                self._tg.start_soon(
                    self._close, followed, ExitReason.FLATTEN, rule.describe(), "flatten"
                )

    async def _rules(self) -> Mapping[UUID, Sequence[FlattenRule]]:
        positions = [f.execution for f in self._followed.values() if is_open(f.execution)]
        if not positions:
            return {}
        rules: dict[UUID, list[FlattenRule]] = {}
        at: time | None = self._settings.flatten_at
        if at is not None:
            rule = FlattenRule(GLOBAL_KEY, at, self._settings.timezone)
            for execution in positions:
                rules.setdefault(execution.id, []).append(rule)
        if self._instance_rules is not None:
            try:
                per_instance = await self._instance_rules(positions)
            except Exception as error:
                log.warning("exits.instance_rules_failed", error=str(error))
            else:
                for execution_id, found in per_instance.items():
                    rules.setdefault(execution_id, []).extend(found)
        return rules

    # -- operators' changes ----------------------------------------------------------------------

    async def _reread(self, execution_id: UUID) -> None:
        """An execution changed outside this process: a `resolve ... --as filled` may have
        made a position appear; a followed one is refreshed."""
        execution = await self._store.get_execution(execution_id)
        if execution is None:
            return
        if execution.position_state is None and execution.filled_qty > 0:
            if not Transition.POSITION.allows(execution.state):
                return
            execution = await self._store.apply(
                execution.id,
                Transition.POSITION,
                Changes(position_state=PositionState.OPEN.value),
                {"position": "opened after an operator's resolve"},
            )
        if is_open(execution) or execution.id in self._followed:
            self._resume(self._track(execution))

    # -- time ------------------------------------------------------------------------------------

    def _day(self, moment: datetime) -> date:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self._settings.timezone).date()

    def _day_start(self, now: datetime) -> datetime:
        return datetime.combine(self._day(now), time(0), tzinfo=self._settings.timezone)


def _with(execution: Execution, changes: Changes) -> Execution:
    """The execution as it will read once `changes` are applied (None keeps a field)."""
    values = {
        name: value
        for name in changes.__dataclass_fields__
        if (value := getattr(changes, name)) is not None
    }
    return replace(execution, **values)
