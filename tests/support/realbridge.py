"""Answers of the real jax-trading-assistant bridge (services/ib-bridge, FastAPI 0.109, pydantic
2.5, ib_insync 0.9.86), byte for byte as its code produces them: its handlers were run on this
machine over a fake IB socket and their answers recorded. One function per shape, so a test
names exactly the quirk it reproduces.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

# ib_insync's UNSET_DOUBLE (sys.float_info.max), as the bridge's JSON writes it.
UNSET = 1.7976931348623157e308
UNSET_TEXT = "1.7976931348623157e+308"


def listed(
    order_id: int,
    *,
    symbol: str = "AAPL",
    action: str = "BUY",
    order_type: str = "LMT",
    quantity: int = 10,
    limit_price: float | None = None,
    stop_price: float | None = None,
    status: str = "PreSubmitted",
    filled_qty: int = 0,
    avg_fill_price: float = 0.0,
    parent_id: int | None = None,
    order_ref: str = "manual-entry",
    created_at: str = "2026-03-09T14:30:00.517570+00:00",
    updated_at: str | None = None,
) -> dict[str, Any]:
    """One entry of `GET /orders` as `_serialize_trade` writes it: a price IB left unset is
    listed as UNSET (its `_optional_price` keeps anything > 0), `parent_id` null for none."""
    return {
        "order_id": order_id,
        "symbol": symbol,
        "action": action,
        "order_type": order_type,
        "quantity": quantity,
        "limit_price": UNSET if limit_price is None else limit_price,
        "stop_price": UNSET if stop_price is None else stop_price,
        "status": status,
        "filled_qty": filled_qty,
        "remaining_qty": quantity - filled_qty,
        "avg_fill_price": avg_fill_price,
        "source": "broker",
        "can_cancel": status in {"ApiPending", "PendingSubmit", "PreSubmitted", "Submitted"},
        "parent_id": parent_id,
        "order_ref": order_ref,
        "created_at": created_at,
        "updated_at": updated_at or created_at,
    }


def bracket(
    parent_id: int,
    *,
    entry_type: str = "LMT",
    entry_price: float | None = 150.0,
    stop_loss: float = 145.0,
    take_profit: float = 160.0,
    quantity: int = 5,
    action: str = "BUY",
    created_at: str = "2026-03-09T14:30:00.516998+00:00",
) -> list[dict[str, Any]]:
    """A bracket as listed: the parent stamped "manual-entry", then take-profit (LMT) and
    stop-loss (STP) children stamped "manual-bracket-child" with `parent_id` set."""
    exit_action = "SELL" if action == "BUY" else "BUY"
    return [
        listed(
            parent_id,
            action=action,
            order_type=entry_type,
            quantity=quantity,
            limit_price=entry_price if entry_type == "LMT" else None,
            created_at=created_at,
        ),
        listed(
            parent_id + 1,
            action=exit_action,
            order_type="LMT",
            quantity=quantity,
            limit_price=take_profit,
            parent_id=parent_id,
            order_ref="manual-bracket-child",
            created_at=created_at,
        ),
        listed(
            parent_id + 2,
            action=exit_action,
            order_type="STP",
            quantity=quantity,
            stop_price=stop_loss,
            parent_id=parent_id,
            order_ref="manual-bracket-child",
            created_at=created_at,
        ),
    ]


def order_list(*entries: dict[str, Any]) -> httpx.Response:
    return json_answer(200, {"orders": list(entries), "count": len(entries)})


def json_answer(status: int, data: Any) -> httpx.Response:
    """JSON as Starlette writes it (compact separators; floats by repr, so UNSET stays exact)."""
    body = json.dumps(data, separators=(",", ":"), allow_nan=True).encode()
    return httpx.Response(status, content=body, headers={"content-type": "application/json"})


def detail(status: int, text: str) -> httpx.Response:
    return json_answer(status, {"detail": text})


NOT_CONNECTED = "Not connected to IB Gateway"  # its 503 detail, raised before IB is asked
NOT_FOUND = {"detail": "Not Found"}  # its router, for a path it does not have
METHOD_NOT_ALLOWED = {"detail": "Method Not Allowed"}  # the path exists for another method


def method_not_allowed(allow: str) -> httpx.Response:
    answer = json_answer(405, METHOD_NOT_ALLOWED)
    answer.headers["allow"] = allow
    return answer


def validation_error(loc: list[str], msg: str = "Field required") -> httpx.Response:
    """FastAPI's 422, answered before the handler runs."""
    return json_answer(
        422, {"detail": [{"type": "missing", "loc": loc, "msg": msg, "input": {}, "url": "u"}]}
    )


HEALTH = {
    "status": "healthy",
    "connected": True,
    "version": "1.0.0",
    "market_data_mode": "delayed",
    "paper_trading": True,
}
HEALTH_BEFORE_MARCH_2026 = {"status": "healthy", "connected": True, "version": "1.0.0"}

# The route table of its OpenAPI document (paths and methods only; the rest is irrelevant).
OPENAPI_PATHS: dict[str, list[str]] = {
    "/health": ["get"],
    "/connect": ["post"],
    "/disconnect": ["post"],
    "/quotes/{symbol}": ["get"],
    "/candles/{symbol}": ["get", "post"],
    "/orders": ["get", "post"],
    "/orders/bracket": ["post"],
    "/orders/{order_id}": ["delete", "get"],
    "/positions": ["get"],
    "/positions/{symbol}/close": ["post"],
    "/positions/{symbol}/protect": ["post"],
    "/account": ["get"],
}
OPENAPI_PATHS_BEFORE_MARCH_2026: dict[str, list[str]] = {
    "/health": ["get"],
    "/connect": ["post"],
    "/disconnect": ["post"],
    "/quotes/{symbol}": ["get"],
    "/candles/{symbol}": ["get", "post"],
    "/orders": ["post"],
    "/orders/{order_id}": ["get"],
    "/positions": ["get"],
    "/account": ["get"],
}


def openapi(paths: dict[str, list[str]]) -> httpx.Response:
    return json_answer(
        200,
        {
            "openapi": "3.1.0",
            "info": {"title": "IB Bridge API", "version": "1.0.0"},
            "paths": {p: {m: {"responses": {}} for m in ms} for p, ms in paths.items()},
        },
    )


Router = Callable[[httpx.Request], httpx.Response]


def routed(table: Mapping[tuple[str, str], httpx.Response | list[httpx.Response]]) -> Router:
    """A bridge answering by (method, path); a list is answered in order, its last entry then
    repeats; any other request gets the router's 404."""
    served: dict[tuple[str, str], int] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        key = (request.method, request.url.path)
        reply = table.get(key)
        if reply is None:
            return json_answer(404, NOT_FOUND)
        if isinstance(reply, list):
            index = served.get(key, 0)
            served[key] = index + 1
            return reply[min(index, len(reply) - 1)]
        return reply

    return handle
