"""The bracket children's statuses, from the same order list the pollers read.

Each list read yields one `BracketChildren`: every listed child order (an order with a
`parent_id`) by its id, with its status and fills. Nothing acts on it here; the exits work
(following the stop-loss and take-profit after an entry fills) subscribes through
`PollerPool(on_children=...)` and so needs no request of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

from trade_executor.broker.orderbook import OrderIndex
from trade_executor.domain.models import Action, BrokerStatus


@dataclass(frozen=True, slots=True)
class ChildStatus:
    order_id: int
    parent_id: int
    action: Action
    order_type: str
    quantity: int
    status: BrokerStatus
    filled_qty: int
    avg_fill_price: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None


@dataclass(frozen=True, slots=True)
class BracketChildren:
    """One list read's children: `by_id` child order id -> status; `of(parent)` in list order."""

    read_at: datetime
    by_id: Mapping[int, ChildStatus]
    by_parent: Mapping[int, tuple[int, ...]]
    # The whole list read (close and protection orders have no parent): the exits use it.
    index: OrderIndex | None = None

    def of(self, parent_id: int) -> tuple[ChildStatus, ...]:
        return tuple(self.by_id[child] for child in self.by_parent.get(parent_id, ()))


def bracket_children(index: OrderIndex, read_at: datetime) -> BracketChildren:
    by_id: dict[int, ChildStatus] = {}
    for parent_id, child_ids in index.children.items():
        for child_id in child_ids:
            order = index.by_id[child_id]
            by_id[child_id] = ChildStatus(
                order_id=child_id,
                parent_id=parent_id,
                action=order.action,
                order_type=order.order_type,
                quantity=order.quantity,
                status=order.status,
                filled_qty=order.filled_qty,
                avg_fill_price=order.avg_fill_price,
                limit_price=order.limit_price,
                stop_price=order.stop_price,
            )
    return BracketChildren(read_at, MappingProxyType(by_id), index.children, index)
