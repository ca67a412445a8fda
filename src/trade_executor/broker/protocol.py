"""`Broker`: the narrow seam the actors depend on, instead of the HTTP client itself.

`BrokerClient` satisfies it (checked by mypy in `client.py`); tests may pass any object that
does. Every method's errors are those of `broker.errors`; order-sending methods (`place`,
`cancel_order`, `close_position`, `protect_position`) are attempted exactly once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from trade_executor.domain.models import (
    Account,
    Action,
    AnyOrderRequest,
    BridgeHealth,
    BrokerOrder,
    CancelResult,
    OrderStatus,
    OrderType,
    PlacedOrder,
    Position,
    ProtectionPlaced,
)

from .capabilities import BridgeCapabilities
from .locate import Located
from .orderbook import OrderIndex
from .reconcile import FindResult, SubmissionKey


class Broker(Protocol):
    """What the actors call on the IB bridge."""

    async def health(self) -> BridgeHealth: ...

    async def capabilities(self) -> BridgeCapabilities: ...

    async def account(self) -> Account: ...

    async def positions(self) -> list[Position]: ...

    async def order_status(self, order_id: int) -> OrderStatus: ...

    async def orders(self) -> list[BrokerOrder]: ...

    async def order_index(self) -> OrderIndex: ...

    async def find_order(
        self,
        order_ref: str,
        *,
        symbol: str,
        action: Action,
        quantity: int,
        price: Decimal | None,
        placed_after: datetime,
        order_type: OrderType | None = None,
    ) -> FindResult: ...

    async def locate_submission(
        self,
        key: SubmissionKey,
        *,
        attempted_at: datetime,
        detail: str | None = None,
        settle: timedelta | None = None,
    ) -> Located: ...

    async def place(self, req: AnyOrderRequest) -> PlacedOrder: ...

    async def cancel_order(self, order_id: int) -> CancelResult: ...

    async def close_position(
        self,
        symbol: str,
        *,
        quantity: int | None = None,
        order_type: OrderType = OrderType.MKT,
        limit_price: Decimal | None = None,
    ) -> PlacedOrder: ...

    async def protect_position(
        self,
        symbol: str,
        *,
        stop_loss: Decimal,
        take_profit: Decimal | None = None,
        quantity: int | None = None,
        replace_existing: bool = True,
    ) -> ProtectionPlaced: ...
