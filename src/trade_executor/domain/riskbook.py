"""The RiskBook: the one consistent risk state (CONTRACT section 5), owned by the executor actor.

It has a single owner, so it needs no locks and its methods are synchronous: a decision and its
reservation happen without a checkpoint in between, which is what makes concurrent submissions
unable to oversubscribe MAX_OPEN_POSITIONS or MAX_DAILY_LOSS.

It also owns the trading state (NautilusTrader's RiskEngine does the same): while halted, every
decision is refused `halted`, so the kill switch is one more gate that every order passes through.

An execution's life here: `reserve` (risk held, symbol in flight) -> `commit` (the broker took
it) -> `finish` (its order is final), or `release` at any point (the broker did not take it).
Risk is booked on the trading day of its reservation, in the trading-day time zone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from trade_executor.domain.sizing import (
    RiskGate,
    RiskLimits,
    RiskRejection,
    Sizing,
    size_position,
)

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from trade_executor.domain.models import Account
    from trade_executor.domain.validation import ValidSignal


@dataclass(frozen=True, slots=True)
class Reservation:
    execution_id: UUID
    symbol: str
    risk_amount: Decimal
    trading_day: date


@dataclass(frozen=True, slots=True)
class Decision:
    reservation: Reservation
    sizing: Sizing


@dataclass(frozen=True, slots=True)
class _Live:
    """An execution whose symbol is in flight: reserved, or committed and working."""

    reservation: Reservation
    # Reserved and committed risk count alike against the budget (a reservation must block the
    # budget before the broker answers); the flag only records that the broker has the order.
    committed: bool = False


@dataclass(frozen=True, slots=True)
class Halted:
    """The kill switch is set: no new order, whatever the limits say."""

    detail: str | None = None

    @property
    def reason(self) -> str:
        return "halted"


@dataclass(frozen=True, slots=True)
class TradingState:
    halted: bool = False
    reason: str | None = None


def _normal(symbol: str) -> str:
    return symbol.strip().upper()


class RiskBook:
    def __init__(self, limits: RiskLimits, timezone: ZoneInfo) -> None:
        self.limits = limits
        self.timezone = timezone
        self._broker: frozenset[str] = frozenset()
        self._filled: set[str] = set()  # filled since the last broker snapshot
        self._live: dict[UUID, _Live] = {}
        # Finished executions whose risk stays committed, kept by id so a repeated restore cannot
        # count twice; pruned once their day is over (see `_prune`).
        self._settled: dict[UUID, Reservation] = {}
        # Running totals, so that a decision costs the same with 10 or 10,000 open executions.
        self._live_symbols: Counter[str] = Counter()
        # Symbols held until the end of their trading day without an order (dry runs), by day.
        self._day_held: dict[date, Counter[str]] = {}
        self._day_risk: dict[date, Decimal] = {}
        self._pruned_on: date | None = None
        self.trading_state = TradingState()
        # Realized P&L by execution (its latest total) and its trading day: exits report their
        # running total, so a repeated report replaces rather than adds.
        self._realized: dict[UUID, tuple[date, Decimal]] = {}
        self._realized_by_day: dict[date, Decimal] = {}

    @property
    def halted(self) -> bool:
        return self.trading_state.halted

    def set_trading_state(self, state: TradingState) -> bool:
        """Halt or resume; True if this changed anything (a new reason counts as a change)."""
        changed = state != self.trading_state
        self.trading_state = state
        return changed

    def trading_day(self, now: datetime) -> date:
        """The date in the trading-day time zone (naive `now` is taken as UTC)."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return now.astimezone(self.timezone).date()

    def set_broker_positions(self, symbols: Iterable[str]) -> None:
        """Symbols with a non-zero position at the broker; replaces the previous snapshot."""
        self._broker = frozenset(_normal(s) for s in symbols if s.strip())
        self._filled.clear()

    def open_symbols(self) -> frozenset[str]:
        """Broker positions, fills since the snapshot, symbols of executions in flight, and
        symbols held for the day (dry runs)."""
        return self._broker | self._filled | self._live_symbols.keys() | self._day_symbols()

    def open_count(self) -> int:
        """len(open_symbols()), without building the union of every symbol in flight."""
        held = self._broker | self._filled | self._day_symbols()
        return len(self._live_symbols) + sum(1 for s in held if s not in self._live_symbols)

    def is_open(self, symbol: str) -> bool:
        symbol = _normal(symbol)
        return (
            symbol in self._live_symbols
            or symbol in self._broker
            or symbol in self._filled
            or any(symbol in held for held in self._day_held.values())
        )

    def _day_symbols(self) -> frozenset[str]:
        if not self._day_held:
            return frozenset()
        return frozenset(s for held in self._day_held.values() for s in held)

    def knows(self, execution_id: UUID) -> bool:
        """Whether the execution is in the book (in flight, or settled with its risk kept)."""
        return execution_id in self._live or execution_id in self._settled

    def live_ids(self) -> frozenset[UUID]:
        """The executions in flight (reserved, or committed and not yet finished)."""
        return frozenset(self._live)

    def in_flight(self) -> int:
        return len(self._live)

    def daily_risk_used(self, now: datetime) -> Decimal:
        """Risk reserved or committed on the trading day of `now`."""
        return self._day_risk.get(self.trading_day(now), Decimal(0))

    def daily_risk_left(self, now: datetime) -> Decimal | None:
        """What is left of today's budget; None when MAX_DAILY_LOSS is off (0)."""
        return self.limits.daily_risk_left(self.daily_risk_used(now))

    def decide(
        self, execution_id: UUID, signal: ValidSignal, account: Account, now: datetime
    ) -> Decision | RiskRejection | Halted:
        """Check the trading state and the position gates, size the trade and reserve its risk,
        all in one step."""
        if self.trading_state.halted:
            return Halted(self.trading_state.reason)
        self._prune(now)
        loss_cap = self.limits.daily_realized_loss_cap
        realized = self.realized_pnl(now)
        if loss_cap is not None and realized <= -loss_cap:
            return RiskRejection(
                RiskGate.MAX_DAILY_REALIZED_LOSS,
                f"realized P&L today {realized} reached the limit of -{loss_cap}",
            )
        if self.is_open(signal.symbol):
            return RiskRejection(RiskGate.DUPLICATE_SYMBOL, f"{signal.symbol} is already open")
        open_count = self.open_count()
        cap = self.limits.open_positions_cap
        if cap is not None and open_count >= cap:
            return RiskRejection(
                RiskGate.MAX_OPEN_POSITIONS,
                f"{open_count} positions open or in flight (max {cap})",
            )
        sizing = size_position(
            signal.entry, signal.stop, account, self.limits, self.daily_risk_left(now)
        )
        if isinstance(sizing, RiskRejection):
            return sizing
        reservation = self.reserve(execution_id, signal.symbol, sizing.risk_amount, now)
        return Decision(reservation, sizing)

    def set_realized(self, execution_id: UUID, total_pnl: Decimal, trading_day: date) -> None:
        """An execution's realized P&L so far (its exits' running total), booked on the trading
        day of its exit. Net of gains: MAX_DAILY_REALIZED_LOSS gates what was banked today."""
        previous = self._realized.get(execution_id)
        if previous is not None:
            day, amount = previous
            self._realized_by_day[day] = self._realized_by_day.get(day, Decimal(0)) - amount
        self._realized[execution_id] = (trading_day, total_pnl)
        self._realized_by_day[trading_day] = (
            self._realized_by_day.get(trading_day, Decimal(0)) + total_pnl
        )

    def realized_pnl(self, now: datetime) -> Decimal:
        """Net realized P&L booked on the trading day of `now`."""
        return self._realized_by_day.get(self.trading_day(now), Decimal(0))

    def reserve(
        self, execution_id: UUID, symbol: str, risk_amount: Decimal, now: datetime
    ) -> Reservation:
        """Hold `risk_amount` on today's budget and put `symbol` in flight."""
        self._check_new(execution_id)
        reservation = Reservation(execution_id, _normal(symbol), risk_amount, self.trading_day(now))
        self._add_live(_Live(reservation))
        return reservation

    def commit(self, execution_id: UUID) -> None:
        """The broker accepted the order: its risk is committed; the symbol stays in flight."""
        live = self._live.get(execution_id)
        if live is not None:
            self._live[execution_id] = replace(live, committed=True)

    def release(self, execution_id: UUID) -> None:
        """The broker did not take the order (rejected, failed, dry run): free risk and symbol."""
        live = self._pop_live(execution_id)
        if live is not None:
            self._add_risk(live.reservation, -1)

    def hold_for_day(self, execution_id: UUID) -> None:
        """A dry run: what live would have done stays done for the day. Its risk stays on its
        trading day's budget and its symbol open until that day ends, with no order to follow."""
        live = self._pop_live(execution_id)
        if live is None:
            return
        self._settled[execution_id] = live.reservation
        self._hold_symbol(live.reservation)

    def _hold_symbol(self, reservation: Reservation) -> None:
        self._day_held.setdefault(reservation.trading_day, Counter())[reservation.symbol] += 1

    def finish(self, execution_id: UUID, *, filled_qty: int) -> None:
        """The order reached a final state. With a fill the risk stays committed and the symbol
        counts as a position until the next broker snapshot; without one the risk is returned."""
        live = self._pop_live(execution_id)
        if live is None:
            return
        if filled_qty <= 0:
            self._add_risk(live.reservation, -1)
            return
        self._settled[execution_id] = live.reservation
        self._filled.add(live.reservation.symbol)

    def restore(
        self,
        execution_id: UUID,
        symbol: str,
        risk_amount: Decimal,
        trading_day: date,
        *,
        working: bool,
        held_for_day: bool = False,
    ) -> None:
        """At start-up, re-enter an execution from the ledger with its risk committed on
        `trading_day`; `working=True` keeps its symbol in flight; `held_for_day=True` (a dry
        run) keeps it open until `trading_day` ends."""
        self._check_new(execution_id)
        reservation = Reservation(execution_id, _normal(symbol), risk_amount, trading_day)
        if working:
            self._add_live(_Live(reservation, committed=True))
        else:
            self._settled[execution_id] = reservation
            self._add_risk(reservation, +1)
            if held_for_day:
                self._hold_symbol(reservation)

    def _add_live(self, live: _Live) -> None:
        self._live[live.reservation.execution_id] = live
        self._live_symbols[live.reservation.symbol] += 1
        self._add_risk(live.reservation, +1)

    def _pop_live(self, execution_id: UUID) -> _Live | None:
        live = self._live.pop(execution_id, None)
        if live is not None:
            symbol = live.reservation.symbol
            self._live_symbols[symbol] -= 1
            if self._live_symbols[symbol] <= 0:
                del self._live_symbols[symbol]
        return live

    def _add_risk(self, reservation: Reservation, sign: int) -> None:
        day = reservation.trading_day
        self._day_risk[day] = self._day_risk.get(day, Decimal(0)) + sign * reservation.risk_amount

    def _check_new(self, execution_id: UUID) -> None:
        if execution_id in self._live or execution_id in self._settled:
            raise ValueError(f"execution {execution_id} is already in the risk book")

    def _prune(self, now: datetime) -> None:
        # Settled risk only matters for its own day; keep yesterday's in case clocks disagree.
        # Once a day is enough (decisions call this; a scan each time would cost O(n)).
        today = self.trading_day(now)
        if today == self._pruned_on:
            return
        self._pruned_on = today
        horizon = today - timedelta(days=1)
        for key in [k for k, r in self._settled.items() if r.trading_day < horizon]:
            self._add_risk(self._settled.pop(key), -1)  # live ones of that day still count
        for day in [d for d in self._day_held if d < today]:
            del self._day_held[day]  # a day's dry runs hold their symbols for that day only
