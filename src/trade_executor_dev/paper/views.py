"""The answers of the bridge that every profile gives in the same shape (health, account,
positions, an order placed, a bracket placed, an order's status, a cancel): only what goes in
them differs (Decimal for `ideal`, IB's floats for `jax`/`legacy`; versions, time stamps).

Guarantees: one place per answer's shape, its keys in the order the real bridge writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from .exchange import AccountView, PositionView, Report

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


def health_json(
    connected: bool, version: str, data: tuple[str, bool | None] | None
) -> dict[str, object]:
    """`/health`; `data` is (market_data_mode, paper_trading), where the profile says them."""
    body: dict[str, object] = {
        "status": "healthy" if connected else "degraded",
        "connected": connected,
        "version": version,
    }
    if data is not None:
        body["market_data_mode"], body["paper_trading"] = data
    return body


def placed_json(order_id: int, message: str) -> dict[str, object]:
    """An order placed (`POST /orders`, a close)."""
    return {"success": True, "order_id": order_id, "message": message}


def bracket_json(parent_id: int, child_ids: list[int], symbol: str) -> dict[str, object]:
    return {
        "success": True,
        "parent_order_id": parent_id,
        "child_order_ids": child_ids,
        "message": f"Bracket order submitted for {symbol}",
    }


def status_json(
    order_id: int, report: Report, avg_fill_price: object, last_update: str
) -> dict[str, object]:
    """`GET /orders/{id}`: `avg_fill_price` as the profile writes the report's."""
    return {
        "order_id": order_id,
        "status": report.status.value,
        "filled_qty": report.filled_qty,
        "avg_fill_price": avg_fill_price,
        "last_update": last_update,
    }


def cancelled_json(order_id: int, status: str) -> dict[str, object]:
    """`DELETE /orders/{id}`: the cancel was requested; `status` is the order's now."""
    return {
        "success": True,
        "order_id": order_id,
        "status": status,
        "message": f"Cancel requested for order {order_id}",
    }
