"""`Broker`: the narrow seam the actors depend on, instead of the HTTP client itself: the
bridge's endpoints and nothing built on them.

It is two roles: `BrokerReads` (the GETs, answered by the bridge from memory, costing IB
nothing) and `BrokerOrders` (the POSTs and the DELETE, each an IB message, paced by
`broker.pacing`). What is built on the endpoints is a function over a broker: `locate` (settling
a lost answer through the order list), `orderbook.order_index` (the list indexed for the
pollers), `reconcile` (pure matching) and `broker_truth` (the operator's check).

`BrokerClient` satisfies it (checked by mypy in `client.py`); tests may pass any object that
does. Every method's errors are those of `broker.errors`; order-sending methods (`place`,
`cancel_order`, `close_position`, `protect_position`) are attempted exactly once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from trade_executor.domain.models import (
    Account,
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


class BrokerReads(Protocol):
    """The bridge's GET endpoints (`capabilities` reads `/health` and `/openapi.json`)."""

    async def health(self) -> BridgeHealth: ...

    async def capabilities(self) -> BridgeCapabilities: ...

    async def account(self) -> Account: ...

    async def positions(self) -> list[Position]: ...

    async def order_status(self, order_id: int) -> OrderStatus: ...

    async def orders(self) -> list[BrokerOrder]: ...


class BrokerOrders(Protocol):
    """The bridge's order messages: each attempted once, each paced."""

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


class Broker(BrokerReads, BrokerOrders, Protocol):
    """What the actors call on the IB bridge: its reads and its order messages."""


def _members(role: type) -> frozenset[str]:
    return frozenset(name for name in vars(role) if not name.startswith("_"))


# The names of each role's endpoints (for wrappers that treat the roles differently).
READS = _members(BrokerReads)
ORDERS = _members(BrokerOrders)
