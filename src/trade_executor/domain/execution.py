"""The executor's ledger record (`executions` row) and what changes it.

These dataclasses are the one description of the ledger's columns: the stores build their SQL
and their row mapping from `fields(Execution)` and `fields(Changes)`, so a new column is one
field here (in `Changes` too if it can change after the claim) plus a migration.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from trade_executor.domain.states import ExecutionState


@dataclass(frozen=True, slots=True)
class Execution:
    id: UUID
    signal_id: UUID
    approval_id: UUID | None
    state: ExecutionState
    client_order_id: str
    symbol: str | None = None
    approval_source: str | None = None  # trade_approvals | signal_status
    reason: str | None = None
    action: str | None = None
    order_type: str | None = None
    order_id: int | None = None
    child_order_ids: tuple[int, ...] = ()
    quantity: int | None = None
    entry_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    risk_amount: Decimal | None = None
    risk_percent: Decimal | None = None
    position_value: Decimal | None = None
    filled_qty: int = 0
    avg_fill_price: Decimal | None = None
    broker_status: str | None = None
    trading_day: date | None = None
    attempted_at: datetime | None = None
    created_at: datetime | None = None
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    # The position after the entry (CONTRACT section 4).
    position_state: str | None = None  # open | closed | unprotected
    exit_reason: str | None = None  # stop_loss | take_profit | close | flatten | external
    exit_qty: int | None = None
    exit_avg_price: Decimal | None = None
    realized_pnl: Decimal | None = None
    r_multiple: Decimal | None = None
    closed_at: datetime | None = None
    # The exit order this service placed for the position (`close`, flatten): its intent is
    # written before the POST (`exit_order_id` 0 = sent, answer not yet recorded), so a crash
    # in between is settled by looking the order up, never by sending it again.
    exit_order_id: int | None = None
    exit_attempted_at: datetime | None = None
    # The session open this position was protected again for (REPROTECT_AT_OPEN), written
    # before the POST: once per open, never twice across a restart.
    reprotected_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Changes:
    """Fields to set on an execution; None leaves a field as it is."""

    reason: str | None = None
    action: str | None = None
    order_type: str | None = None
    order_id: int | None = None
    child_order_ids: tuple[int, ...] | None = None
    quantity: int | None = None
    entry_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    risk_amount: Decimal | None = None
    risk_percent: Decimal | None = None
    position_value: Decimal | None = None
    filled_qty: int | None = None
    avg_fill_price: Decimal | None = None
    broker_status: str | None = None
    trading_day: date | None = None
    attempted_at: datetime | None = None
    submitted_at: datetime | None = None
    position_state: str | None = None
    exit_reason: str | None = None
    exit_qty: int | None = None
    exit_avg_price: Decimal | None = None
    realized_pnl: Decimal | None = None
    r_multiple: Decimal | None = None
    closed_at: datetime | None = None
    exit_order_id: int | None = None
    exit_attempted_at: datetime | None = None
    reprotected_at: datetime | None = None


EXECUTION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Execution))
CHANGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Changes))
assert set(CHANGE_FIELDS) <= set(EXECUTION_FIELDS), "every change names an execution column"


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """A `trades` row (the original service's shape): written once an order is placed or dry-run."""

    trade_id: str
    signal_id: UUID
    symbol: str
    direction: str
    entry: Decimal
    stop: Decimal
    take_profit: Decimal
    strategy_id: str | None
    notes: str | None
    quantity: int
    risk_amount: Decimal
    risk_percent: Decimal
    position_value: Decimal
    order_id: int | None
    order_status: str
