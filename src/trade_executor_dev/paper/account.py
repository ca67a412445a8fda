"""The paper bridge's account side: cash, buying power and positions.

Accounting (a cash account): a fill of signed quantity q at price p moves cash by -q x p. Net
liquidation is cash plus every position at the current price; buying power is the configured
amount plus the change in cash, less twice the value of short positions (a short sale's proceeds
are not buying power).
"""

from __future__ import annotations

import zlib
from decimal import Decimal

from trade_executor.broker.jsonnum import CENT

from .config import PaperConfig
from .market import Market
from .orders import AccountView, Holding, PositionView


class PaperAccount:
    """The account views of `PaperBroker` (its base): the state they read is the broker's, set by
    `PaperBroker.reset` and moved by its fills."""

    config: PaperConfig
    market: Market
    holdings: dict[str, Holding]
    cash: Decimal
    account_id: str
    _cash_base: Decimal
    _buying_power_base: Decimal

    def account(self) -> AccountView:
        net = self.cash + sum((self._market_value(s) for s in self.holdings), Decimal(0))
        return AccountView(
            account_id=self.account_id,
            net_liquidation=net.quantize(CENT),
            total_cash=self.cash.quantize(CENT),
            buying_power=self.buying_power().quantize(CENT),
            equity_with_loan=net.quantize(CENT),
            currency=self.config.currency,
        )

    def buying_power(self) -> Decimal:
        shorts = sum(
            (-self._market_value(s) for s, h in self.holdings.items() if h.quantity < 0),
            Decimal(0),
        )
        return self._buying_power_base + (self.cash - self._cash_base) - 2 * shorts

    def set_account(
        self, net_liquidation: Decimal | None = None, buying_power: Decimal | None = None
    ) -> None:
        """Make the account report these amounts now (cash absorbs the net liquidation change)."""
        if net_liquidation is not None:
            self.cash += net_liquidation - self.account().net_liquidation
        if buying_power is not None:
            self._buying_power_base += buying_power - self.buying_power()

    def positions(self) -> list[PositionView]:
        views = []
        for symbol, holding in self.holdings.items():
            if holding.quantity == 0:
                continue
            price = self.market.price(symbol) or Decimal(0)
            value = self._market_value(symbol)
            views.append(
                PositionView(
                    symbol=symbol,
                    contract_id=zlib.crc32(symbol.encode()) % 1_000_000_000,
                    quantity=holding.quantity,
                    avg_cost=holding.avg_cost.quantize(Decimal("0.0001")),
                    market_price=price,
                    market_value=value.quantize(CENT),
                    unrealized_pnl=(value - holding.cost).quantize(CENT),
                    realized_pnl=holding.realized.quantize(CENT),
                    account=self.account_id,
                )
            )
        return views

    def _market_value(self, symbol: str) -> Decimal:
        price = self.market.price(symbol)
        return Decimal(0) if price is None else self.holdings[symbol].quantity * price
