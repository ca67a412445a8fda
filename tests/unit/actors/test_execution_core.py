"""The executor's core (`actors/execution/core.py`), pure and synchronous: no store, no broker, no
event loop, no clock of its own. Every path an execution can end by returns its reservation
exactly once (rejected, failed, not placed, cancelled, held back at the wall, given up
`unknown` and resolved, recovered and decided again), and the tallies (risk, symbols, working
orders, instance usage, the breaker's count, the executions in hand) stay consistent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trade_executor.actors.execution.core import (
    Candidate,
    ControlApplied,
    ExecutionCore,
    Reject,
    Submit,
    Verdict,
)
from trade_executor.domain.breaker import Breaker, Trip
from trade_executor.domain.execution import Execution
from trade_executor.domain.guardrails import (
    LIVE_TRADING_NOT_ALLOWED,
    GuardrailFacts,
    InstanceRow,
)
from trade_executor.domain.models import Account, Action, Position
from trade_executor.domain.riskbook import TradingState
from trade_executor.domain.sizing import RiskLimits
from trade_executor.domain.states import ExecutionState
from trade_executor.domain.validation import ValidSignal

D = Decimal
S = ExecutionState
NY = ZoneInfo("America/New_York")
LIMITS = RiskLimits(
    max_risk_per_trade=D("0.01"),
    min_position_size=1,
    max_position_size=1000,
    max_position_value_pct=D("0.20"),
    max_open_positions=5,
    max_daily_loss=D("5000"),
)
ACCOUNT = Account("DU1", net_liquidation=D("100000"), buying_power=D("100000"))
NOW = datetime(2024, 3, 8, 16, 0, tzinfo=UTC)  # Friday 11:00 in New York
TODAY = date(2024, 3, 8)
RICH = replace(ACCOUNT, buying_power=D("1000000000"))
RISK = D("665.00")  # 1% of 100,000 at entry 150, stop 145: 133 shares


def core(*, paper: bool | None = True, max_failures: int = 3, **limits: object) -> ExecutionCore:
    made = ExecutionCore(replace(LIMITS, **limits), NY, max_failures)  # type: ignore[arg-type]
    made.account_mode(paper)
    return made


def candidate(symbol: str = "AAPL", guardrails: GuardrailFacts | None = None) -> Candidate:
    execution_id = uuid4()
    execution = Execution(
        execution_id, uuid4(), uuid4(), S.RECEIVED, f"te-{execution_id.hex}", symbol=symbol
    )
    valid = ValidSignal(
        execution.signal_id, symbol, Action.BUY, D("150"), D("145"), D("160"), None, None
    )
    return Candidate(execution, valid, 0.0, guardrails or GuardrailFacts())


def decide(
    made: ExecutionCore,
    *batch: Candidate,
    positions: Sequence[Position] = (),
    account: Account = ACCOUNT,
) -> list[Verdict]:
    return made.decide(batch, account, positions, NOW, allow_live=False)


def submitted(made: ExecutionCore, symbol: str = "AAPL") -> Candidate:
    """A candidate decided and reserved (the shell would now send it)."""
    wanted = candidate(symbol)
    made.claimed(wanted.execution.id)
    [verdict] = decide(made, wanted)
    assert isinstance(verdict, Submit), verdict
    return wanted


def row(wanted: Candidate, state: ExecutionState, **changes: object) -> Execution:
    """The ledger's row of a decided candidate in `state`."""
    return replace(
        wanted.execution,
        state=state,
        quantity=133,
        entry_price=D("150"),
        risk_amount=RISK,
        trading_day=TODAY,
        **changes,  # type: ignore[arg-type]
    )


def assert_empty(made: ExecutionCore) -> None:
    """Nothing reserved, nothing open, nothing working, nothing in hand."""
    book = made.book
    assert book.daily_risk_used(NOW) == 0
    assert book.open_symbols() == frozenset()
    assert book.in_flight() == 0
    assert made.working_count() == 0


# -- deciding ----------------------------------------------------------------------------------


def test_a_decision_reserves_and_counts_the_order_working() -> None:
    made = core()
    wanted = submitted(made)
    assert made.daily_risk_used(NOW) == RISK
    assert made.book.open_symbols() == {"AAPL"}
    assert made.working_count() == 1
    assert made.unfilled_value({}) == 133 * D("150")
    assert made.in_hand(wanted.execution.id)


def test_a_batch_sees_its_own_reservations_and_buying_power() -> None:
    made = core()
    # Buying power for one 19,950 position and a bit: the second is sized on what is left.
    small = replace(ACCOUNT, buying_power=D("25000"))
    first, second, duplicate = candidate("AAPL"), candidate("MSFT"), candidate("AAPL")
    verdicts = decide(made, first, second, duplicate, account=small)
    assert [type(v) for v in verdicts] == [Submit, Submit, Reject]
    a, b, c = verdicts
    assert isinstance(a, Submit) and isinstance(b, Submit) and isinstance(c, Reject)
    assert a.decision.sizing.quantity == 133
    assert b.decision.sizing.position_value <= D("25000") - a.decision.sizing.position_value
    assert c.gate == "duplicate_symbol" and c.numbers is not None
    assert c.numbers["open_positions"] == 2
    assert (
        made.daily_risk_used(NOW) == a.decision.sizing.risk_amount + b.decision.sizing.risk_amount
    )


def test_working_orders_reduce_the_next_batchs_buying_power() -> None:
    made = core()
    submitted(made, "AAPL")  # 19,950 working, unfilled
    tight = replace(ACCOUNT, buying_power=D("23000"))
    [verdict] = decide(made, candidate("MSFT"), account=tight)
    assert isinstance(verdict, Submit)
    assert verdict.decision.sizing.quantity == 20  # 3,050 left: 20 shares at 150
    # A fill the broker shows (a position) is no longer unfilled value: 20,000 left.
    [again] = decide(made, candidate("TSLA"), account=tight, positions=[Position("AAPL", 133)])
    assert isinstance(again, Submit) and again.decision.sizing.quantity == 133


def test_an_unknown_or_live_account_is_refused_without_allow_live() -> None:
    for paper in (None, False):
        made = core(paper=paper)
        [verdict] = decide(made, candidate())
        assert isinstance(verdict, Reject) and verdict.reason == LIVE_TRADING_NOT_ALLOWED
        assert verdict.gate is None
        assert_empty(made)
        [allowed] = made.decide([candidate()], ACCOUNT, (), NOW, allow_live=True)
        assert isinstance(allowed, Submit)


def test_the_broker_positions_count_as_open() -> None:
    made = core()
    [verdict] = decide(made, candidate("AAPL"), positions=[Position("aapl", -10)])
    assert isinstance(verdict, Reject) and verdict.gate == "duplicate_symbol"
    assert made.daily_risk_used(NOW) == 0


def test_an_instance_limit_returns_the_reservation_at_once() -> None:
    made = core()
    instance = InstanceRow(uuid4(), True, None, None, {"maxTradesPerDay": 1})
    facts = GuardrailFacts(instance_checked=True, instance_id=instance.id, instance=instance)
    first, second = candidate("AAPL", facts), candidate("MSFT", facts)
    verdicts = decide(made, first, second)
    assert isinstance(verdicts[0], Submit)
    refused = verdicts[1]
    assert isinstance(refused, Reject) and refused.reason.endswith("max_trades_per_day")
    assert made.daily_risk_used(NOW) == RISK  # only the first one's
    assert made.book.open_symbols() == {"AAPL"}
    assert [i.key for i in made.instance_items(instance.id, TODAY)] == [str(first.execution.id)]
    # The first one failed at the broker: its usage goes with its reservation.
    made.released(first.execution.id)
    assert list(made.instance_items(instance.id, TODAY)) == []
    assert_empty(made)


# -- every end returns the reservation exactly once ---------------------------------------------


def test_each_end_without_the_broker_releases_once() -> None:
    """Rejected, failed, not placed, held back at the wall, fenced: the shells report
    `released`; a second report of the same end, or a late poller's final word, frees nothing
    more (the budget never goes below what is really held)."""
    made = core()
    kept = submitted(made, "KEEP")
    for symbol in ("REJ", "FAIL", "NOTPL", "WALL", "FENCE"):
        gone = submitted(made, symbol)
        made.troubled(gone.execution.id, RuntimeError("the database went away"))
        made.released(gone.execution.id)
        made.released(gone.execution.id)
        made.progressed(gone.execution.id, 0, final=True)
        made.settled(row(gone, S.FAILED))
        assert made.daily_risk_used(NOW) == RISK, symbol
        assert made.book.open_symbols() == {"KEEP"}, symbol
        assert not made.in_hand(gone.execution.id)
        assert made.take_trouble(gone.execution.id) is None
    assert made.working_count() == 1
    made.released(kept.execution.id)
    assert_empty(made)


def test_cancelled_without_a_fill_returns_the_risk_and_with_one_keeps_it() -> None:
    made = core()
    empty, filled = submitted(made, "EMPTY"), submitted(made, "FILL")
    made.placed(empty.execution.id)
    made.placed(filled.execution.id)
    made.progressed(filled.execution.id, 50, final=False)
    assert made.unfilled_value({}) == (133 + 83) * D("150")
    made.progressed(empty.execution.id, 0, final=True)
    made.progressed(filled.execution.id, 60, final=True)
    assert made.daily_risk_used(NOW) == RISK  # the filled one's, on its day
    assert made.book.open_symbols() == {"FILL"}  # a position until the next broker snapshot
    assert made.working_count() == 0
    made.progressed(empty.execution.id, 0, final=True)  # a repeated final: nothing more
    assert made.daily_risk_used(NOW) == RISK
    decide(made, candidate("OTHER"), positions=[])  # the snapshot shows no FILL position
    assert "FILL" not in made.book.open_symbols()
    assert made.daily_risk_used(NOW) == 2 * RISK  # FILL's risk stays on today's budget


def test_a_dry_run_holds_risk_and_symbol_for_its_day() -> None:
    made = core()
    dry = submitted(made)
    made.held_for_day(dry.execution.id)
    made.released(dry.execution.id)  # nothing live to release any more
    assert made.daily_risk_used(NOW) == RISK
    assert made.book.is_open("AAPL")
    assert made.working_count() == 0


def test_unknown_keeps_the_risk_until_an_operator_resolves_it() -> None:
    made = core()
    lost = submitted(made)
    made.lost_track(lost.execution.id)
    assert not made.in_hand(lost.execution.id)
    assert made.daily_risk_used(NOW) == RISK and made.book.is_open("AAPL")
    # `resolve ... cancelled` with no fill: the risk is returned, once.
    assert made.settled(row(lost, S.CANCELLED)) is False
    made.settled(row(lost, S.CANCELLED))
    assert_empty(made)


def test_resolved_filled_keeps_the_risk_and_working_is_followed_again() -> None:
    made = core()
    filled, working = submitted(made, "FILL"), submitted(made, "WORK")
    made.lost_track(filled.execution.id)
    made.lost_track(working.execution.id)
    assert made.settled(row(filled, S.FILLED)) is False  # a fill count may be missing
    assert made.settled(row(working, S.SUBMITTED)) is True
    assert made.daily_risk_used(NOW) == 2 * RISK
    assert made.book.in_flight() == 1


def test_halted_at_the_decide_step_and_at_the_wall() -> None:
    made = core()
    before = submitted(made, "SENT")  # decided before the halt, waiting for the pacer
    assert made.control(True, "operator") == ControlApplied(True, TradingState())
    [verdict] = decide(made, candidate("LATE"))
    assert isinstance(verdict, Reject) and verdict.reason == "halted"
    assert verdict.numbers == {"halt_reason": "operator"}
    # The wall held `SENT` back: recorded `rejected: halted`, reported released.
    made.released(before.execution.id)
    assert_empty(made)
    assert made.control(True, "operator") == ControlApplied(False, TradingState(True, "operator"))


# -- recovery and the deadline scan -------------------------------------------------------------


def test_recovered_from_the_ledger_then_each_leftover_ends_once() -> None:
    made = core()
    submitting = row(candidate("SUB"), S.SUBMITTING)
    working = row(candidate("WORK"), S.SUBMITTED, filled_qty=10)
    received = row(candidate("RECV"), S.RECEIVED)
    done = row(candidate("DONE"), S.FILLED, filled_qty=133)
    open_rows = [submitting, working, received]
    made.recovered([done, *open_rows], open_rows, NOW, TradingState(False, None))
    assert made.daily_risk_used(NOW) == 3 * RISK  # a `received` row holds nothing
    assert made.book.open_symbols() == {"SUB", "WORK"}
    assert made.working_count() == 2
    assert made.unfilled_value({}) == (133 + 123) * D("150")
    # The intent a crash left behind, proven never sent, goes back to `received`...
    made.retried_unsent(submitting.id)
    made.retried_unsent(submitting.id)
    assert made.daily_risk_used(NOW) == 2 * RISK
    # ... and is decided again, reserving afresh: one reservation, not two.
    again = Candidate(replace(submitting, state=S.RECEIVED), candidate("SUB").valid, 0.0)
    [verdict] = decide(made, again)
    assert isinstance(verdict, Submit)
    assert made.daily_risk_used(NOW) == 3 * RISK
    # The deadline scan decides a `received` row again: an earlier reservation is dropped.
    made.redeciding(again.execution.id)
    assert made.daily_risk_used(NOW) == 2 * RISK and made.in_hand(again.execution.id)
    made.progressed(working.id, 133, final=True)
    assert made.daily_risk_used(NOW) == 2 * RISK and made.working_count() == 0


def test_recovery_applies_the_kill_switch_and_entered_is_idempotent() -> None:
    made = core()
    made.recovered([], [], NOW, TradingState(True, "operator"))
    assert made.halted
    late = row(candidate("LATE"), S.SUBMITTING)
    made.entered(late, NOW)
    made.entered(late, NOW)
    assert made.daily_risk_used(NOW) == RISK and made.working_count() == 1
    assert made.orphans(set()) == {late.id}
    assert made.orphans({late.id}) == frozenset()
    made.claimed(late.id)
    assert made.orphans(set()) == frozenset()  # in hand: the scan leaves it


def test_a_fill_found_after_cancel_counts_its_risk_again_once() -> None:
    made = core()
    cancelled = submitted(made)
    made.placed(cancelled.execution.id)
    made.progressed(cancelled.execution.id, 0, final=True)
    assert made.daily_risk_used(NOW) == 0
    corrected = row(cancelled, S.CANCELLED, filled_qty=40)
    assert made.fill_corrected(corrected, previous_filled_qty=0)
    assert made.fill_corrected(corrected, previous_filled_qty=0)
    assert made.daily_risk_used(NOW) == RISK
    assert not made.fill_corrected(corrected, previous_filled_qty=40)  # not news for the risk


def test_realized_pnl_is_a_running_total() -> None:
    made = core()
    execution_id = uuid4()
    assert made.exited(execution_id, D("-100"), TODAY, NOW) == D("-100")
    assert made.exited(execution_id, D("-250"), TODAY, NOW) == D("-250")
    assert made.exited(uuid4(), D("50"), TODAY, NOW) == D("-200")


# -- the circuit breaker and the kill switch ----------------------------------------------------


def test_the_breaker_halts_once_and_holds_until_written() -> None:
    made = core(max_failures=2)
    assert made.failure("bridge_unavailable") is None
    trip = made.failure("bridge_unavailable")
    assert isinstance(trip, Trip) and trip.failures == 2
    assert made.halted and made.holds_halt
    assert made.failure("again") is None  # tripped: nothing more to carry out
    assert made.control(False, None) is None  # a stale "running" read: ignored
    assert made.halted
    made.halt_written()
    assert made.control(True, trip.reason) == ControlApplied(False, made.trading_state)
    resumed = made.control(False, None)
    assert resumed is not None and resumed.changed and not made.halted
    assert made.breaker.failures == 0 and not made.breaker.tripped


def test_a_placed_order_breaks_the_run_of_failures() -> None:
    made = core(max_failures=2)
    sent = submitted(made)
    made.failure("x")
    made.placed(sent.execution.id)
    assert made.failure("x") is None
    assert made.status_lost(sent.execution.id, 0, "lost") is not None
    assert made.daily_risk_used(NOW) == RISK  # an `unknown` keeps its risk


def test_a_restored_trip_halts_unless_the_switch_is_set() -> None:
    for halted, expected in ((False, True), (True, False)):
        made = core()
        breaker = Breaker(3)
        trip = Trip(3, "three in a row")
        carried = made.breaker_restored(breaker, trip, halted)
        assert (carried is not None) is expected
        assert made.breaker is breaker
        assert made.halted is expected and made.holds_halt is expected


# -- any sequence of events keeps the tallies consistent ----------------------------------------


class CoreMachine(RuleBasedStateMachine):
    """Random lives of executions against a model of what each holds: the budget used is the sum
    of the risk held, never more, never less, whatever order the events come in."""

    def __init__(self) -> None:
        super().__init__()
        self.core = core(max_failures=0, max_open_positions=50, max_daily_loss=D("1000000"))
        self.held: dict[UUID, Decimal] = {}  # risk each execution holds in the model
        self.working: set[UUID] = set()
        self.symbols = 0

    def _ids(self) -> list[UUID]:
        return list(self.held)  # in the order decided (uuids are random: never sorted)

    def _working(self) -> list[UUID]:
        return [i for i in self.held if i in self.working]

    @rule()
    def decide_one(self) -> None:
        self.symbols += 1
        wanted = candidate(f"S{self.symbols}")
        [verdict] = decide(self.core, wanted, account=RICH)
        assert isinstance(verdict, Submit)
        self.held[wanted.execution.id] = verdict.decision.sizing.risk_amount
        self.working.add(wanted.execution.id)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), kind=st.sampled_from(["released", "cancelled", "failed_twice"]))
    def end_without_a_fill(self, data: st.DataObject, kind: str) -> None:
        execution_id = data.draw(st.sampled_from(self._ids()))
        if kind == "cancelled":
            self.core.progressed(execution_id, 0, final=True)
        else:
            self.core.released(execution_id)
            if kind == "failed_twice":
                self.core.released(execution_id)
        # Only a live reservation is returned: a dry run's or a fill's risk stays.
        if execution_id in self.working:
            del self.held[execution_id]
            self.working.discard(execution_id)

    @precondition(lambda self: self.working)
    @rule(data=st.data(), filled=st.integers(1, 133))
    def filled(self, data: st.DataObject, filled: int) -> None:
        execution_id = data.draw(st.sampled_from(self._working()))
        self.core.placed(execution_id)
        self.core.progressed(execution_id, filled, final=True)
        self.working.discard(execution_id)  # its risk stays held for the day

    @precondition(lambda self: self.working)
    @rule(data=st.data())
    def dry_run(self, data: st.DataObject) -> None:
        execution_id = data.draw(st.sampled_from(self._working()))
        self.core.held_for_day(execution_id)
        self.working.discard(execution_id)

    @precondition(lambda self: self.working)
    @rule(data=st.data())
    def unknown(self, data: st.DataObject) -> None:
        execution_id = data.draw(st.sampled_from(self._working()))
        self.core.lost_track(execution_id)  # still live: its risk and symbol stay

    @invariant()
    def the_budget_is_what_is_held(self) -> None:
        assert self.core.daily_risk_used(NOW) == sum(self.held.values(), D(0))

    @invariant()
    def live_is_what_is_working(self) -> None:
        assert self.core.book.live_ids() == self.working


TestCoreMachine = CoreMachine.TestCase
TestCoreMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


def test_each_written_kill_switch_state_is_acknowledged_once() -> None:
    made = core()
    at = datetime(2024, 3, 8, 15, 0, tzinfo=UTC)
    first = made.control(True, "operator", at)
    assert first is not None and first.acknowledge
    again = made.control(True, "operator", at)  # the next sweep reads the same row
    assert again is not None and not again.acknowledge and not again.changed
    made.acknowledge_failed()  # the write failed: the next reading acknowledges it
    retried = made.control(True, "operator", at)
    assert retried is not None and retried.acknowledge
    unstamped = made.control(True, "operator")
    assert unstamped is not None and not unstamped.acknowledge


def test_a_second_hint_of_an_approval_being_prepared_is_dropped() -> None:
    made = core()
    key = uuid4()
    assert made.approval_seen(key)
    assert not made.approval_seen(key)
    made.approval_prepared(key)
    assert made.approval_seen(key)
