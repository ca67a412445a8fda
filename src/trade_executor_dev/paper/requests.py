"""What the paper bridge accepts: the order bodies of CONTRACT section 7 and the admin bodies."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from trade_executor.broker.wire import Price
from trade_executor.domain.models import Action, OrderType


def _upper_enum(kind: type[Action] | type[OrderType]) -> PlainValidator:
    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        try:
            return kind(value.strip().upper())
        except ValueError:
            choices = ", ".join(member.value for member in kind)
            raise ValueError(f"unknown {kind.__name__} {value!r}: expected {choices}") from None

    return PlainValidator(parse)


Side = Annotated[Action, _upper_enum(Action)]
Kind = Annotated[OrderType, _upper_enum(OrderType)]
Quantity = Annotated[StrictInt, Field(gt=0)]
Symbol = Annotated[StrictStr, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-]+$")]
Ref = Annotated[StrictStr, Field(max_length=255)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _positive(price: Decimal | None, name: str) -> None:
    if price is not None and price <= 0:
        raise ValueError(f"{name} must be > 0")


class OrderBody(_Body):
    symbol: Symbol
    action: Side
    quantity: Quantity
    order_type: Kind = OrderType.MKT
    limit_price: Price | None = None
    stop_price: Price | None = None
    order_ref: Ref | None = None

    @model_validator(mode="after")
    def _prices(self) -> OrderBody:
        _positive(self.limit_price, "limit_price")
        _positive(self.stop_price, "stop_price")
        if self.order_type is OrderType.LMT and self.limit_price is None:
            raise ValueError("Limit price required for limit orders")
        if self.order_type is OrderType.STP and self.stop_price is None:
            raise ValueError("Stop price required for stop orders")
        return self


class BracketBody(_Body):
    symbol: Symbol
    action: Side
    quantity: Quantity
    entry_order_type: Kind = OrderType.MKT
    entry_limit_price: Price | None = None
    stop_loss: Price | None = None
    take_profit: Price | None = None
    order_ref: Ref | None = None

    @model_validator(mode="after")
    def _prices(self) -> BracketBody:
        for name in ("entry_limit_price", "stop_loss", "take_profit"):
            _positive(getattr(self, name), name)
        if self.entry_order_type is OrderType.STP:
            raise ValueError("entry_order_type must be MKT or LMT")
        if self.entry_order_type is OrderType.LMT and self.entry_limit_price is None:
            raise ValueError("Limit price required for limit orders")
        if self.stop_loss is None and self.take_profit is None:
            raise ValueError("Bracket orders require at least a stop loss or take profit")
        return self


class PriceBody(_Body):
    symbol: Symbol
    price: Price

    @model_validator(mode="after")
    def _positive_price(self) -> PriceBody:
        _positive(self.price, "price")
        return self


class AccountBody(_Body):
    net_liquidation: Price | None = None
    buying_power: Price | None = None
    account_id: Annotated[StrictStr, Field(min_length=1, max_length=32)] | None = None
    paper_trading: StrictBool | None = None


class RestartBody(_Body):
    """A bridge restart. By default it reconnects with the same client id, as the real bridge's
    configuration does: ib_insync's connect re-reads open orders, so working orders keep their
    ids. `client_id_changed` gives the harsh case: the new session cannot see them.
    (`relist_working`, the earlier flag, is still read: false means the client id changed.)"""

    client_id_changed: StrictBool = False
    relist_working: StrictBool | None = None

    @model_validator(mode="after")
    def _one_meaning(self) -> RestartBody:
        both = {"relist_working", "client_id_changed"} <= self.model_fields_set
        if both and self.relist_working == self.client_id_changed:
            raise ValueError("relist_working and client_id_changed contradict each other")
        return self

    @property
    def forgets_working(self) -> bool:
        return self.client_id_changed or self.relist_working is False


class FillBody(_Body):
    """An IB-side fill of one working order (a bracket's child filling while the bridge is down):
    at `price`, else at its own limit or stop price, else at the market's price."""

    order_id: Annotated[StrictInt, Field(gt=0)]
    price: Price | None = None

    @model_validator(mode="after")
    def _positive_price(self) -> FillBody:
        _positive(self.price, "price")
        return self


class DisconnectBody(_Body):
    """IB's 1100 (connectivity lost) until 1102 (restored, data kept): for `seconds`, or until
    `POST /admin/reconnect` when absent."""

    seconds: Annotated[float, Field(gt=0, le=86_400)] | None = None


class SymbolsBody(_Body):
    unknown: list[Annotated[StrictStr, Field(max_length=32)]]


class StepBody(_Body):
    ticks: Annotated[StrictInt, Field(ge=1, le=100_000)] = 1


def describe(exc: ValidationError) -> str:
    """One line for a 422 `detail`: each failing field and why."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
