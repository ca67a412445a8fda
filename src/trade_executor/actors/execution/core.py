"""The executor's core: the one owner of its state, fed events, answering what to do.

Synchronous and pure like `following.judge`: no I/O, no awaits, no clock of its own (every
moment is passed in). The shells around it (`decide`, `submit`, `outcomes`, `recovery`,
`deadlines`, `corrections`, `vetting`, the executor's mailbox) do the I/O and report each fact
here; only this module changes the RiskBook (a test reads the source to hold that:
`tests/unit/actors/test_core_owns_riskbook.py`).

What it holds, for one executor run (`Shared.reset` makes a fresh core):
- the RiskBook: risk reserved and committed, symbols in flight, the trading state;
- the working orders (the value the broker's buying power does not reflect yet);
- the tallies: each strategy instance's decisions of this run, the circuit breaker's run of
  failures, the executions a task of this run has in hand and the last error each met;
- the bridge's account mode as last read, the approvals being prepared, and the last
  kill-switch change acknowledged.

The events, by the life of an execution (each a method, named for what happened):
`approval_seen` -> `claimed` -> `decide` (a batch: returns `Submit`/`Reject` verdicts, the
reservations made) -> `placed` | `released` (the broker did not take it: rejected, failed,
not_placed, held at the wall, fenced) | `held_for_day` (dry run) | `lost_track` (unknown) ->
`progressed` (a poller's fills; final frees or keeps the risk) | `settled` (the ledger says,
e.g. an operator's `resolve`) | `exited` (realized P&L). Start-up and the deadline scan:
`recovered`, `entered`, `redeciding`, `retried_unsent`, `fill_corrected`; a task's own:
`put_down`, `troubled`, `let_go`, `approval_prepared`. The bridge: `account_mode`,
`account_mode_unknown`. The kill switch and the breaker: `control` (answers `ControlApplied`:
changed, and whether to acknowledge), `acknowledge_failed`, `failure`, `status_lost`,
`breaker_restored`, `halt_written`. A failure that trips the breaker returns the `Trip` the
shell must carry out (close the wall, write `executor_control`).

Every reservation is released at most once: the RiskBook forgets an execution on its first
release, finish or hold, so a second report of the same end changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from trade_executor.actors.working import WorkingOrders
from trade_executor.domain.breaker import Breaker, Trip
from trade_executor.domain.execution import Execution
from trade_executor.domain.guardrails import (
    NO_GUARDRAILS,
    GuardrailFacts,
    InstanceTally,
    UsageItem,
    check_account_mode,
    check_entry,
    check_instance_limits,
)
from trade_executor.domain.ledger import OriginalTrade, counts_against_budget, holds_symbol
from trade_executor.domain.ledger import rebuild_riskbook as _rebuild_riskbook
from trade_executor.domain.models import Account, Position
from trade_executor.domain.riskbook import Decision, Halted, RiskBook, TradingState
from trade_executor.domain.sizing import RiskLimits, RiskRejection
from trade_executor.domain.validation import ValidSignal

REASON_LIMIT = 300  # characters of an error kept in a `reason`


def first_line(error: BaseException) -> str:
    """The first line of an error's message, at most REASON_LIMIT characters (PostgreSQL's
    messages carry a DETAIL line with the whole row, which a `reason` must not)."""
    lines = str(error).strip().splitlines()
    return lines[0][:REASON_LIMIT] if lines else ""


def describe_error(error: BaseException) -> str:
    """An error as one line: its type and message (the same error twice gives the same text)."""
    message = first_line(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


@dataclass(frozen=True, slots=True)
class Candidate:
    """A claimed, valid approval waiting for its risk decision."""

    execution: Execution
    valid: ValidSignal
    seen_at: float
    # What the original's guardrails need, read in the prepare step (domain.guardrails).
    guardrails: GuardrailFacts = NO_GUARDRAILS


# -- what the core answers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submit:
    """Decided: its risk is reserved and its order counted working; send it."""

    candidate: Candidate
    decision: Decision


@dataclass(frozen=True, slots=True)
class Reject:
    """Refused at the decide step; nothing is reserved for it (any reservation was returned).
    `detail`: a guardrail's words; `numbers`: what a risk decision was made on; `gate`: the
    RiskBook's gate when the RiskBook refused (counted in `risk_rejections`)."""

    candidate: Candidate
    reason: str
    detail: str = ""
    numbers: dict[str, Any] | None = None
    gate: str | None = None


Verdict = Submit | Reject


@dataclass(frozen=True, slots=True)
class ControlApplied:
    """The kill switch's new reading was applied; `changed`: it differed from `previous`;
    `acknowledge`: this written state (its `changed_at`) is new here, so acknowledge it once."""

    changed: bool
    previous: TradingState
    acknowledge: bool = False


class ExecutionCore:
    def __init__(self, limits: RiskLimits, timezone: ZoneInfo, max_failures: int) -> None:
        self._limits = limits
        self._timezone = timezone
        self._book = RiskBook(limits, timezone)
        self._working = WorkingOrders()
        self._tally = InstanceTally()
        self._breaker = Breaker(max_failures)
        # A trip whose kill switch is not yet in `executor_control`: until it is, a sweep's
        # "not halted" read of the table must not undo the halt (see `holds_halt`).
        self._trip_pending = False
        # Executions a task of this run is working on (claimed and being decided, submitted or
        # reconciled): the deadline scan leaves them alone. See `actors/execution/deadlines.py`.
        self._in_hand: set[UUID] = set()
        # The last error a task met for an execution, for the deadline scan to count repeats.
        self._troubles: dict[UUID, str] = {}
        # The bridge's account mode (/health paper_trading), read at start and after every
        # reconnect: None = not read or not said, which is never taken as paper.
        self._paper_trading: bool | None = None
        self._account_mode_read = False
        # Approvals being claimed and vetted (by key): a second hint for one is dropped.
        self._preparing: set[UUID] = set()
        # The last kill-switch change acknowledged (`executor_control.changed_at`).
        self._acknowledged: datetime | None = None

    # -- reads ---------------------------------------------------------------------------------

    @property
    def book(self) -> RiskBook:
        """The RiskBook, for reading (status, gauges, tests); only this core changes it."""
        return self._book

    @property
    def halted(self) -> bool:
        return self._book.halted

    @property
    def trading_state(self) -> TradingState:
        return self._book.trading_state

    def trading_day(self, now: datetime) -> date:
        return self._book.trading_day(now)

    def daily_risk_used(self, now: datetime) -> Decimal:
        return self._book.daily_risk_used(now)

    def realized_pnl(self, now: datetime) -> Decimal:
        return self._book.realized_pnl(now)

    @property
    def breaker(self) -> Breaker:
        """The circuit breaker, for reading its count (`Executor.breaker_failures`)."""
        return self._breaker

    @property
    def holds_halt(self) -> bool:
        """True while a breaker halt is being written: the RiskBook stays halted meanwhile."""
        return self._trip_pending

    @property
    def account_mode_read(self) -> bool:
        return self._account_mode_read

    @property
    def paper_trading(self) -> bool | None:
        return self._paper_trading

    def in_hand(self, execution_id: UUID) -> bool:
        """Whether a task of this run works on `execution_id` (the deadline scan leaves it)."""
        return execution_id in self._in_hand

    def working_count(self) -> int:
        return len(self._working)

    def unfilled_value(self, held: dict[str, int]) -> Decimal:
        return self._working.unfilled_value(held)

    def instance_items(self, instance_id: UUID, day: date) -> Iterable[UsageItem]:
        return self._tally.items(instance_id, day)

    def orphans(self, not_final: set[UUID]) -> frozenset[UUID]:
        """Executions in flight in the RiskBook whose rows are final (or gone), that no task of
        this run handles: the deadline scan settles them as the ledger says."""
        return self._book.live_ids() - not_final - self._in_hand

    # -- tasks taking and leaving an execution -------------------------------------------------

    def claimed(self, execution_id: UUID) -> None:
        """A task of this run took `execution_id` (a claim, a decision, a reconciliation)."""
        self._in_hand.add(execution_id)

    def put_down(self, execution_id: UUID) -> None:
        """The task is done with it; its last error, if any, stays for the deadline scan."""
        self._in_hand.discard(execution_id)

    def troubled(self, execution_id: UUID, error: BaseException) -> None:
        """The task met `error` and lets go of it: the deadline scan counts repeats."""
        self._troubles[execution_id] = describe_error(error)
        self._in_hand.discard(execution_id)

    def take_trouble(self, execution_id: UUID) -> str | None:
        """The error the last attempt met (forgotten here), or None if it met none."""
        return self._troubles.pop(execution_id, None)

    def let_go(self, execution_id: UUID) -> None:
        """No task of this run works on it any more, and its errors are over."""
        self._in_hand.discard(execution_id)
        self._troubles.pop(execution_id, None)

    # -- approvals seen ------------------------------------------------------------------------

    def approval_seen(self, key: UUID) -> bool:
        """A hint of an approval: True when it is new here (to be claimed), False when one for
        the same approval is already being prepared."""
        if key in self._preparing:
            return False
        self._preparing.add(key)
        return True

    def approval_prepared(self, key: UUID) -> None:
        """Its prepare step ended (claimed and handed on, ignored or failed)."""
        self._preparing.discard(key)

    # -- the account mode ----------------------------------------------------------------------

    def account_mode(self, paper_trading: bool | None) -> None:
        """The bridge's reading of its account (`/health`, or the bridge watcher); None: it
        answered without saying, which is never taken as paper."""
        self._paper_trading, self._account_mode_read = paper_trading, True

    def account_mode_unknown(self) -> None:
        """Unreadable, or the bridge may have changed: read it again before the next decision."""
        self._paper_trading, self._account_mode_read = None, False

    # -- deciding ------------------------------------------------------------------------------

    def decide(
        self,
        batch: Sequence[Candidate],
        account: Account,
        positions: Sequence[Position],
        now: datetime,
        *,
        allow_live: bool,
    ) -> list[Verdict]:
        """A batch against one account snapshot, in order: each decision sees every earlier
        reservation. Gates: the account mode, the guardrails that need no sizing, the RiskBook
        (halt, positions, budget, sizing, reservation), the instance's limits with the new trade
        (a refusal returns the reservation at once)."""
        held = {p.symbol.upper(): abs(p.quantity) for p in positions if p.quantity != 0}
        self._book.set_broker_positions(held)
        # The broker's buying power does not yet reflect orders that are working but unfilled.
        unfilled = self._working.unfilled_value(held)
        available = replace(account, buying_power=account.buying_power - unfilled)
        verdicts: list[Verdict] = []
        for candidate in batch:
            refused = check_account_mode(self._paper_trading, allow_live) or check_entry(
                candidate.guardrails, now
            )
            if refused is not None:
                verdicts.append(Reject(candidate, refused.reason, refused.detail))
                continue
            decision = self._book.decide(candidate.execution.id, candidate.valid, available, now)
            if isinstance(decision, RiskRejection):
                numbers = self._numbers(decision, now)
                verdicts.append(
                    Reject(candidate, decision.reason, numbers=numbers, gate=decision.gate.value)
                )
                continue
            if isinstance(decision, Halted):
                numbers = {"halt_reason": decision.detail}
                verdicts.append(Reject(candidate, decision.reason, numbers=numbers))
                continue
            over = self._instance_limits(candidate, decision)
            if over is not None:
                verdicts.append(over)
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
            verdicts.append(Submit(candidate, decision))
        return verdicts

    def _numbers(self, rejection: RiskRejection, now: datetime) -> dict[str, Any]:
        """What a risk rejection was decided on, for the log line and the audit trail."""
        book = self._book
        return {
            "gate": rejection.gate.value,
            "detail": rejection.detail,
            "daily_risk_used": book.daily_risk_used(now),
            "daily_risk_left": book.daily_risk_left(now),  # None: no daily budget
            "daily_budget": book.limits.daily_loss_cap,
            "open_positions": book.open_count(),
            "max_open_positions": book.limits.open_positions_cap,
        }

    def _instance_limits(self, candidate: Candidate, decision: Decision) -> Reject | None:
        """The instance's config limits with the new trade counted; on a refusal the
        reservation is returned. On success the trade joins the instance's tally."""
        facts = candidate.guardrails
        if not facts.instance_checked or facts.instance_id is None or facts.instance is None:
            return None
        day = decision.reservation.trading_day
        decided = self._tally.items(facts.instance_id, day)
        risk = decision.sizing.risk_amount
        refused = check_instance_limits(facts, decided, candidate.valid.symbol, risk)
        if refused is not None:
            self._book.release(candidate.execution.id)
            return Reject(candidate, refused.reason, refused.detail)
        key = str(candidate.execution.id)
        self._tally.add(facts.instance_id, day, UsageItem(key, candidate.valid.symbol, risk, True))
        return None

    # -- what became of an order ---------------------------------------------------------------

    def placed(self, execution_id: UUID, *, commit: bool = True) -> None:
        """The broker took the order: its risk is committed (`commit` False: it was entered
        committed, as recovery enters a `submitting` row); the breaker's run is broken."""
        if commit:
            self._book.commit(execution_id)
        self._breaker.placed()

    def released(self, execution_id: UUID) -> None:
        """The broker did not take it (rejected, failed, not placed, held back at the wall, the
        intent fenced or unwritten): risk, symbol, working order and tally entry are freed, and
        no task of this run holds it any more."""
        self._working.remove(execution_id)
        self.let_go(execution_id)
        self._book.release(execution_id)
        self._tally.remove(str(execution_id))

    def held_for_day(self, execution_id: UUID) -> None:
        """A dry run: what live would have done stays done for its trading day."""
        self._working.remove(execution_id)
        self._book.hold_for_day(execution_id)

    def lost_track(self, execution_id: UUID) -> None:
        """`unknown`: the order may be working, so its risk stays committed and its symbol open
        until an operator resolves it."""
        self._book.commit(execution_id)
        self.let_go(execution_id)

    def progressed(self, execution_id: UUID, filled_qty: int, *, final: bool) -> None:
        """A poller recorded a change of the order; a final one settles its risk (kept with a
        fill, returned without)."""
        self._working.filled(execution_id, filled_qty)
        if final:
            self._working.remove(execution_id)
            self._book.finish(execution_id, filled_qty=filled_qty)

    def status_lost(self, execution_id: UUID, filled_qty: int, reason: str) -> Trip | None:
        """A poller gave the order up (`unknown`): its risk stays; it counts as a failure."""
        self._working.filled(execution_id, filled_qty)
        return self.failure(reason)

    def settled(self, execution: Execution) -> bool:
        """An execution changed outside this actor (an operator's `resolve`, a lost message):
        the state follows the ledger's row. True when the row is working again and must be
        followed."""
        if execution.state.is_final:
            self._working.remove(execution.id)
            self.let_go(execution.id)
            if counts_against_budget(execution):
                # Its risk stays on its day (a resolved fill may carry no fill count).
                self._book.finish(execution.id, filled_qty=max(execution.filled_qty, 1))
            else:
                self._book.release(execution.id)
            return False
        if execution.state.is_working:
            self._book.commit(execution.id)
            return True
        return False

    def exited(
        self, execution_id: UUID, realized_pnl: Decimal, trading_day: date, now: datetime
    ) -> Decimal:
        """An exit's realized P&L (its running total); returns today's realized P&L."""
        self._book.set_realized(execution_id, realized_pnl, trading_day)
        return self._book.realized_pnl(now)

    def fill_corrected(self, corrected: Execution, previous_filled_qty: int) -> bool:
        """Reconciliation found fills of a `cancelled` entry. One recorded without a fill had its
        risk returned: it reached the broker after all, so its risk counts again on its day.
        True when the RiskBook changed."""
        if previous_filled_qty != 0 or corrected.trading_day is None:
            return False
        if not self._book.knows(corrected.id):  # else restored at start-up with its fills
            self._book.restore(
                corrected.id,
                corrected.symbol or "",
                corrected.risk_amount or Decimal(0),
                corrected.trading_day,
                working=False,
            )
        return True

    # -- start-up and the deadline scan --------------------------------------------------------

    def recovered(
        self,
        executions: Iterable[Execution],
        open_executions: Sequence[Execution],
        now: datetime,
        state: TradingState,
        originals: Sequence[OriginalTrade] = (),
    ) -> None:
        """The RiskBook is `domain.ledger.rebuild_riskbook` of the ledger (`executions`: today's,
        the unfinished and the positions followed), and each unfinished order holding a symbol
        counts working."""
        self._book = _rebuild_riskbook(
            self._limits, self._timezone, executions, now, state, original_trades=originals
        )
        for execution in open_executions:
            if holds_symbol(execution) and execution.quantity and execution.entry_price:
                self._working.add(
                    execution.id,
                    execution.symbol or "",
                    execution.quantity,
                    execution.entry_price,
                    execution.filled_qty,
                )

    def entered(self, execution: Execution, now: datetime) -> None:
        """A `submitting` row this run never decided (written by an earlier leader after this
        run's recovery, say) holds its risk and symbol, as `rebuild_riskbook` would enter it."""
        if self._book.knows(execution.id):
            return
        self._book.restore(
            execution.id,
            execution.symbol or "",
            execution.risk_amount or Decimal(0),
            execution.trading_day or self._book.trading_day(now),
            working=True,
        )
        if execution.quantity and execution.entry_price:
            self._working.add(
                execution.id,
                execution.symbol or "",
                execution.quantity,
                execution.entry_price,
                execution.filled_qty,
            )

    def redeciding(self, execution_id: UUID) -> None:
        """A `received` row is decided again: whatever an earlier attempt of this run reserved
        is dropped first (a `received` row holds nothing in the ledger's rule), and a task of
        this run has it in hand."""
        self._working.remove(execution_id)
        self._book.release(execution_id)
        self._in_hand.add(execution_id)

    def retried_unsent(self, execution_id: UUID) -> None:
        """An intent a crash left behind, proven never sent, goes back to `received`: its
        reservation from the ledger is returned (the new decision reserves afresh)."""
        self._working.remove(execution_id)
        self._book.release(execution_id)

    # -- the kill switch and the circuit breaker -----------------------------------------------

    def control(
        self, halted: bool, reason: str | None, changed_at: datetime | None = None
    ) -> ControlApplied | None:
        """The kill switch as `executor_control` reads (`changed_at`: when it was written).
        None: ignored, a stale "running" read while the breaker's own halt is not yet written.
        A resume resets the breaker."""
        if not halted and self._trip_pending:
            return None
        previous = self._book.trading_state
        changed = self._book.set_trading_state(TradingState(halted, reason))
        if changed and not halted:
            self._breaker.reset()  # the breaker counts afresh after `resume`
        acknowledge = changed_at is not None and changed_at != self._acknowledged
        if acknowledge:
            self._acknowledged = changed_at
        return ControlApplied(changed, previous, acknowledge)

    def acknowledge_failed(self) -> None:
        """The acknowledgement was not written: the next sweep's reading acknowledges again."""
        self._acknowledged = None

    def failure(self, reason: str) -> Trip | None:
        """A `failed`/`unknown` outcome that counts toward the breaker. A `Trip` when it halts
        the service now (the RiskBook is halted already; the shell closes the wall and writes
        `executor_control`, then reports `halt_written`)."""
        trip = self._breaker.failure(reason)
        return None if trip is None else self._trip(trip)

    def breaker_restored(self, breaker: Breaker, trip: Trip | None, halted: bool) -> Trip | None:
        """The breaker's count as the ledger shows it at the start of a run. If the ledger shows
        the limit reached but the kill switch (`halted`) is not set (a crash between the two),
        returns the `Trip` to carry out now."""
        self._breaker = breaker
        self._trip_pending = False
        if trip is not None and not halted:
            return self._trip(trip)
        return None

    def halt_written(self) -> None:
        """The breaker's halt is in `executor_control`: the table's reading is the truth again."""
        self._trip_pending = False

    def _trip(self, trip: Trip) -> Trip | None:
        if self._book.halted:
            return None  # already halted (an operator, or an earlier trip): nothing to add
        self._book.set_trading_state(TradingState(True, trip.reason))
        self._trip_pending = True
        return trip
