"""`ExitFollower`: follows every open position to its exit (CONTRACT section 5, "exits").

It runs inside the active instance beside the pollers and owns the positions' side of the
ledger (`position_state`, `exit_*`, `realized_pnl`, `r_multiple`, `closed_at`). The executor
owns the RiskBook, so each recorded exit reaches it as a `PositionExited` message.

The follower is the run and the doors in; the work is done by its parts:
- `looks.Looks`: once per ORDER_POLL_INTERVAL, every position judged against one order list
  (exits recorded, siblings cancelled, lost protection reported);
- `protection.Protection`: protection placed again after a timeout cancel;
- `closing.Closes`: `close`, flatten, and a close an interrupted run left unanswered.

Guarantees (with those of its parts):
- Exits are orders, and nothing here consults the kill switch: a halt stops entries, never an
  exit, a close or a flatten.
- Every order this actor sends is written as an intent first and looked up after a crash,
  never sent twice.
- One position is changed by one task at a time (its lock); the looks skip a busy position and
  take it up at the next look.
- A missed callback or work that failed for a reason that may have passed is picked up by the
  rescan every SWEEP_INTERVAL.
- Per-instance flatten times are read through `instance_rules` (None: only FLATTEN_AT).
"""

from __future__ import annotations

from uuid import UUID

import anyio
from anyio.abc import TaskStatus

from trade_executor.actors.following.children import BracketChildren
from trade_executor.actors.messages import CloseRequested, ExecutionChanged, Message
from trade_executor.broker.protocol import Broker
from trade_executor.clock import Clock, utcnow
from trade_executor.config.session_calendar import trading_session
from trade_executor.config.sources import Settings
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.states import Transition
from trade_executor.observability.metrics import Metrics
from trade_executor.store.protocol import ExitStore

from .closing import Closes
from .looks import Looks
from .positions import ExitReason, PositionState, is_open
from .protection import Protection
from .reprotect import Reprotect, SessionHours
from .shared import ExitStats, Followed, InstanceRules, Report, Shared, log

__all__ = ["ExitFollower", "ExitStats", "InstanceRules"]


class ExitFollower:
    def __init__(
        self,
        settings: Settings,
        store: ExitStore,
        broker: Broker,
        metrics: Metrics,
        report: Report,
        *,
        clock: Clock = utcnow,
        instance_rules: InstanceRules | None = None,
        session: SessionHours | None = None,
    ) -> None:
        """`report` is the executor's mailbox (`PositionExited`); `clock` the wall clock of
        exits and flatten times (tests move it); `session` when the market is open, for
        REPROTECT_AT_OPEN (default: TRADING_SESSION's calendar, built once per process)."""
        self._s = Shared(
            settings, store, broker, metrics, report, clock=clock, instance_rules=instance_rules
        )
        self._protection = Protection(self._s)
        self._reprotect = Reprotect(
            self._s,
            session or trading_session(settings.trading_session, settings.trading_day_timezone),
        )
        self._looks = Looks(self._s, self._protection)
        self._closes = Closes(self._s, self._looks)

    # -- what others call ------------------------------------------------------------------------

    @property
    def stats(self) -> ExitStats:
        """What the exits asked of the bridge, over every run (tests and the demo read it)."""
        return self._s.core.stats

    @property
    def followed(self) -> list[Execution]:
        """The positions followed now, as last recorded."""
        return [f.execution for f in self._s.core.positions()]

    def on_children(self, children: BracketChildren) -> None:
        """The pollers' list read (`PollerPool(on_children=...)`): the next look uses it."""
        if children.index is not None:
            self._s.core.offer_index(children.index)

    def on_position(self, execution: Execution) -> None:
        """An entry ended holding shares (`PollerPool(on_position=...)`): follow its position."""
        if self._s.tg is not None:
            self._resume(self._s.core.track(execution))

    def on_message(self, message: Message) -> None:
        """From the control channel: a `close` from another shell, or an execution an operator
        changed (a position `resolve` made appear)."""
        tg = self._s.tg
        if tg is None:
            return
        if isinstance(message, CloseRequested):
            log.info(
                "position.close_requested",
                symbol=message.symbol or "all",
                reason=message.reason,
                requested_by=message.requested_by,
            )
            tg.start_soon(self._close_requested, message)
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
        tg = self._s.tg
        if tg is None:
            return []
        wanted = symbol.strip().upper() if symbol is not None else None
        targets = [
            f
            for f in self._s.core.positions()
            if is_open(f.execution) and (wanted is None or f.execution.symbol == wanted)
        ]
        for followed in targets:
            tg.start_soon(self._closes.close, followed, kind, reason, requested_by)
        if wait > 0:
            with anyio.move_on_after(wait):
                for followed in targets:
                    await followed.closed.wait()
        return [f.execution for f in targets]

    async def _close_requested(self, request: CloseRequested) -> None:
        closing = await self.close_positions(request.symbol, request.reason, request.requested_by)
        if not closing:
            log.warning("position.nothing_to_close", symbol=request.symbol or "all")

    # -- the run ---------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the ledger's open positions (and today's closed ones, for their siblings)
        until cancelled."""
        s = self._s
        s.core.reset()
        positions = await s.store.positions_to_follow(s.day_start(s.clock()))
        async with anyio.create_task_group() as tg:
            s.tg = tg
            try:
                for execution in positions:
                    self._resume(s.core.track(execution))
                log.info("exits.started", positions=len(s.core))
                task_status.started()
                tg.start_soon(self._rescan_forever)
                await self._look_forever()
            finally:
                s.tg = None

    def _resume(self, followed: Followed) -> None:
        """What an interrupted run left to do: a close sent without its answer recorded, or a
        partly filled entry whose children a cancel took away."""
        execution = followed.execution
        if not is_open(execution) or followed.closing is not None:
            return  # a close of this run is under way: its own task carries it through
        if execution.exit_attempted_at is not None and execution.exit_order_id == 0:
            self._s.spawn("settle_close", self._closes.settle_close, followed)
        elif execution.position_state == PositionState.UNPROTECTED and execution.child_order_ids:
            self._s.spawn("protect", self._protection.protect, followed)

    async def _rescan_forever(self) -> None:
        """Self-healing every SWEEP_INTERVAL: positions whose callback was missed, and work
        (a protection, a close's answer) that failed for a reason that may have passed."""
        s = self._s
        while True:
            await anyio.sleep(s.settings.sweep_interval)
            try:
                for execution in await s.store.positions_to_follow(s.day_start(s.clock())):
                    self._resume(s.core.track(execution))
            except Exception as error:  # the database may be away: the next rescan retries
                log.warning("exits.rescan_failed", error=str(error))

    async def _look_forever(self) -> None:
        while True:
            await anyio.sleep(self._s.settings.order_poll_interval)
            try:
                await self._looks.look()
                await self._closes.flatten_due()
                await self._reprotect.due()
            except Exception:
                log.exception("exits.look_failed")

    # -- operators' changes ----------------------------------------------------------------------

    async def _reread(self, execution_id: UUID) -> None:
        """An execution changed outside this process: a `resolve ... --as filled` may have
        made a position appear; a followed one is refreshed."""
        execution = await self._s.store.get_execution(execution_id)
        if execution is None:
            return
        if execution.position_state is None and execution.filled_qty > 0:
            if not Transition.POSITION.allows(execution.state):
                return
            execution = await self._s.store.apply(
                execution.id,
                Transition.POSITION,
                Changes(position_state=PositionState.OPEN.value),
                {"position": "opened after an operator's resolve"},
            )
        if is_open(execution) or self._s.core.follows(execution.id):
            self._resume(self._s.core.track(execution))
