"""Domain models. Money is `Decimal`, quantities are `int`, times are aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Action:
        return Action.SELL if self is Action.BUY else Action.BUY


class OrderType(StrEnum):
    LMT = "LMT"
    MKT = "MKT"
    STP = "STP"


class BrokerStatus(StrEnum):
    """IB order statuses as the bridge reports them (CONTRACT section 7)."""

    PENDING_SUBMIT = "PendingSubmit"
    PRE_SUBMITTED = "PreSubmitted"
    SUBMITTED = "Submitted"
    PENDING_CANCEL = "PendingCancel"
    CANCELLED = "Cancelled"
    API_CANCELLED = "ApiCancelled"
    FILLED = "Filled"
    INACTIVE = "Inactive"
    UNKNOWN = "Unknown"  # the real bridge's answer for an order it does not know: never final

    @property
    def is_final(self) -> bool:
        return self in FINAL_BROKER_STATUSES

    @property
    def needs_confirmation(self) -> bool:
        """IB may report Cancelled for an order that filled: such answers are read twice."""
        return self in (BrokerStatus.CANCELLED, BrokerStatus.API_CANCELLED, BrokerStatus.INACTIVE)


FINAL_BROKER_STATUSES = frozenset(
    {BrokerStatus.FILLED, BrokerStatus.CANCELLED, BrokerStatus.API_CANCELLED, BrokerStatus.INACTIVE}
)


# What `normalise_symbol` strips: ASCII whitespace only, exactly what the claim's SQL strips
# (`btrim(symbol, SYMBOL_BLANKS)`), so the signal and its execution row always agree.
SYMBOL_BLANKS = " \t\n\r\f\v"


def normalise_symbol(raw: str | None) -> str | None:
    """A symbol as every later use sees it: blanks stripped, upper case (CONTRACT section 4).
    Applied once, when a signal is read; None stays None (validation rejects it)."""
    if not isinstance(raw, str):
        return raw  # not text at all: left as read, for validation to reject
    return raw.strip(SYMBOL_BLANKS).upper()


@dataclass(frozen=True, slots=True)
class Signal:
    """A row of `strategy_signals`, as read: fields are unvalidated (see `validation`), except
    the symbol, which is normalised here (`normalise_symbol`) so that the order, reconciliation,
    the trade row and the RiskBook all see one form of it (' amb4 ' is AMB4 everywhere)."""

    id: UUID
    symbol: str | None
    signal_type: str | None
    entry_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    strategy_id: str | None = None
    confidence: Decimal | None = None
    reasoning: str | None = None
    generated_at: datetime | None = None
    expires_at: datetime | None = None
    status: str | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        # Frozen: set through object.__setattr__, once, at construction (that is, when read).
        object.__setattr__(self, "symbol", normalise_symbol(self.symbol))


@dataclass(frozen=True, slots=True)
class Approval:
    """A row of `trade_approvals`, or a status approval (the original's UI sets
    `strategy_signals.status = 'approved'`): then `id` is None, `source` is `signal_status`,
    `approved_at` is when the status changed (`signal_status_approvals`) and `approved_by` is
    unknown (None)."""

    id: UUID | None
    signal_id: UUID
    approved: bool
    approved_at: datetime | None
    approved_by: str | None = None
    created_at: datetime | None = None
    order_id: str | None = None
    source: str = "trade_approvals"  # trade_approvals | signal_status


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    net_liquidation: Decimal
    buying_power: Decimal
    total_cash: Decimal = Decimal(0)
    equity_with_loan: Decimal = Decimal(0)
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    quantity: int
    avg_cost: Decimal = Decimal(0)
    market_price: Decimal | None = None
    market_value: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    realized_pnl: Decimal | None = None
    contract_id: int | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """`POST /orders`."""

    symbol: str
    action: Action
    quantity: int
    order_type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    order_ref: str | None = None


@dataclass(frozen=True, slots=True)
class BracketOrderRequest:
    """`POST /orders/bracket`: an entry with attached stop-loss and take-profit."""

    symbol: str
    action: Action
    quantity: int
    entry_order_type: OrderType
    stop_loss: Decimal
    take_profit: Decimal
    entry_limit_price: Decimal | None = None
    order_ref: str | None = None


AnyOrderRequest = OrderRequest | BracketOrderRequest


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """The bridge accepted an order: its id (the parent's, for a bracket) and children."""

    order_id: int
    child_order_ids: tuple[int, ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class OrderStatus:
    """`GET /orders/{id}`."""

    order_id: int
    status: BrokerStatus
    filled_qty: int
    avg_fill_price: Decimal | None
    last_update: datetime | None = None


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """An entry of `GET /orders`."""

    order_id: int
    symbol: str
    action: Action
    order_type: str
    quantity: int
    status: BrokerStatus
    filled_qty: int = 0
    remaining_qty: int = 0
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    avg_fill_price: Decimal | None = None
    parent_id: int | None = None
    order_ref: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CancelResult:
    """`DELETE /orders/{id}`."""

    success: bool
    order_id: int
    status: BrokerStatus | None
    message: str = ""


@dataclass(frozen=True, slots=True)
class ProtectionPlaced:
    """`POST /positions/{symbol}/protect`: the protective orders placed, and those it cancelled."""

    order_ids: tuple[int, ...]
    cancelled_order_ids: tuple[int, ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class BridgeHealth:
    status: str
    connected: bool
    version: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    # None: the bridge does not say (bridges before March 2026); callers must not assume paper.
    paper_trading: bool | None = None
