"""The paper bridge's admin endpoints (tests and demos): faults, prices, account, restarts, the
session close, the request log. Never part of the IB bridge's API."""

from __future__ import annotations

from decimal import Decimal

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .exchange import OrderError
from .httpparts import order_json, read_body, validated
from .requests import (
    AccountBody,
    DisconnectBody,
    FillBody,
    PriceBody,
    RestartBody,
    StepBody,
    SymbolsBody,
    describe,
)
from .state import (
    JSON,
    Endpoint,
    Handler,
    PaperBridge,
    Refusal,
)


async def get_faults(request: Request, bridge: PaperBridge) -> Response:
    return JSON(bridge.faults.model_dump())


async def post_faults(request: Request, bridge: PaperBridge) -> Response:
    changes = await read_body(request)
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
    data = await read_body(request) if await request.body() else {}
    body = validated(RestartBody, data)
    bridge.broker.restart(client_id_changed=body.forgets_working)
    bridge.reconnect()  # a restarted bridge connects again
    return JSON(
        {
            "session": bridge.broker.session,
            "restored": len(bridge.broker.restored),
            "client_id_changed": body.forgets_working,
        }
    )


async def fill(request: Request, bridge: PaperBridge) -> Response:
    """IB fills one working order now, whether or not the bridge is up or can see it."""
    body = validated(FillBody, await read_body(request))
    try:
        order = bridge.broker.fill_now(body.order_id, body.price)
    except OrderError as exc:
        raise Refusal(409, str(exc)) from None
    return JSON(order_json(order))


async def disconnect(request: Request, bridge: PaperBridge) -> Response:
    """IB connectivity lost (1100): /health says connected false, IB calls answer 503."""
    data = await read_body(request) if await request.body() else {}
    body = validated(DisconnectBody, data)
    bridge.disconnect(body.seconds)
    return _connection(bridge)


async def reconnect(request: Request, bridge: PaperBridge) -> Response:
    """IB connectivity restored, data kept (1102): the same bridge session goes on."""
    bridge.reconnect()
    return _connection(bridge)


async def connection(request: Request, bridge: PaperBridge) -> Response:
    return _connection(bridge)


def _connection(bridge: PaperBridge) -> Response:
    return JSON(
        {
            "connected": bridge.connected,
            "back_in_seconds": bridge.disconnected_for(),
            "session": bridge.broker.session,
        }
    )


async def session_close(request: Request, bridge: PaperBridge) -> Response:
    """The trading session closes: open DAY orders expire (`Cancelled`)."""
    return JSON({"expired": bridge.broker.expire_day_orders()})


async def admin_orders(request: Request, bridge: PaperBridge) -> Response:
    broker = bridge.broker
    items = [
        {
            **order_json(o),
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
    body = validated(PriceBody, await read_body(request))
    filled = bridge.broker.set_price(body.symbol, body.price)
    return JSON({"symbol": body.symbol.upper(), "price": body.price, "filled": filled})


async def prices(request: Request, bridge: PaperBridge) -> Response:
    market = bridge.broker.market
    return JSON({s: market.price(s) for s in market.symbols()})


async def step(request: Request, bridge: PaperBridge) -> Response:
    data = await read_body(request) if await request.body() else {}
    body = validated(StepBody, data)
    return JSON({"filled": bridge.broker.step(body.ticks)})


async def set_account(request: Request, bridge: PaperBridge) -> Response:
    """Amounts, the account id, and paper or live (what /health's `paper_trading` says)."""
    body = validated(AccountBody, await read_body(request))
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
    body = validated(SymbolsBody, await read_body(request))
    bridge.unknown_symbols = {s.upper() for s in body.unknown}
    return JSON({"unknown": sorted(bridge.unknown_symbols)})


# What `paper-bridge --help` lists (a test checks that it names every route below).
ENDPOINTS_HELP = """\
admin endpoints (tests and demos; never subject to the fault knobs):
  GET  /admin/faults, POST /admin/faults {latency?, error_rate?, unavailable_rate?,
       drop_after_accept?, html?, fill_mode?, partial_fill_qty?, cancelled_before_fill?,
       cancelled_reads?, latency_scale?, qualify_seconds?}   (a partial update)
  POST /admin/reset                      everything back to start-up
  POST /admin/restart {client_id_changed?: false}
       the bridge restarts and reconnects: working orders keep their ids (ib_insync re-reads
       them), finished ones are listed with order_id 0; client_id_changed: true hides the
       working ones from the new session (IB still works them)
  POST /admin/disconnect {seconds?}      IB connectivity lost (1100): /health connected false,
       IB calls answer 503, until the seconds pass or POST /admin/reconnect (1102, data kept)
  GET  /admin/connection                 connected, back_in_seconds, session
  POST /admin/fill {order_id, price?}    IB fills a working order now (also while down or
       invisible): at price, else its limit or stop, else the market
  POST /admin/session-close              the close: open DAY orders (jax, legacy) expire
  GET  /admin/orders                     every order, with session, visible, tif, oca_group
  GET  /admin/requests, DELETE /admin/requests   the IB API request log
  POST /admin/price {symbol, price}      move a price now (and fill what it crosses)
  GET  /admin/prices, POST /admin/step {ticks?}  the simulated market
  POST /admin/account {net_liquidation?, buying_power?, account_id?, paper_trading?}
  POST /admin/symbols {unknown: [...]}   symbols IB cannot identify (jax, legacy)
"""


def _admin_route(handler: Handler, bridge: PaperBridge) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, bridge)
        except Refusal as exc:
            return JSON({"detail": exc.detail}, status_code=exc.status)

    return endpoint


def routes(bridge: PaperBridge) -> list[Route]:
    """The /admin routes of one paper bridge."""

    def admin(path: str, handler: Handler, method: str) -> Route:
        return Route(f"/admin{path}", _admin_route(handler, bridge), methods=[method])

    return [
        admin("/faults", get_faults, "GET"),
        admin("/faults", post_faults, "POST"),
        admin("/reset", reset, "POST"),
        admin("/restart", restart, "POST"),
        admin("/session-close", session_close, "POST"),
        admin("/fill", fill, "POST"),
        admin("/disconnect", disconnect, "POST"),
        admin("/reconnect", reconnect, "POST"),
        admin("/connection", connection, "GET"),
        admin("/orders", admin_orders, "GET"),
        admin("/requests", requests_log, "GET"),
        admin("/requests", clear_requests, "DELETE"),
        admin("/price", set_price, "POST"),
        admin("/prices", prices, "GET"),
        admin("/step", step, "POST"),
        admin("/account", set_account, "POST"),
        admin("/symbols", set_symbols, "POST"),
    ]
