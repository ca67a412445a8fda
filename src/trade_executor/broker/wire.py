"""The bridge's answers (CONTRACT section 7) as strict pydantic schemas, and their domain models.

Input is the output of `jsonnum.loads(..., non_finite=True)`, so fractions are already `Decimal`
and NaN / Infinity arrive as non-finite `Decimal`s. The validators refuse what the lax defaults
would coerce: a string or a bool where a number belongs, negative order quantities, unknown
statuses of a single order. Unknown extra fields are ignored (the real bridge adds some, e.g.
`source`, `can_cancel`, `market_data_mode`).

IB's unset value (see `unset`): an optional price or amount that is unset or non-finite is read as
None, never rounded; a required amount (net liquidation, buying power, a position's average cost)
that is unset is refused, so nothing is ever sized on it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainValidator,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

from trade_executor.domain.models import (
    Account,
    Action,
    BridgeHealth,
    BrokerOrder,
    BrokerStatus,
    CancelResult,
    OrderStatus,
    PlacedOrder,
    Position,
    ProtectionPlaced,
)

from . import jsonnum
from .unset import is_unset, value_or_none

# IB statuses outside the contract's list that mean the same as one in it.
_STATUS_ALIASES = {"ApiPending": BrokerStatus.PENDING_SUBMIT}


def _any_number(value: Any) -> Decimal:
    if type(value) is Decimal:  # the common case first: lists of 10,000 orders are parsed
        return value
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError(f"expected a JSON number, got {type(value).__name__}")
    return Decimal(value)


def _number(value: Any) -> Decimal:
    number = _any_number(value)
    if not number.is_finite():
        raise ValueError("expected a finite number")
    if is_unset(number):
        raise ValueError("IB's unset value (1.797e+308) where an amount is required")
    return number


def _optional_amount(value: Any) -> Decimal | None:
    """An amount that may be absent: null, unset or non-finite all read as None."""
    return None if value is None else value_or_none(_any_number(value))


def _optional_price(value: Any) -> Decimal | None:
    """A price that may be absent: null, unset or non-finite read as None; negatives refused."""
    price = _optional_amount(value)
    if price is not None and price < 0:
        raise ValueError("expected a price >= 0")
    return price


def _non_negative(value: Any) -> Decimal:
    number = _number(value)
    if number < 0:
        raise ValueError("expected a number >= 0")
    return number


def _integer(value: Any) -> int:
    if type(value) is int:  # fast path; bools are not ints here (type, not isinstance)
        return value
    number = _number(value)
    if number != number.to_integral_value():
        raise ValueError("expected a whole number")
    return int(number)


def _count(value: Any) -> int:
    number = _integer(value)
    if number < 0:
        raise ValueError("expected a whole number >= 0")
    return number


def _order_id(value: Any) -> int:
    """An id the bridge gave a placed order: a positive whole number. 0 is how the real bridge
    lists an order it has forgotten, so a POST answer with 0 (or a negative, a string, a bool)
    says nothing usable about the order and the submission is ambiguous. Only a JSON integer
    is an id (IB's ids are ints; `5.0` or `"5"` is not what the bridge sends)."""
    if type(value) is not int:  # bools are not ints here (type, not isinstance)
        raise ValueError(f"expected an integer order id, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"expected a positive order id, got {value}")
    return value


def _status(value: Any) -> BrokerStatus:
    if not isinstance(value, str):
        raise ValueError("expected a status string")
    if value in _STATUS_ALIASES:
        return _STATUS_ALIASES[value]
    try:
        return BrokerStatus(value)
    except ValueError:
        raise ValueError(f"unknown order status {value!r}") from None


def _listed_status(value: Any) -> BrokerStatus:
    """In the order list one odd status must not hide every other order: a status this client
    does not know (IB's "ValidationError", an empty one) is read as `Unknown`, never final."""
    try:
        return _status(value)
    except ValueError:
        return BrokerStatus.UNKNOWN


def _action(value: Any) -> Action:
    if not isinstance(value, str) or value.upper() not in ("BUY", "SELL"):
        raise ValueError(f"expected BUY or SELL, got {value!r}")
    return Action(value.upper())


def _timestamp(value: Any) -> datetime:
    """ISO 8601; the real bridge sends naive `utcnow().isoformat()` stamps, read as UTC."""
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 timestamp string")
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Money = Annotated[Decimal, PlainValidator(_number)]
Price = Annotated[Decimal, PlainValidator(_non_negative)]
OptionalPrice = Annotated[Decimal | None, PlainValidator(_optional_price)]
OptionalMoney = Annotated[Decimal | None, PlainValidator(_optional_amount)]
Int = Annotated[int, PlainValidator(_integer)]
Count = Annotated[int, PlainValidator(_count)]
OrderId = Annotated[int, PlainValidator(_order_id)]
Status = Annotated[BrokerStatus, PlainValidator(_status)]
ListedStatus = Annotated[BrokerStatus, PlainValidator(_listed_status)]
Side = Annotated[Action, PlainValidator(_action)]
Timestamp = Annotated[datetime, PlainValidator(_timestamp)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _fill_price(avg_fill_price: Decimal | None, filled_qty: int) -> Decimal | None:
    # The real bridge reports 0.0 for "no fill yet"; that is not a price.
    return None if filled_qty == 0 or avg_fill_price is None else avg_fill_price


def _positive_price(price: Decimal | None) -> Decimal | None:
    # Unset limit/stop prices arrive as IB's sentinel (already None here), null, or 0: all none.
    return price if price else None


class AccountWire(_Wire):
    account_id: StrictStr
    net_liquidation: Money
    total_cash: Money
    buying_power: Money
    equity_with_loan: Money
    currency: StrictStr

    def to_domain(self) -> Account:
        return Account(
            account_id=self.account_id,
            net_liquidation=self.net_liquidation,
            buying_power=self.buying_power,
            total_cash=self.total_cash,
            equity_with_loan=self.equity_with_loan,
            currency=self.currency,
        )


class PositionWire(_Wire):
    symbol: StrictStr
    quantity: Int  # signed: a short position is negative
    avg_cost: Money
    contract_id: Int | None = None
    market_price: OptionalMoney = None
    market_value: OptionalMoney = None
    unrealized_pnl: OptionalMoney = None
    realized_pnl: OptionalMoney = None
    account: StrictStr | None = None

    def to_domain(self) -> Position:
        return Position(
            symbol=self.symbol,
            quantity=self.quantity,
            avg_cost=self.avg_cost,
            market_price=self.market_price,
            market_value=self.market_value,
            unrealized_pnl=self.unrealized_pnl,
            realized_pnl=self.realized_pnl,
            contract_id=self.contract_id,
            account=self.account,
        )


class _Counted(_Wire):
    count: Count

    def _check_count(self, items: list[Any]) -> None:
        if self.count != len(items):
            raise ValueError(f"count is {self.count} but {len(items)} items were listed")


class PositionsWire(_Counted):
    positions: list[PositionWire]

    @model_validator(mode="after")
    def _counted(self) -> PositionsWire:
        self._check_count(self.positions)
        return self


class PlacedWire(_Wire):
    success: StrictBool
    order_id: OrderId
    message: StrictStr = ""

    def to_domain(self) -> PlacedOrder:
        return PlacedOrder(order_id=self.order_id, message=self.message)


class BracketPlacedWire(_Wire):
    success: StrictBool
    parent_order_id: OrderId
    child_order_ids: list[OrderId]
    message: StrictStr = ""

    def to_domain(self) -> PlacedOrder:
        return PlacedOrder(
            order_id=self.parent_order_id,
            child_order_ids=tuple(self.child_order_ids),
            message=self.message,
        )


class OrderStatusWire(_Wire):
    order_id: Count
    status: Status
    filled_qty: Count
    avg_fill_price: OptionalPrice
    last_update: Timestamp | None = None

    def to_domain(self) -> OrderStatus:
        return OrderStatus(
            order_id=self.order_id,
            status=self.status,
            filled_qty=self.filled_qty,
            avg_fill_price=_fill_price(self.avg_fill_price, self.filled_qty),
            last_update=self.last_update,
        )


class BrokerOrderWire(_Wire):
    order_id: Count
    symbol: StrictStr
    action: Side
    order_type: StrictStr
    quantity: Count
    limit_price: OptionalPrice = None
    stop_price: OptionalPrice = None
    status: ListedStatus
    filled_qty: Count
    remaining_qty: Count
    avg_fill_price: OptionalPrice = None
    parent_id: Count | None = None
    order_ref: StrictStr | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None

    def to_domain(self) -> BrokerOrder:
        return BrokerOrder(
            order_id=self.order_id,
            symbol=self.symbol,
            action=self.action,
            order_type=self.order_type,
            quantity=self.quantity,
            status=self.status,
            filled_qty=self.filled_qty,
            remaining_qty=self.remaining_qty,
            limit_price=_positive_price(self.limit_price),
            stop_price=_positive_price(self.stop_price),
            avg_fill_price=_fill_price(self.avg_fill_price, self.filled_qty),
            parent_id=self.parent_id or None,  # IB's "no parent" is 0
            order_ref=self.order_ref,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class OrdersWire(_Counted):
    orders: list[BrokerOrderWire]

    @model_validator(mode="after")
    def _counted(self) -> OrdersWire:
        self._check_count(self.orders)
        return self


def orders_from_body(body: bytes) -> list[BrokerOrder]:
    """`GET /orders` straight into domain orders: each order object is validated by
    `BrokerOrderWire` and turned into its `BrokerOrder` while the JSON is decoded (an
    `object_hook`), so the 10,000 decoded dicts and wire models never exist at once (a 27 MB
    peak for 10,000 orders, bench/ANALYSIS.md, issue 22). Whatever this fast path cannot
    take (an order that does not validate, a wrong count, an odd shape) is parsed again the
    ordinary way, `OrdersWire`, so a malformed list is refused with the same error as before."""

    def hook(item: dict[str, Any]) -> Any:
        if "order_id" in item and "status" in item:
            try:
                return BrokerOrderWire.model_validate(item).to_domain()
            except ValidationError:
                return item  # the ordinary path below says what is wrong
        return item

    try:
        data = json.loads(body, parse_float=Decimal, parse_constant=Decimal, object_hook=hook)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        orders, count = data.get("orders"), data.get("count")
        if (
            type(count) is int
            and isinstance(orders, list)
            and count == len(orders)
            and all(type(order) is BrokerOrder for order in orders)
        ):
            return orders
    wire = OrdersWire.model_validate(jsonnum.loads(body, non_finite=True))
    return [order.to_domain() for order in wire.orders]


class CancelWire(_Wire):
    success: StrictBool
    order_id: Count
    status: Status | None = None
    message: StrictStr = ""

    def to_domain(self) -> CancelResult:
        return CancelResult(
            success=self.success, order_id=self.order_id, status=self.status, message=self.message
        )


class ProtectWire(_Wire):
    success: StrictBool
    order_ids: list[OrderId]
    cancelled_order_ids: list[Count] = []
    message: StrictStr = ""

    def to_domain(self) -> ProtectionPlaced:
        return ProtectionPlaced(
            order_ids=tuple(self.order_ids),
            cancelled_order_ids=tuple(self.cancelled_order_ids),
            message=self.message,
        )


class HealthWire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    status: StrictStr
    connected: StrictBool
    version: StrictStr | None = None
    # Absent from bridges before March 2026: then nobody can tell paper from live.
    paper_trading: StrictBool | None = None

    def to_domain(self) -> BridgeHealth:
        extra = dict(self.model_extra or {})
        if self.paper_trading is not None:
            extra["paper_trading"] = self.paper_trading  # where callers read it before
        return BridgeHealth(
            status=self.status,
            connected=self.connected,
            version=self.version,
            extra=extra,
            paper_trading=self.paper_trading,
        )
