"""The risk rules read from the ledger, written once: what counts against today's budget, what
holds a symbol, and the RiskBook rebuilt from executions. Start-up recovery, `status` and the
tests all use these, so the service and what it reports can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from trade_executor.domain.riskbook import RiskBook, TradingState
from trade_executor.domain.states import ExecutionState

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from trade_executor.domain.execution import Execution
    from trade_executor.domain.sizing import RiskLimits

S = ExecutionState

# Risk that reached (or may have reached) the broker, or is reserved for an order being sent.
_RISK_HELD = frozenset({S.SUBMITTING, S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.UNKNOWN})


def counts_against_budget(execution: Execution) -> bool:
    """Whether the execution's risk counts on its trading day's budget: an order being sent, at
    the broker or possibly at the broker (`unknown`), filled, or cancelled after a fill."""
    if execution.state in _RISK_HELD:
        return True
    return execution.state is S.CANCELLED and execution.filled_qty > 0


def holds_symbol(execution: Execution) -> bool:
    """Whether the execution keeps its symbol in flight (open) in the RiskBook. A `received`
    one holds nothing yet: it has not been decided."""
    return not execution.state.is_final and execution.state is not S.RECEIVED


def rebuild_riskbook(
    limits: RiskLimits,
    timezone: ZoneInfo,
    executions: Iterable[Execution],
    now: datetime,
    trading_state: TradingState | None = None,
) -> RiskBook:
    """The RiskBook as the ledger says it is at `now`, from today's executions and every
    execution not yet final (of any day), with the realized P&L of their exits. Each execution
    is entered once."""
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
        if counts_today or holds_symbol(execution):
            seen.add(execution.id)
            book.restore(
                execution.id,
                execution.symbol or "",
                execution.risk_amount or Decimal(0),
                day,
                working=holds_symbol(execution),
            )
        if execution.realized_pnl is not None:
            exited = execution.closed_at or execution.updated_at or now
            book.set_realized(execution.id, execution.realized_pnl, book.trading_day(exited))
    return book
