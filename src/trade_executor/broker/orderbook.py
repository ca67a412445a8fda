"""The bridge's order list indexed for pollers: one `GET /orders` answers every working order.

The real bridge lists every order of its IB session (finished ones included) from memory, newest
update first. After its own restart, orders of the previous session come back with `order_id` 0:
they cannot be told apart, so they are kept aside (`anonymous`) and never indexed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from trade_executor.domain.models import BrokerOrder

if TYPE_CHECKING:
    from .locate import OrderLister


@dataclass(frozen=True, slots=True)
class OrderIndex:
    """One read of the order list. `by_id` maps each order id to its order; when an id is listed
    twice the entry updated last wins (an order listed without `updated_at` loses to one with).
    `children` maps a parent id to its children's ids in listing order."""

    by_id: Mapping[int, BrokerOrder] = field(default_factory=lambda: MappingProxyType({}))
    children: Mapping[int, tuple[int, ...]] = field(default_factory=lambda: MappingProxyType({}))
    anonymous: tuple[BrokerOrder, ...] = ()

    def get(self, order_id: int) -> BrokerOrder | None:
        """The listed order with this id, or None when the list does not have it (then read it
        with `GET /orders/{id}`, as CONTRACT section 5 allows)."""
        return self.by_id.get(order_id)

    def children_of(self, parent_id: int) -> tuple[int, ...]:
        return self.children.get(parent_id, ())

    def __contains__(self, order_id: object) -> bool:
        return order_id in self.by_id

    def __len__(self) -> int:
        return len(self.by_id)


async def order_index(broker: OrderLister) -> OrderIndex:
    """One `GET /orders` of `broker`, indexed by order id for the pollers."""
    return index_orders(await broker.orders())


def index_orders(orders: Iterable[BrokerOrder]) -> OrderIndex:
    """Index one listing by order id, in one pass."""
    by_id: dict[int, BrokerOrder] = {}
    children: dict[int, list[int]] = {}
    anonymous: list[BrokerOrder] = []
    for order in orders:
        if order.order_id == 0:
            anonymous.append(order)
            continue
        known = by_id.get(order.order_id)
        if known is not None:
            if not _newer(order, known):
                continue
        elif order.parent_id is not None:
            children.setdefault(order.parent_id, []).append(order.order_id)
        by_id[order.order_id] = order
    return OrderIndex(
        by_id=MappingProxyType(by_id),
        children=MappingProxyType({p: tuple(ids) for p, ids in children.items()}),
        anonymous=tuple(anonymous),
    )


def _newer(candidate: BrokerOrder, known: BrokerOrder) -> bool:
    if candidate.updated_at is None:
        return False
    return known.updated_at is None or candidate.updated_at > known.updated_at
