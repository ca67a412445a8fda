"""The account and positions answers of the bridge, shared by every profile: only how numbers
are written differs (Decimal for `ideal`, IB's floats for `jax`/`legacy`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from .exchange import AccountView, PositionView

Number = Callable[[Decimal], Any]


def account_json(view: AccountView, number: Number) -> dict[str, Any]:
    return {
        "account_id": view.account_id,
        "net_liquidation": number(view.net_liquidation),
        "total_cash": number(view.total_cash),
        "buying_power": number(view.buying_power),
        "equity_with_loan": number(view.equity_with_loan),
        "currency": view.currency,
    }


def positions_json(positions: Iterable[PositionView], number: Number) -> dict[str, Any]:
    items = [
        {
            "symbol": p.symbol,
            "contract_id": p.contract_id,
            "quantity": p.quantity,
            "avg_cost": number(p.avg_cost),
            "market_price": number(p.market_price),
            "market_value": number(p.market_value),
            "unrealized_pnl": number(p.unrealized_pnl),
            "realized_pnl": number(p.realized_pnl),
            "account": p.account,
        }
        for p in positions
    ]
    return {"positions": items, "count": len(items)}
