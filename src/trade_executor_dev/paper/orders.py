"""The paper brokerage's value types: an order, its status report, holdings and the views the
bridge answers with. No behaviour beyond small derived properties."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from trade_executor.domain.models import Action, BrokerStatus, OrderType

WORKING = frozenset({BrokerStatus.PRE_SUBMITTED, BrokerStatus.SUBMITTED})
# What the real bridge counts as open (cancellable): ib_client.py OPEN_ORDER_STATUSES.
OPEN = WORKING | {BrokerStatus.PENDING_SUBMIT, BrokerStatus.PENDING_CANCEL}
DAY, GTC = "DAY", "GTC"


class OrderError(ValueError):
    """A request the bridge refuses (answered 400 with this message as `detail`)."""


@dataclass(slots=True)
class PaperOrder:
    order_id: int
    symbol: str
    action: Action
    order_type: OrderType
    quantity: int
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: BrokerStatus
    order_ref: str | None
    created_at: datetime
    received_at: float  # time.monotonic() when the bridge took the order
    updated_at: datetime
    parent_id: int | None = None
    child_ids: list[int] = field(default_factory=list)
    filled_qty: int = 0
    avg_fill_price: Decimal | None = None
    tif: str = GTC
    oca_group: str | None = None
    session: int = 1  # the bridge session that placed it (or relisted it)
    listed_since: datetime | None = None  # set when a restart relisted it
    phantom_reads: int = 0  # status reads left that see a false `Cancelled` (error 10349)
    action_text: str = ""  # a side IB refused, as it was sent (the order is then Cancelled)

    @property
    def remaining_qty(self) -> int:
        return 0 if self.status.is_final else self.quantity - self.filled_qty


@dataclass(frozen=True, slots=True)
class Report:
    """An order's state as one status read reports it (see `PaperBroker.read`)."""

    status: BrokerStatus
    filled_qty: int
    avg_fill_price: Decimal | None
    phantom: bool = False  # a false `Cancelled` (the order goes on working or filled)


@dataclass(slots=True)
class Holding:
    quantity: int = 0
    cost: Decimal = Decimal(0)  # signed cost basis of the open quantity
    realized: Decimal = Decimal(0)

    @property
    def avg_cost(self) -> Decimal:
        return self.cost / self.quantity if self.quantity else Decimal(0)

    def book(self, signed_qty: int, price: Decimal) -> None:
        """The position follows a fill; closing quantity realizes P&L at average cost."""
        if self.quantity == 0 or (self.quantity > 0) == (signed_qty > 0):
            self.quantity += signed_qty
            self.cost += signed_qty * price
            return
        closing = min(abs(signed_qty), abs(self.quantity))
        direction = 1 if self.quantity > 0 else -1
        avg = self.avg_cost
        self.realized += closing * direction * (price - avg)
        self.cost -= closing * direction * avg
        self.quantity -= closing * direction
        opening = signed_qty + closing * direction  # what is left flips the position
        if self.quantity == 0:
            self.cost = Decimal(0)
        if opening:
            self.quantity += opening
            self.cost += opening * price


@dataclass(frozen=True, slots=True)
class AccountView:
    account_id: str
    net_liquidation: Decimal
    total_cash: Decimal
    buying_power: Decimal
    equity_with_loan: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    contract_id: int
    quantity: int
    avg_cost: Decimal
    market_price: Decimal
    market_value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    account: str


def fill_price(order: PaperOrder, price: Decimal) -> Decimal | None:
    """The price this order fills at now, or None if `price` does not cross it."""
    buy = order.action is Action.BUY
    if order.order_type is OrderType.MKT:
        return price
    if order.order_type is OrderType.LMT:
        assert order.limit_price is not None
        crossed = price <= order.limit_price if buy else price >= order.limit_price
        return price if crossed else None  # at or better than the limit
    assert order.stop_price is not None
    triggered = price >= order.stop_price if buy else price <= order.stop_price
    return price if triggered else None
