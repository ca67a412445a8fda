"""The value of orders that may still buy or sell: what the broker's buying power does not
reflect yet. Kept as a running total, so a decision costs the same with 10 or 10,000 orders
working."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID


@dataclass(slots=True)
class _Order:
    symbol: str
    quantity: int
    entry: Decimal
    filled_qty: int = 0

    def unfilled(self, filled: int) -> Decimal:
        return (self.quantity - min(self.quantity, filled)) * self.entry


class WorkingOrders:
    def __init__(self) -> None:
        self._orders: dict[UUID, _Order] = {}
        self._by_symbol: defaultdict[str, set[UUID]] = defaultdict(set)
        self._total = Decimal(0)  # sum of every order's unfilled value by its own fill count

    def __len__(self) -> int:
        return len(self._orders)

    def add(
        self, execution_id: UUID, symbol: str, quantity: int, entry: Decimal, filled: int = 0
    ) -> None:
        self.remove(execution_id)
        order = _Order(symbol.strip().upper(), quantity, entry, filled)
        self._orders[execution_id] = order
        self._by_symbol[order.symbol].add(execution_id)
        self._total += order.unfilled(filled)

    def filled(self, execution_id: UUID, filled_qty: int) -> None:
        order = self._orders.get(execution_id)
        if order is not None and filled_qty > order.filled_qty:
            self._total -= order.unfilled(order.filled_qty) - order.unfilled(filled_qty)
            order.filled_qty = filled_qty

    def remove(self, execution_id: UUID) -> None:
        order = self._orders.pop(execution_id, None)
        if order is None:
            return
        self._total -= order.unfilled(order.filled_qty)
        ids = self._by_symbol[order.symbol]
        ids.discard(execution_id)
        if not ids:
            del self._by_symbol[order.symbol]

    def clear(self) -> None:
        self._orders.clear()
        self._by_symbol.clear()
        self._total = Decimal(0)

    def unfilled_value(self, held: dict[str, int]) -> Decimal:
        """Value still to be bought or sold. A fill the poller has not reported yet already shows
        in the broker's position `held` (a symbol in flight cannot hold another position), so
        the larger of the two fill counts is used."""
        value = self._total
        for symbol, quantity in held.items():
            for execution_id in self._by_symbol.get(symbol, ()):
                order = self._orders[execution_id]
                seen = max(order.filled_qty, quantity)
                value -= order.unfilled(order.filled_qty) - order.unfilled(seen)
        return value
