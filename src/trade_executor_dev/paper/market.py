"""Simulated reference prices: one seeded random walk per symbol, moved one tick at a time.

Each symbol has its own generator seeded by (seed, symbol), so a symbol's path depends only on the
seed and the number of ticks since it appeared, not on what else is traded.
"""

from __future__ import annotations

import random
from decimal import Decimal

from trade_executor.broker.jsonnum import CENT


class Market:
    def __init__(self, seed: int, volatility: Decimal) -> None:
        if volatility < 0:
            raise ValueError("volatility must be >= 0")
        self._seed = seed
        self._volatility = volatility
        self._prices: dict[str, Decimal] = {}
        self._paths: dict[str, random.Random] = {}

    def price(self, symbol: str) -> Decimal | None:
        return self._prices.get(symbol)

    def symbols(self) -> list[str]:
        return list(self._prices)

    def ensure(self, symbol: str, start: Decimal) -> Decimal:
        """The symbol's price, starting it at `start` if it is new."""
        if symbol not in self._prices:
            self._paths[symbol] = random.Random(f"{self._seed}:{symbol}")
            self._prices[symbol] = _cents(start)
        return self._prices[symbol]

    def set(self, symbol: str, price: Decimal) -> None:
        self.ensure(symbol, price)
        self._prices[symbol] = _cents(price)

    def tick(self) -> None:
        """Move every symbol by one step: price x (1 + volatility x N(0, 1)), at least a cent."""
        for symbol, path in self._paths.items():
            # The draw is a float, but money is not: it is rounded into a Decimal shock first.
            shock = Decimal(f"{path.gauss(0.0, 1.0):.6f}") * self._volatility
            moved = _cents(self._prices[symbol] * (1 + shock))
            self._prices[symbol] = max(moved, CENT)

    def clear(self) -> None:
        self._prices.clear()
        self._paths.clear()


def _cents(price: Decimal) -> Decimal:
    if not price.is_finite() or price <= 0:
        raise ValueError(f"a price must be positive and finite, got {price}")
    return price.quantize(CENT)
