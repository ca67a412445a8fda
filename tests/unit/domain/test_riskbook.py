"""The RiskBook: reserve/commit/release/finish, the trading day, restore, and its two guarantees
(never more than MAX_OPEN_POSITIONS, never more than MAX_DAILY_LOSS), also under concurrency."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import anyio
import anyio.lowlevel
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trade_executor.domain.models import Account, Action
from trade_executor.domain.riskbook import Decision, Halted, Reservation, RiskBook, TradingState
from trade_executor.domain.sizing import RiskGate, RiskLimits, RiskRejection
from trade_executor.domain.validation import ValidSignal

# The core's tests run on trio too (tests/conftest.py, `both_backends`).
pytestmark = pytest.mark.both_backends

D = Decimal
NY = ZoneInfo("America/New_York")
LIMITS = RiskLimits(
    max_risk_per_trade=D("0.01"),
    min_position_size=1,
    max_position_size=1000,
    max_position_value_pct=D("0.20"),
    max_open_positions=5,
    max_daily_loss=D("1000.0"),
)
ACCOUNT = Account("DU1", net_liquidation=D("100000"), buying_power=D("100000"))
# Friday 2024-03-08, 11:00 in New York (EST, UTC-5).
NOW = datetime(2024, 3, 8, 16, 0, tzinfo=UTC)


def book(**limits: object) -> RiskBook:
    return RiskBook(replace(LIMITS, **limits), NY)  # type: ignore[arg-type]


def sig(symbol: str = "AAPL", entry: str = "150", stop: str = "145") -> ValidSignal:
    return ValidSignal(uuid4(), symbol, Action.BUY, D(entry), D(stop), D(entry) * 2, None, None)


def granted(rb: RiskBook, signal: ValidSignal, now: datetime = NOW) -> Decision:
    result = rb.decide(uuid4(), signal, ACCOUNT, now)
    assert isinstance(result, Decision), result
    return result


def refused(rb: RiskBook, signal: ValidSignal, now: datetime = NOW) -> RiskGate:
    result = rb.decide(uuid4(), signal, ACCOUNT, now)
    assert isinstance(result, RiskRejection), result
    return result.gate


def test_decide_sizes_and_reserves() -> None:
    rb = book()
    decision = granted(rb, sig())
    assert decision.sizing.quantity == 133
    assert decision.reservation == Reservation(
        decision.reservation.execution_id, "AAPL", D("665.00"), date(2024, 3, 8)
    )
    assert rb.open_symbols() == {"AAPL"}
    assert rb.in_flight() == 1
    assert rb.daily_risk_used(NOW) == D("665.00")
    assert rb.daily_risk_left(NOW) == D("335.00")


def test_duplicate_symbol_in_flight_or_at_the_broker() -> None:
    rb = book()
    granted(rb, sig("AAPL"))
    assert refused(rb, sig("AAPL")) is RiskGate.DUPLICATE_SYMBOL
    rb.set_broker_positions([" msft ", ""])
    assert rb.open_symbols() == {"AAPL", "MSFT"}
    assert refused(rb, sig("MSFT")) is RiskGate.DUPLICATE_SYMBOL


def test_max_open_positions_counts_positions_and_orders_in_flight() -> None:
    rb = book(max_open_positions=3, max_daily_loss=D(100_000))
    rb.set_broker_positions(["IBM", "KO"])
    granted(rb, sig("AAPL"))
    assert refused(rb, sig("MSFT")) is RiskGate.MAX_OPEN_POSITIONS
    rb.set_broker_positions(["IBM"])  # KO was closed
    granted(rb, sig("MSFT"))


def test_release_frees_risk_and_symbol() -> None:
    rb = book()
    decision = granted(rb, sig())
    rb.release(decision.reservation.execution_id)
    assert rb.open_symbols() == frozenset()
    assert (rb.in_flight(), rb.daily_risk_used(NOW)) == (0, D(0))
    granted(rb, sig())  # the symbol and the budget are free again


def test_commit_keeps_risk_and_symbol_and_is_idempotent() -> None:
    rb = book()
    execution_id = granted(rb, sig()).reservation.execution_id
    rb.commit(execution_id)
    rb.commit(execution_id)
    assert rb.open_symbols() == {"AAPL"}
    assert (rb.in_flight(), rb.daily_risk_used(NOW)) == (1, D("665.00"))


def test_unknown_ids_are_ignored() -> None:
    rb = book()
    granted(rb, sig())
    stranger = uuid4()
    rb.commit(stranger)
    rb.release(stranger)
    rb.finish(stranger, filled_qty=10)
    assert (rb.in_flight(), rb.daily_risk_used(NOW), rb.open_symbols()) == (
        1,
        D("665.00"),
        frozenset({"AAPL"}),
    )


def test_finish_with_a_fill_keeps_the_risk_and_the_position() -> None:
    rb = book()
    execution_id = granted(rb, sig()).reservation.execution_id
    rb.commit(execution_id)
    rb.finish(execution_id, filled_qty=50)
    rb.finish(execution_id, filled_qty=50)  # a repeat changes nothing
    assert rb.in_flight() == 0
    assert rb.open_symbols() == {"AAPL"}  # a position now, until the next broker snapshot
    assert rb.daily_risk_used(NOW) == D("665.00")
    assert refused(rb, sig("AAPL")) is RiskGate.DUPLICATE_SYMBOL
    rb.set_broker_positions([])  # e.g. the stop-loss already closed it
    assert rb.open_symbols() == frozenset()
    assert rb.daily_risk_used(NOW) == D("665.00")  # the risk was taken today all the same
    rb.commit(execution_id)
    rb.release(execution_id)  # too late to free: it is settled
    assert rb.daily_risk_used(NOW) == D("665.00")


def test_finish_without_a_fill_returns_the_risk() -> None:
    rb = book()
    execution_id = granted(rb, sig()).reservation.execution_id
    rb.commit(execution_id)
    rb.finish(execution_id, filled_qty=0)
    assert (rb.in_flight(), rb.daily_risk_used(NOW), rb.open_symbols()) == (0, D(0), frozenset())


def test_an_id_is_held_once() -> None:
    rb = book()
    execution_id = uuid4()
    rb.reserve(execution_id, "AAPL", D(10), NOW)
    with pytest.raises(ValueError, match="already"):
        rb.reserve(execution_id, "MSFT", D(10), NOW)
    with pytest.raises(ValueError):
        rb.decide(execution_id, sig("MSFT"), ACCOUNT, NOW)
    with pytest.raises(ValueError):
        rb.restore(execution_id, "AAPL", D(10), date(2024, 3, 8), working=True)
    assert (rb.in_flight(), rb.open_symbols()) == (1, frozenset({"AAPL"}))


def test_daily_budget_shrinks_then_rejects() -> None:
    rb = book()
    first = granted(rb, sig("AAPL"))
    second = granted(rb, sig("MSFT"))  # only 335.00 left: 67 shares at a 5.00 distance
    assert (second.sizing.quantity, second.sizing.binding) == (67, "max_daily_loss")
    assert rb.daily_risk_left(NOW) == 0
    assert refused(rb, sig("IBM")) is RiskGate.MAX_DAILY_LOSS
    rb.release(first.reservation.execution_id)
    assert granted(rb, sig("IBM")).sizing.quantity == 133


# -- the trading day ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("utc", "day"),
    [
        (datetime(2024, 3, 9, 4, 59, 59), date(2024, 3, 8)),  # 23:59:59 EST
        (datetime(2024, 3, 9, 5, 0), date(2024, 3, 9)),  # midnight EST
        # Spring forward (2024-03-10): the next midnight is 04:00 UTC.
        (datetime(2024, 3, 11, 3, 59, 59), date(2024, 3, 10)),
        (datetime(2024, 3, 11, 4, 0), date(2024, 3, 11)),
        # Fall back (2024-11-03): that day starts at 04:00 UTC and lasts 25 hours.
        (datetime(2024, 11, 3, 3, 59, 59), date(2024, 11, 2)),
        (datetime(2024, 11, 3, 4, 0), date(2024, 11, 3)),
        (datetime(2024, 11, 4, 4, 59, 59), date(2024, 11, 3)),
        (datetime(2024, 11, 4, 5, 0), date(2024, 11, 4)),
    ],
)
def test_trading_day_in_new_york(utc: datetime, day: date) -> None:
    rb = book()
    assert rb.trading_day(utc.replace(tzinfo=UTC)) == day
    assert rb.trading_day(utc) == day  # naive = UTC
    assert rb.trading_day(utc.replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo"))) == day


def test_the_budget_is_fresh_at_midnight_in_new_york() -> None:
    rb = book()
    before_midnight = datetime(2024, 3, 9, 4, 59, tzinfo=UTC)  # Friday 23:59 in New York
    midnight = datetime(2024, 3, 9, 5, 0, tzinfo=UTC)
    late = granted(rb, sig("AAPL"), before_midnight)
    assert late.reservation.trading_day == date(2024, 3, 8)
    granted(rb, sig("MSFT"), before_midnight)
    assert refused(rb, sig("IBM"), before_midnight) is RiskGate.MAX_DAILY_LOSS
    # Committed after midnight, the late order still counts on the day it was reserved.
    rb.commit(late.reservation.execution_id)
    assert rb.daily_risk_used(midnight) == 0
    assert rb.daily_risk_left(midnight) == D("1000.0")
    assert granted(rb, sig("IBM"), midnight).sizing.quantity == 133
    assert rb.daily_risk_used(before_midnight) == D("1000.00")


def test_restore() -> None:
    rb = book()
    today, yesterday = date(2024, 3, 8), date(2024, 3, 7)
    rb.restore(uuid4(), "aapl", D("400"), today, working=True)
    rb.restore(uuid4(), "MSFT", D("300"), today, working=False)
    rb.restore(uuid4(), "IBM", D("900"), yesterday, working=True)
    assert rb.open_symbols() == {"AAPL", "IBM"}
    assert rb.in_flight() == 2
    assert rb.daily_risk_used(NOW) == D("700")
    settled = uuid4()
    rb.restore(settled, "KO", D("1"), yesterday, working=False)
    with pytest.raises(ValueError):  # the same ledger row twice would count twice
        rb.restore(settled, "KO", D("1"), yesterday, working=False)
    assert granted(rb, sig("KO", "20", "18")).sizing.quantity == 150  # 300 left


# -- concurrency --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_concurrent_decisions_grant_exactly_max_open_positions() -> None:
    rb = book(max_open_positions=3, max_daily_loss=D(1_000_000))
    start = anyio.Event()
    outcomes: list[Decision | RiskRejection | Halted] = []

    async def submit(symbol: str) -> None:
        await start.wait()
        await anyio.lowlevel.checkpoint()
        execution_id = uuid4()
        result = rb.decide(execution_id, sig(symbol), ACCOUNT, NOW)
        outcomes.append(result)
        if isinstance(result, Decision):
            await anyio.lowlevel.checkpoint()  # the broker call: others decide meanwhile
            rb.commit(execution_id)

    async with anyio.create_task_group() as tg:
        for n in range(12):
            tg.start_soon(submit, f"SYM{n}")
        start.set()

    decisions = [o for o in outcomes if isinstance(o, Decision)]
    rejections = [o for o in outcomes if isinstance(o, RiskRejection)]
    assert len(decisions) == 3
    assert {r.gate for r in rejections} == {RiskGate.MAX_OPEN_POSITIONS}
    assert len(rejections) == 9
    assert rb.in_flight() == 3
    assert len(rb.open_symbols()) == 3


# -- the daily budget under any sequence --------------------------------------------------------

SYMBOLS = ["AAPL", "MSFT", "IBM", "KO", "PEP", "XOM", "F"]


class RiskBookMachine(RuleBasedStateMachine):
    """Random decide/commit/release/finish/snapshot sequences across trading days."""

    def __init__(self) -> None:
        super().__init__()
        self.limits = replace(LIMITS, max_risk_per_trade=D("0.004"), max_open_positions=4)
        self.book = RiskBook(self.limits, NY)
        self.now = NOW
        self.ids: list[UUID] = []
        self.moments: list[datetime] = [NOW]

    @rule(
        symbol=st.sampled_from(SYMBOLS),
        entry=st.decimals(min_value=D("1"), max_value=D("500"), places=2),
        distance=st.decimals(min_value=D("0.01"), max_value=D("30"), places=2),
        minutes=st.sampled_from([0, 0, 0, 5, 90, 600]),
    )
    def decide(self, symbol: str, entry: Decimal, distance: Decimal, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        self.moments.append(self.now)
        stop = max(entry - distance, D("0.01"))
        execution_id = uuid4()
        result = self.book.decide(
            execution_id, sig(symbol, str(entry), str(stop)), ACCOUNT, self.now
        )
        if isinstance(result, Decision):
            assert result.sizing.risk_amount <= self.limits.max_daily_loss
            self.ids.append(execution_id)

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        self.book.commit(data.draw(st.sampled_from(self.ids)))

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        self.book.release(data.draw(st.sampled_from(self.ids)))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), filled=st.sampled_from([0, 0, 1, 100]))
    def finish(self, data: st.DataObject, filled: int) -> None:
        self.book.finish(data.draw(st.sampled_from(self.ids)), filled_qty=filled)

    @rule(symbols=st.sets(st.sampled_from(SYMBOLS), max_size=3))
    def broker_snapshot(self, symbols: set[str]) -> None:
        self.book.set_broker_positions(symbols)

    @invariant()
    def daily_budget_is_never_exceeded(self) -> None:
        for moment in self.moments:
            used = self.book.daily_risk_used(moment)
            assert 0 <= used <= self.limits.max_daily_loss
            assert self.book.daily_risk_left(moment) == self.limits.max_daily_loss - used

    @invariant()
    def orders_in_flight_respect_the_position_limit(self) -> None:
        assert self.book.in_flight() <= self.limits.max_open_positions


RiskBookMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None
)
TestRiskBookSequences = RiskBookMachine.TestCase


# -- the realized-loss limit and the trading state ------------------------------------------------


def test_realized_losses_reaching_the_limit_reject_new_entries() -> None:
    rb = book(max_daily_realized_loss=Decimal("1000"))
    day = rb.trading_day(NOW)
    rb.set_realized(uuid4(), Decimal("-665.00"), day)
    granted(rb, sig("AAPL"))
    rb.set_realized(uuid4(), Decimal("-335.00"), day)
    assert rb.realized_pnl(NOW) == Decimal("-1000.00")
    assert refused(rb, sig("MSFT")) is RiskGate.MAX_DAILY_REALIZED_LOSS


def test_realized_pnl_is_net_replaced_per_execution_and_per_day() -> None:
    rb = book(max_daily_realized_loss=Decimal("500"))
    day = rb.trading_day(NOW)
    loser, winner = uuid4(), uuid4()
    rb.set_realized(loser, Decimal("-300"), day)
    rb.set_realized(loser, Decimal("-600"), day)  # a later partial exit: the running total
    rb.set_realized(winner, Decimal("200"), day)
    assert rb.realized_pnl(NOW) == Decimal("-400")
    granted(rb, sig("AAPL"))  # net -400 has not reached -500
    rb.set_realized(uuid4(), Decimal("-900"), day - timedelta(days=1))  # yesterday's
    assert rb.realized_pnl(NOW) == Decimal("-400")


def test_the_realized_loss_limit_off_by_default() -> None:
    rb = book()
    rb.set_realized(uuid4(), Decimal("-1000000"), rb.trading_day(NOW))
    granted(rb, sig("AAPL"))


def test_a_halted_book_refuses_everything_until_resumed() -> None:
    rb = book()
    assert rb.set_trading_state(TradingState(True, "maintenance"))
    assert not rb.set_trading_state(TradingState(True, "maintenance"))  # no change
    halted = rb.decide(uuid4(), sig(), ACCOUNT, NOW)
    assert isinstance(halted, Halted) and halted.reason == "halted"
    assert rb.in_flight() == 0
    rb.set_trading_state(TradingState())
    granted(rb, sig())
