"""The paper bridge as a Starlette app: the IB bridge API (CONTRACT section 7) plus /admin.

The profile (`PaperConfig.profile`) decides which IB routes exist and how they answer: `ideal`
(this module's handlers), `jax` and `legacy` (`jaxroutes`). The IB routes go through the fault
knobs; /admin routes never do. All state lives in one `PaperBridge`, mutated only from the event
loop (handlers and the ticker change it between awaits, never across one), so every request sees
a consistent book.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from trade_executor.broker import jsonnum

from . import jaxroutes
from .config import PaperConfig
from .exchange import OrderError, PaperOrder
from .requestlog import RequestLogMiddleware
from .requests import (
    AccountBody,
    BracketBody,
    OrderBody,
    PriceBody,
    RestartBody,
    StepBody,
    SymbolsBody,
    describe,
)
from .state import (
    JSON,
    NOT_CONNECTED,
    DroppedResponse,
    Endpoint,
    Handler,
    PaperBridge,
    Refusal,
)
from .views import account_json, positions_json

VERSION = "paper-1.0"
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>"
)
_ZERO = Decimal("0.0")  # the real bridge's avg_fill_price when nothing has filled

__all__ = ["JSON", "PaperBridge", "Refusal", "create_app"]


def _rfc3339(moment: datetime) -> str:
    return jsonnum.rfc3339(moment)


def _order_json(order: PaperOrder, *, restored: bool = False) -> dict[str, object]:
    return {
        "order_id": 0 if restored else order.order_id,
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
        "parent_id": None if restored else order.parent_id,
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


def _as_is(value: Decimal) -> Decimal:
    return value


# ---- the IB bridge API ---------------------------------------------------------------------


async def health(request: Request, bridge: PaperBridge) -> Response:
    return JSON(
        {
            "status": "healthy",
            "connected": True,
            "version": VERSION,
            "market_data_mode": "simulated",
            "paper_trading": bridge.paper_trading,
        }
    )


async def account(request: Request, bridge: PaperBridge) -> Response:
    return JSON(account_json(bridge.broker.account(), _as_is))


async def positions(request: Request, bridge: PaperBridge) -> Response:
    return JSON(positions_json(bridge.broker.positions(), _as_is))


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
    bridge.maybe_phantom(order)
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
    bridge.maybe_phantom(parent)
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
    order = bridge.broker.visible(order_id)
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
    report = bridge.broker.read(order)
    return JSON(
        {
            "order_id": order.order_id,
            "status": report.status.value,
            "filled_qty": report.filled_qty,
            "avg_fill_price": report.avg_fill_price or _ZERO,
            "last_update": _rfc3339(order.updated_at),
        }
    )


async def list_orders(request: Request, bridge: PaperBridge) -> Response:
    items = []
    for order, restored in bridge.broker.listing():
        row = _order_json(order, restored=restored)
        if not restored:
            report = bridge.broker.read(order)
            row["status"] = report.status.value
            row["filled_qty"] = report.filled_qty
            row["avg_fill_price"] = report.avg_fill_price or _ZERO
        items.append(row)
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
            if handler is jaxroutes.health:
                return jaxroutes.disconnected_health(bridge)
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


async def restart(request: Request, bridge: PaperBridge) -> Response:
    """The bridge process restarts (IB keeps everything): its new session forgets the earlier
    orders by id; finished ones are listed as restored rows; positions are kept."""
    data = await _body(request) if await request.body() else {}
    body = _validated(RestartBody, data)
    bridge.broker.restart(relist_working=body.relist_working)
    return JSON({"session": bridge.broker.session, "restored": len(bridge.broker.restored)})


async def session_close(request: Request, bridge: PaperBridge) -> Response:
    """The trading session closes: open DAY orders expire (`Cancelled`)."""
    return JSON({"expired": bridge.broker.expire_day_orders()})


async def admin_orders(request: Request, bridge: PaperBridge) -> Response:
    broker = bridge.broker
    items = [
        {
            **_order_json(o),
            "received_at": o.received_at,
            "child_ids": o.child_ids,
            "tif": o.tif,
            "oca_group": o.oca_group,
            "session": o.session,
            "visible": o.session == broker.session,
            "phantom_reads": o.phantom_reads,
        }
        for o in broker.orders.values()
    ]
    return JSON({"orders": items, "count": len(items)})


async def requests_log(request: Request, bridge: PaperBridge) -> Response:
    log = bridge.requests
    items = [entry.as_json() for entry in log.entries]
    return JSON({"requests": items, "count": len(items), "dropped": log.dropped})


async def clear_requests(request: Request, bridge: PaperBridge) -> Response:
    bridge.requests.clear()
    return JSON({"cleared": True})


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
    """Amounts, the account id, and paper or live (what /health's `paper_trading` says)."""
    body = _validated(AccountBody, await _body(request))
    bridge.broker.set_account(body.net_liquidation, body.buying_power)
    if body.account_id is not None:
        bridge.broker.account_id = body.account_id
    if body.paper_trading is not None:
        bridge.paper_trading = body.paper_trading
    view = bridge.broker.account()
    return JSON(
        {
            "account_id": view.account_id,
            "net_liquidation": view.net_liquidation,
            "total_cash": view.total_cash,
            "buying_power": view.buying_power,
            "equity_with_loan": view.equity_with_loan,
            "currency": view.currency,
            "paper_trading": bridge.paper_trading,
        }
    )


async def set_symbols(request: Request, bridge: PaperBridge) -> Response:
    """The symbols the simulated IB cannot identify (replaces the set)."""
    body = _validated(SymbolsBody, await _body(request))
    bridge.unknown_symbols = {s.upper() for s in body.unknown}
    return JSON({"unknown": sorted(bridge.unknown_symbols)})


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


_IDEAL_ROUTES: list[tuple[str, Handler, str, bool]] = [
    ("/health", health, "GET", False),
    ("/account", account, "GET", False),
    ("/positions", positions, "GET", False),
    ("/orders", place_order, "POST", True),
    ("/orders/bracket", place_bracket, "POST", True),
    ("/orders", list_orders, "GET", False),
    ("/orders/{order_id}", order_status, "GET", False),
    ("/orders/{order_id}", cancel_order, "DELETE", False),
]


def create_app(config: PaperConfig, *, on_startup: Callable[[], None] | None = None) -> Starlette:
    """The paper bridge app. Its lifespan runs the price ticker (unless `tick_interval` <= 0);
    `on_startup` is called once the app is ready to serve. `app.state.bridge` is the state."""
    bridge = PaperBridge(config)
    table = _IDEAL_ROUTES if config.profile == "ideal" else jaxroutes.ib_routes(config.profile)
    routes = [
        Route(path, _ib_route(handler, bridge, places_orders=places), methods=[method])
        for path, handler, method, places in table
    ]
    if config.profile != "ideal":
        for route in routes:  # FastAPI's routes answer no implicit HEAD (Starlette's do)
            route.methods = {m for m in route.methods or () if m != "HEAD"}

    def admin(path: str, handler: Handler, method: str) -> Route:
        return Route(f"/admin{path}", _admin_route(handler, bridge), methods=[method])

    routes += [
        admin("/faults", get_faults, "GET"),
        admin("/faults", post_faults, "POST"),
        admin("/reset", reset, "POST"),
        admin("/restart", restart, "POST"),
        admin("/session-close", session_close, "POST"),
        admin("/orders", admin_orders, "GET"),
        admin("/requests", requests_log, "GET"),
        admin("/requests", clear_requests, "DELETE"),
        admin("/price", set_price, "POST"),
        admin("/prices", prices, "GET"),
        admin("/step", step, "POST"),
        admin("/account", set_account, "POST"),
        admin("/symbols", set_symbols, "POST"),
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

    middleware = []
    if config.request_log > 0:
        middleware.append(Middleware(RequestLogMiddleware, log=bridge.requests))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
        middleware=middleware,
    )
    app.state.bridge = bridge
    return app


async def _tick(bridge: PaperBridge, interval: float) -> None:
    """Moves the market every `interval` seconds until the app shuts down (then cancelled)."""
    while True:
        await anyio.sleep(interval)
        bridge.broker.step(1)
