"""The paper bridge's admin endpoints (tests and demos): faults, prices, account, restarts, the
session close, the request log. Never part of the IB bridge's API."""

from __future__ import annotations

from decimal import Decimal

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .httpparts import order_json, read_body, validated
from .requests import (
    AccountBody,
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
    bridge.broker.restart(relist_working=body.relist_working)
    return JSON({"session": bridge.broker.session, "restored": len(bridge.broker.restored)})


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
        admin("/orders", admin_orders, "GET"),
        admin("/requests", requests_log, "GET"),
        admin("/requests", clear_requests, "DELETE"),
        admin("/price", set_price, "POST"),
        admin("/prices", prices, "GET"),
        admin("/step", step, "POST"),
        admin("/account", set_account, "POST"),
        admin("/symbols", set_symbols, "POST"),
    ]
