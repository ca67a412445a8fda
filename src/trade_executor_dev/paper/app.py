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
from decimal import Decimal

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from trade_executor.clock import utcnow
from trade_executor.domain.models import BrokerStatus

from . import admin, jaxroutes, views
from .config import PaperConfig
from .exchange import OrderError, Report
from .httpparts import ZERO, order_json, path_order_id, read_body, rfc3339, validated
from .requestlog import RequestLogMiddleware
from .requests import (
    BracketBody,
    OrderBody,
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

VERSION = "paper-1.0"
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>"
)

UNKNOWN = Report(BrokerStatus.UNKNOWN, 0, None)  # an order the bridge does not know

__all__ = ["JSON", "PaperBridge", "Refusal", "create_app"]


def _as_is(value: Decimal) -> Decimal:
    return value


# ---- the IB bridge API ---------------------------------------------------------------------


async def health(request: Request, bridge: PaperBridge) -> Response:
    return JSON(views.health_json(True, VERSION, ("simulated", bridge.paper_trading)))


async def account(request: Request, bridge: PaperBridge) -> Response:
    return JSON(views.account_json(bridge.broker.account(), _as_is))


async def positions(request: Request, bridge: PaperBridge) -> Response:
    return JSON(views.positions_json(bridge.broker.positions(), _as_is))


async def place_order(request: Request, bridge: PaperBridge) -> Response:
    body = validated(OrderBody, await read_body(request))
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
    return JSON(views.placed_json(order.order_id, "Order placed successfully"))


async def place_bracket(request: Request, bridge: PaperBridge) -> Response:
    body = validated(BracketBody, await read_body(request))
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
    return JSON(views.bracket_json(parent.order_id, [c.order_id for c in children], parent.symbol))


async def order_status(request: Request, bridge: PaperBridge) -> Response:
    order_id = path_order_id(request)
    order = bridge.broker.visible(order_id)
    if order is None:  # the real bridge's answer for an order it does not know
        report, updated = UNKNOWN, utcnow()
    else:
        report, updated = bridge.broker.read(order), order.updated_at
    avg_fill_price = report.avg_fill_price or ZERO
    return JSON(views.status_json(order_id, report, avg_fill_price, rfc3339(updated)))


async def list_orders(request: Request, bridge: PaperBridge) -> Response:
    items = []
    for order, restored in bridge.broker.listing():
        row = order_json(order, restored=restored)
        if not restored:
            report = bridge.broker.read(order)
            row["status"] = report.status.value
            row["filled_qty"] = report.filled_qty
            row["avg_fill_price"] = report.avg_fill_price or ZERO
        items.append(row)
    return JSON({"orders": items, "count": len(items)})


async def cancel_order(request: Request, bridge: PaperBridge) -> Response:
    order_id = path_order_id(request)
    try:
        order = bridge.broker.cancel(order_id)
    except OrderError as exc:
        raise Refusal(400, str(exc)) from None
    return JSON(views.cancelled_json(order.order_id, order.status.value))


def _ib_route(handler: Handler, bridge: PaperBridge, *, places_orders: bool = False) -> Endpoint:
    """Wrap an IB API handler in the fault knobs."""

    async def endpoint(request: Request) -> Response:
        faults = bridge.faults
        if faults.latency:
            await anyio.sleep(faults.latency)
        if bridge.roll(faults.error_rate):
            return JSON({"detail": "Internal error (injected fault)"}, status_code=500)
        if not bridge.connected or bridge.roll(faults.unavailable_rate):
            if handler is jaxroutes.health:
                return jaxroutes.disconnected_health(bridge)
            if handler is health:  # the real bridge reports itself up but disconnected
                return JSON(views.health_json(False, VERSION, None))
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

    routes += admin.routes(bridge)

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
