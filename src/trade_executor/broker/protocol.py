"""What the actors need from the IB bridge: the seam between them and `BrokerClient`.

The actors depend on this protocol only, so they run against the real client over HTTP, the
client over an ASGI transport, or any fake with the same behaviour.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from trade_executor.broker.reconcile import FindResult
from trade_executor.domain.models import (
    Account,
    Action,
    AnyOrderRequest,
    BridgeHealth,
    BrokerOrder,
    CancelResult,
    OrderStatus,
    PlacedOrder,
    Position,
)


class Broker(Protocol):
    """Every method raises `broker.errors.BrokerError` (or a subclass) when the bridge cannot
    give a usable answer; `place` raises `AmbiguousSubmission` when the order may exist."""

    async def health(self) -> BridgeHealth: ...

    async def account(self) -> Account: ...

    async def positions(self) -> list[Position]: ...

    async def order_status(self, order_id: int) -> OrderStatus: ...

    async def orders(self) -> list[BrokerOrder]: ...

    async def find_order(
        self,
        order_ref: str,
        *,
        symbol: str,
        action: Action,
        quantity: int,
        price: Decimal | None,
        placed_after: datetime,
    ) -> FindResult: ...

    async def place(self, req: AnyOrderRequest) -> PlacedOrder:
        """Attempted exactly once, never retried."""
        ...

    async def cancel_order(self, order_id: int) -> CancelResult: ...


if TYPE_CHECKING:  # the real client implements it: mypy checks it here
    from trade_executor.broker.client import BrokerClient

    def _is_a_broker(client: BrokerClient) -> Broker:
        return client
