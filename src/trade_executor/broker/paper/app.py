"""The paper bridge as a Starlette app: the IB bridge API (CONTRACT section 7) plus /admin.

The IB routes go through the fault knobs; /admin routes never do. All state lives in one
`PaperBridge`, mutated only from the event loop (handlers and the ticker never await while
changing it), so every request sees a consistent book.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from trade_executor.broker import jsonnum

from .config import Faults, PaperConfig
from .exchange import OrderError, PaperBroker, PaperOrder
from .requests import AccountBody, BracketBody, OrderBody, PriceBody, StepBody, describe

VERSION = "paper-1.0"
NOT_CONNECTED = "Not connected to IB Gateway"
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>"
)
_ZERO = Decimal("0.0")  # the real bridge's avg_fill_price when nothing has filled


class JSON(Response):
    """JSON whose Decimals go out as exact numbers."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return jsonnum.dumps(content).encode()


class DroppedResponse(Response):
    """Sends a status line promising a body, then nothing: the server must close the connection.

    (Hypercorn answers 500 for an app that fails before responding, so a response that starts and
    never finishes is the closest an ASGI app gets to dropping the connection.)
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


class Refusal(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class PaperBridge:
    """The app's state: the brokerage, the fault knobs and the fault dice."""

    def __init__(self, config: PaperConfig) -> None:
        self.config = config
        self.broker = PaperBroker(config)
        self.faults = config.faults.model_copy()
        self._dice = random.Random(config.seed)

    def reset(self) -> None:
        self.faults = self.config.faults.model_copy()
        self._dice = random.Random(self.config.seed)
        self.broker.reset()

    def set_faults(self, changes: dict[str, Any]) -> None:
        self.faults = Faults.model_validate({**self.faults.model_dump(), **changes})
        self.broker.fill_mode = self.faults.fill_mode

    def roll(self, rate: float) -> bool:
        # Rates of 0 consume no randomness, so fault-free runs stay reproducible.
        return rate > 0 and self._dice.random() < rate


def _rfc3339(moment: datetime) -> str:
    return jsonnum.rfc3339(moment)


def _order_json(order: PaperOrder) -> dict[str, object]:
    return {
        "order_id": order.order_id,
        "symbol": order.symbol,
        "action": order.action.value,
        "order_type": order.order_type.value,
        "quantity": order.quantity,
        "limit_price": order.limit_price,
        "stop_price": order.stop_price,
        "status": order.status.value,
        "filled_qty": order.filled_qty,
        "remaining_qty": order.remaining_qty,
        "avg_fill_price": order.avg_fill_price or _ZERO,
        "parent_id": order.parent_id,
        "order_ref": order.order_ref,
        "created_at": _rfc3339(order.created_at),
        "updated_at": _rfc3339(order.updated_at),
    }


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return jsonnum.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Refusal(400, f"Malformed JSON body: {exc}") from None


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Refusal(422, describe(exc)) from None


def _order_id(request: Request) -> int:
    raw = request.path_params["order_id"]
    if not raw.isdigit():
        raise Refusal(422, f"order_id: expected an integer, got {raw!r}")
    return int(raw)


Handler = Callable[[Request, PaperBridge], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


# ---- the IB bridge API ---------------------------------------------------------------------


async def health(request: Request, bridge: PaperBridge) -> Response:
    return JSON(
        {
            "status": "healthy",
            "connected": True,
            "version": VERSION,
            "market_data_mode": "simulated",
            "paper_trading": True,
        }
    )


async def account(request: Request, bridge: PaperBridge) -> Response:
    view = bridge.broker.account()
    return JSON(
        {
            "account_id": view.account_id,
            "net_liquidation": view.net_liquidation,
            "total_cash": view.total_cash,
            "buying_power": view.buying_power,
            "equity_with_loan": view.equity_with_loan,
            "currency": view.currency,
        }
    )


async def positions(request: Request, bridge: PaperBridge) -> Response:
    items = [
        {
            "symbol": p.symbol,
            "contract_id": p.contract_id,
            "quantity": p.quantity,
            "avg_cost": p.avg_cost,
            "market_price": p.market_price,
            "market_value": p.market_value,
            "unrealized_pnl": p.unrealized_pnl,
            "realized_pnl": p.realized_pnl,
            "account": p.account,
        }
        for p in bridge.broker.positions()
    ]
    return JSON({"positions": items, "count": len(items)})


async def place_order(request: Request, bridge: PaperBridge) -> Response:
    body = _validated(OrderBody, await _body(request))
    try:
        order = bridge.broker.place(
            body.symbol,
            body.action,
            body.quantity,
            body.order_type,
            limit_price=body.limit_price,
            stop_price=body.stop_price,
            order_ref=body.order_ref,
        )
    except OrderError as exc:
        raise Refusal(400, str(exc)) from None
    return JSON(
        {"success": True, "order_id": order.order_id, "message": "Order placed successfully"}
    )


async def place_bracket(request: Request, bridge: PaperBridge) -> Response:
    body = _validated(BracketBody, await _body(request))
    try:
        parent, children = bridge.broker.place_bracket(
            body.symbol,
            body.action,
            body.quantity,
            body.entry_order_type,
            entry_limit_price=body.entry_limit_price,
            stop_loss=body.stop_loss,
            take_profit=body.take_profit,
            order_ref=body.order_ref,
        )
    except OrderError as exc:
        raise Refusal(400, str(exc)) from None
    return JSON(
        {
            "success": True,
            "parent_order_id": parent.order_id,
            "child_order_ids": [c.order_id for c in children],
            "message": f"Bracket order submitted for {parent.symbol}",
        }
    )


async def order_status(request: Request, bridge: PaperBridge) -> Response:
    order_id = _order_id(request)
    order = bridge.broker.orders.get(order_id)
    if order is None:  # the real bridge's answer for an order it does not know
        return JSON(
            {
                "order_id": order_id,
                "status": "Unknown",
                "filled_qty": 0,
                "avg_fill_price": _ZERO,
                "last_update": _rfc3339(datetime.now(UTC)),
            }
        )
    return JSON(
        {
            "order_id": order.order_id,
            "status": order.status.value,
            "filled_qty": order.filled_qty,
            "avg_fill_price": order.avg_fill_price or _ZERO,
            "last_update": _rfc3339(order.updated_at),
        }
    )


async def list_orders(request: Request, bridge: PaperBridge) -> Response:
    items = [_order_json(o) for o in bridge.broker.orders.values()]
    return JSON({"orders": items, "count": len(items)})


async def cancel_order(request: Request, bridge: PaperBridge) -> Response:
    order_id = _order_id(request)
    try:
        order = bridge.broker.cancel(order_id)
    except OrderError as exc:
        raise Refusal(400, str(exc)) from None
    return JSON(
        {
            "success": True,
            "order_id": order.order_id,
            "status": order.status.value,
            "message": f"Cancel requested for order {order.order_id}",
        }
    )


def _ib_route(handler: Handler, bridge: PaperBridge, *, places_orders: bool = False) -> Endpoint:
    """Wrap an IB API handler in the fault knobs."""

    async def endpoint(request: Request) -> Response:
        faults = bridge.faults
        if faults.latency:
            await anyio.sleep(faults.latency)
        if bridge.roll(faults.error_rate):
            return JSON({"detail": "Internal error (injected fault)"}, status_code=500)
        if bridge.roll(faults.unavailable_rate):
            if handler is health:  # the real bridge reports itself up but disconnected
                return JSON({"status": "degraded", "connected": False, "version": VERSION})
            return JSON({"detail": NOT_CONNECTED}, status_code=503)
        try:
            response = await handler(request, bridge)
        except Refusal as exc:
            response = JSON({"detail": exc.detail}, status_code=exc.status)
        accepted = 200 <= response.status_code < 300
        if places_orders and accepted and bridge.roll(faults.drop_after_accept):
            return DroppedResponse()
        if bridge.roll(faults.html):
            return HTMLResponse(_HTML_PAGE)
        return response

    return endpoint


# ---- admin (tests and demos) ---------------------------------------------------------------


async def get_faults(request: Request, bridge: PaperBridge) -> Response:
    return JSON(bridge.faults.model_dump())


async def post_faults(request: Request, bridge: PaperBridge) -> Response:
    changes = await _body(request)
    if not isinstance(changes, dict):
        raise Refusal(422, "expected a JSON object of fault settings")
    try:
        bridge.set_faults(
            {k: float(v) if isinstance(v, Decimal) else v for k, v in changes.items()}
        )
    except ValidationError as exc:
        raise Refusal(422, describe(exc)) from None
    return JSON(bridge.faults.model_dump())


async def reset(request: Request, bridge: PaperBridge) -> Response:
    bridge.reset()
    return JSON({"reset": True})


async def admin_orders(request: Request, bridge: PaperBridge) -> Response:
    items = [
        {**_order_json(o), "received_at": o.received_at, "child_ids": o.child_ids}
        for o in bridge.broker.orders.values()
    ]
    return JSON({"orders": items, "count": len(items)})


async def set_price(request: Request, bridge: PaperBridge) -> Response:
    body = _validated(PriceBody, await _body(request))
    filled = bridge.broker.set_price(body.symbol, body.price)
    return JSON({"symbol": body.symbol.upper(), "price": body.price, "filled": filled})


async def prices(request: Request, bridge: PaperBridge) -> Response:
    market = bridge.broker.market
    return JSON({s: market.price(s) for s in market.symbols()})


async def step(request: Request, bridge: PaperBridge) -> Response:
    data = await _body(request) if await request.body() else {}
    body = _validated(StepBody, data)
    return JSON({"filled": bridge.broker.step(body.ticks)})


async def set_account(request: Request, bridge: PaperBridge) -> Response:
    body = _validated(AccountBody, await _body(request))
    bridge.broker.set_account(body.net_liquidation, body.buying_power)
    return await account(request, bridge)


def _admin_route(handler: Handler, bridge: PaperBridge) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, bridge)
        except Refusal as exc:
            return JSON({"detail": exc.detail}, status_code=exc.status)

    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSON({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_app(config: PaperConfig, *, on_startup: Callable[[], None] | None = None) -> Starlette:
    """The paper bridge app. Its lifespan runs the price ticker (unless `tick_interval` <= 0);
    `on_startup` is called once the app is ready to serve. `app.state.bridge` is the state."""
    bridge = PaperBridge(config)

    def ib(path: str, handler: Handler, method: str, **kw: bool) -> Route:
        return Route(path, _ib_route(handler, bridge, **kw), methods=[method])

    def admin(path: str, handler: Handler, method: str) -> Route:
        return Route(f"/admin{path}", _admin_route(handler, bridge), methods=[method])

    routes = [
        ib("/health", health, "GET"),
        ib("/account", account, "GET"),
        ib("/positions", positions, "GET"),
        ib("/orders", place_order, "POST", places_orders=True),
        ib("/orders/bracket", place_bracket, "POST", places_orders=True),
        ib("/orders", list_orders, "GET"),
        ib("/orders/{order_id}", order_status, "GET"),
        ib("/orders/{order_id}", cancel_order, "DELETE"),
        admin("/faults", get_faults, "GET"),
        admin("/faults", post_faults, "POST"),
        admin("/reset", reset, "POST"),
        admin("/orders", admin_orders, "GET"),
        admin("/price", set_price, "POST"),
        admin("/prices", prices, "GET"),
        admin("/step", step, "POST"),
        admin("/account", set_account, "POST"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            if config.tick_interval > 0:
                tasks.start_soon(_tick, bridge, config.tick_interval)
            if on_startup is not None:
                on_startup()
            yield
            tasks.cancel_scope.cancel()

    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
    app.state.bridge = bridge
    return app


async def _tick(bridge: PaperBridge, interval: float) -> None:
    """Moves the market every `interval` seconds until the app shuts down (then cancelled)."""
    while True:
        await anyio.sleep(interval)
        bridge.broker.step(1)
