"""The risk rules read from the ledger, written once: what counts against today's budget, what
holds a symbol, and the RiskBook rebuilt from executions (and from the trades the original
service placed). Start-up recovery, `status` and the tests all use these, so the service and
what it reports can never disagree.

A dry run (CONTRACT section 5) is the live decision without the broker call: it counts against
its trading day's budget and holds its symbol until that day ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import NAMESPACE_URL, UUID, uuid5

from trade_executor.domain.riskbook import RiskBook, TradingState
from trade_executor.domain.states import ExecutionState

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from trade_executor.domain.execution import Execution
    from trade_executor.domain.sizing import RiskLimits

S = ExecutionState

# Risk that reached (or may have reached) the broker, or is reserved for an order being sent.
_RISK_HELD = frozenset({S.SUBMITTING, S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.UNKNOWN})
# The states whose risk counts on their day's budget whatever their fills (`counts_against_budget`;
# a cancelled one counts after a fill): what the store's aggregate for the gauges sums.
BUDGET_STATES = _RISK_HELD | {S.DRY_RUN}


# Order statuses after which an order of the original service no longer works.
_ORIGINAL_FINAL = frozenset({"filled", "cancelled", "apicancelled", "inactive", "rejected"})


@dataclass(frozen=True, slots=True)
class OriginalTrade:
    """A `trades` row the original service wrote (not one of ours), as the store read it."""

    trade_id: str
    symbol: str
    risk_amount: Decimal
    order_status: str | None
    created_at: datetime

    @property
    def ledger_id(self) -> UUID:
        """A stable RiskBook key for the row (the RiskBook keys entries by uuid)."""
        return uuid5(NAMESPACE_URL, f"trades:{self.trade_id}")


def counts_against_budget(execution: Execution) -> bool:
    """Whether the execution's risk counts on its trading day's budget: an order being sent, at
    the broker or possibly at the broker (`unknown`), filled, cancelled after a fill, or a dry
    run (what live would have sent)."""
    if execution.state in BUDGET_STATES:
        return True
    return execution.state is S.CANCELLED and execution.filled_qty > 0


def todays_risk(executions: Iterable[Execution], today: date) -> Decimal:
    """What `rebuild_riskbook(...).daily_risk_used` gives for `today` over the same executions
    (today's and every one not yet final), without the trades of the original service: the sum
    of the risk that counts on today's budget. The store's one-query aggregate for the gauges
    (`Store.ledger_gauges`) computes the same; tests hold the two together."""
    total, seen = Decimal(0), set()
    for execution in executions:
        if execution.id in seen:
            continue
        seen.add(execution.id)
        if (execution.trading_day or today) == today and counts_against_budget(execution):
            total += execution.risk_amount or Decimal(0)
    return total


def holds_symbol(execution: Execution, today: date | None = None) -> bool:
    """Whether the execution keeps its symbol open in the RiskBook: in flight (a `received`
    one holds nothing yet: it has not been decided), or a dry run of `today` (of any day when
    `today` is None)."""
    if execution.state is S.DRY_RUN:
        return today is None or execution.trading_day is None or execution.trading_day == today
    return not execution.state.is_final and execution.state is not S.RECEIVED


def held_for_day(execution: Execution) -> bool:
    """A dry run holds its symbol until its day ends, with no order to follow."""
    return execution.state is S.DRY_RUN


def original_holds_symbol(trade: OriginalTrade) -> bool:
    """An order of the original service that may still be working keeps its symbol open (a
    filled one is a position, which the broker's positions report)."""
    status = (trade.order_status or "").strip().lower()
    # No status: a setup its first migration stored without an order; nothing to hold.
    return bool(status) and status not in _ORIGINAL_FINAL


def rebuild_riskbook(
    limits: RiskLimits,
    timezone: ZoneInfo,
    executions: Iterable[Execution],
    now: datetime,
    trading_state: TradingState | None = None,
    original_trades: Iterable[OriginalTrade] = (),
) -> RiskBook:
    """The RiskBook as the ledger says it is at `now`, from today's executions and every
    execution not yet final (of any day) with the realized P&L of their exits, plus the trades
    the original service placed today (their risk on today's budget; their symbols open while
    their order may still work). Each execution and trade is entered once."""
    book = RiskBook(limits, timezone)
    if trading_state is not None:
        book.set_trading_state(trading_state)
    today = book.trading_day(now)
    seen: set[object] = set()
    for execution in executions:
        if execution.id in seen:
            continue
        day = execution.trading_day or today
        counts_today = day == today and counts_against_budget(execution)
        holds = holds_symbol(execution, today)
        if counts_today or holds:
            seen.add(execution.id)
            by_day = held_for_day(execution)
            book.restore(
                execution.id,
                execution.symbol or "",
                execution.risk_amount or Decimal(0),
                day,
                working=holds and not by_day,
                held_for_day=holds and by_day,
            )
        if execution.realized_pnl is not None:
            exited = execution.closed_at or execution.updated_at or now
            book.set_realized(execution.id, execution.realized_pnl, book.trading_day(exited))
    for trade in original_trades:
        if trade.ledger_id in seen or book.trading_day(trade.created_at) != today:
            continue
        seen.add(trade.ledger_id)
        book.restore(
            trade.ledger_id,
            trade.symbol,
            trade.risk_amount,
            today,
            working=original_holds_symbol(trade),
        )
    return book
