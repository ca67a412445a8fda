"""The `jax` and `legacy` profiles: the real jax-trading-assistant bridge's endpoints.

Reproduced from services/ib-bridge (main.py, ib_client.py) as of March 2026 (`jax`) and as of
February 2026 (`legacy`, commit 77853c5), over the paper exchange instead of IB:

- every order is stamped with the bridge's own orderRef ("manual-entry", children
  "manual-bracket-child", "manual-close", "manual-protect"); a client's `order_ref` is ignored;
- a refused `POST /orders` (unknown symbol, missing price, unsupported type) answers 500 with the
  exception text as `detail`; the bracket, close, protect and DELETE endpoints answer 400;
- the bridge waits as the real one does, scaled by `Faults.latency_scale`: identifying a symbol
  seen for the first time (`qualify_seconds`, cut at 5 s by jax's timeout), then 0.5 s after
  placing an order, 0.2 s + 0.5 s for a bracket, 0.25 s per cancel;
- an order IB refuses after it was placed (a side other than BUY/SELL, a price <= 0) is answered
  200 with its id and then shows `Cancelled`, as ib_insync marks an order IB reported an error
  for.

Symbols: IB identifies a symbol unless it is in the bridge's unknown set or is not a plausible
ticker once upper-cased (letters and digits, inner '.', '-' or ' ').
"""

from __future__ import annotations

import re
from decimal import Decimal

import anyio
from starlette.requests import Request
from starlette.responses import Response

from trade_executor.clock import utcnow
from trade_executor.domain.models import Action, BrokerStatus, OrderType

from . import jaxwire as wire
from .exchange import OPEN, PaperOrder, Report
from .state import JSON, Handler, PaperBridge, Refusal
from .views import (
    account_json,
    bracket_json,
    cancelled_json,
    health_json,
    placed_json,
    positions_json,
    status_json,
)

QUALIFY_TIMEOUT = 5.0  # ib_client.py _qualify_stock_contract: asyncio.wait_for(..., timeout=5)
ORDER_SETTLE = 0.5  # ib_client.py place_order / close_position / protect_position: sleep(0.5)
BRACKET_PARENT = 0.2  # ib_client.py place_bracket_order: sleep(0.2) after the parent
BRACKET_SETTLE = 0.5  # ib_client.py place_bracket_order: sleep(0.5) after the children
CANCEL_WAIT = 0.25  # ib_client.py _cancel_trade: sleep(0.25)

_TICKER = re.compile(r"[A-Z0-9]+(?:[.\- ][A-Z0-9]+)*")
_SIDES = {"BUY": Action.BUY, "SELL": Action.SELL}


class IBRefused(ValueError):
    """A ValueError the real bridge raises before placing (its text becomes the `detail`)."""


# ---- shared steps --------------------------------------------------------------------------


async def _body(request: Request, model: type[wire.M]) -> wire.M:
    try:
        return wire.parse_body(model, await request.body())
    except wire.RequestInvalid as exc:
        raise Refusal(422, exc.errors) from None


def _path_order_id(request: Request) -> int:
    try:
        return wire.path_int("order_id", request.path_params["order_id"])
    except wire.RequestInvalid as exc:
        raise Refusal(422, exc.errors) from None


async def _qualify(bridge: PaperBridge, symbol: str) -> str:
    """Identify the symbol (the contract IB knows it by): upper-cased; the first time it costs
    `qualify_seconds` (jax gives up after 5 s and goes on with a fallback contract)."""
    upper = symbol.upper()
    if upper in bridge.unknown_symbols or not _TICKER.fullmatch(upper):
        raise IBRefused(f"Could not find contract for symbol {symbol}")
    if upper not in bridge.broker.qualified:
        seconds = bridge.faults.qualify_seconds
        if bridge.profile == "jax":
            seconds = min(seconds, QUALIFY_TIMEOUT)
        await bridge.ib_sleep(seconds)
        bridge.broker.qualified.add(upper)
    return upper


def _order_kind(bridge: PaperBridge, order_type: str) -> OrderType:
    # jax normalises (`.upper().strip()`); the legacy bridge compared the text as sent.
    text = order_type.upper().strip() if bridge.profile == "jax" else order_type
    try:
        return OrderType(text)
    except ValueError:
        raise IBRefused(f"Unsupported order type: {order_type}") from None


def _prices(
    kind: OrderType, limit_price: Decimal | None, stop_price: Decimal | None
) -> tuple[Decimal | None, Decimal | None]:
    """ib_client.py _build_order: the one price the type uses (the other is left unset)."""
    if kind is OrderType.LMT:
        if limit_price is None:
            raise IBRefused("Limit price required for limit orders")
        return limit_price, None
    if kind is OrderType.STP:
        if stop_price is None:
            raise IBRefused("Stop price required for stop orders")
        return None, stop_price
    return None, None


def _side(bridge: PaperBridge, action: str) -> Action | None:
    text = action.upper().strip() if bridge.profile == "jax" else action
    return _SIDES.get(text)


def _place(
    bridge: PaperBridge,
    symbol: str,
    action: str,
    quantity: int,
    kind: OrderType,
    prices: tuple[Decimal | None, Decimal | None],
    order_ref: str,
    oca_group: str | None = None,
) -> PaperOrder:
    """ib.placeOrder: the order exists from here on; IB refuses a bad side or price after."""
    limit, stop = prices
    side = _side(bridge, action)
    bad_price = any(p is not None and p <= 0 for p in prices)
    broker = bridge.broker
    if side is None or bad_price:
        order = broker.stage(symbol, side or Action.BUY, quantity, kind, limit, stop, order_ref)
        order.action_text = "" if side is not None else action.upper().strip()
        broker.reject(order)
        return order
    order = broker.place(
        symbol,
        side,
        quantity,
        kind,
        limit_price=limit,
        stop_price=stop,
        order_ref=order_ref,
        oca_group=oca_group,
    )
    bridge.maybe_phantom(order)
    return order


def _find_trade(bridge: PaperBridge, order_id: int) -> tuple[PaperOrder, bool] | None:
    """ib_client.py _find_trade: the first trade whose orderId matches (restored rows have 0)."""
    for order, restored in bridge.broker.listing():
        if (0 if restored else order.order_id) == order_id:
            return order, restored
    return None


def _report(bridge: PaperBridge, order: PaperOrder, restored: bool) -> Report:
    if restored:  # a completed order re-sent at connection carries no order status
        return Report(order.status, 0, None)
    return bridge.broker.read(order)


def _refused(exc: IBRefused, status: int) -> Refusal:
    return Refusal(status, str(exc))


# ---- the endpoints -------------------------------------------------------------------------


def _health(bridge: PaperBridge, connected: bool) -> Response:
    # The legacy HealthResponse had only status, connected and version.
    data = (wire.MARKET_DATA_MODE, bridge.paper_trading) if bridge.profile == "jax" else None
    return JSON(health_json(connected, wire.VERSION, data))


async def health(request: Request, bridge: PaperBridge) -> Response:
    return _health(bridge, True)


def disconnected_health(bridge: PaperBridge) -> Response:
    return _health(bridge, False)


async def account(request: Request, bridge: PaperBridge) -> Response:
    return JSON(account_json(bridge.broker.account(), wire.ib_float))


async def positions(request: Request, bridge: PaperBridge) -> Response:
    return JSON(positions_json(bridge.broker.positions(), wire.ib_float))


async def place_order(request: Request, bridge: PaperBridge) -> Response:
    """main.py place_order: any failure before placing is a 500 with the exception's text."""
    body = await _body(request, wire.OrderRequest)
    try:
        symbol = await _qualify(bridge, body.symbol)
        kind = _order_kind(bridge, body.order_type)
        prices = _prices(kind, body.limit_price, body.stop_price)
    except IBRefused as exc:
        raise _refused(exc, 500) from None
    ref = wire.REF_ENTRY if bridge.profile == "jax" else ""
    order = _place(bridge, symbol, body.action, body.quantity, kind, prices, ref)
    await bridge.ib_sleep(ORDER_SETTLE)
    return JSON(placed_json(order.order_id, "Order placed successfully"))


async def place_bracket(request: Request, bridge: PaperBridge) -> Response:
    """main.py place_bracket_order: a ValueError before placing is a 400."""
    body = await _body(request, wire.BracketOrderRequest)
    try:
        if body.stop_loss is None and body.take_profit is None:
            raise IBRefused("Bracket orders require at least a stop loss or take profit")
        symbol = await _qualify(bridge, body.symbol)
        kind = _order_kind(bridge, body.entry_order_type)
        limit, _ = _prices(kind, body.entry_limit_price, None)
    except IBRefused as exc:
        raise _refused(exc, 400) from None
    side = _side(bridge, body.action)
    broker = bridge.broker
    parent = broker.stage(
        symbol, side or Action.BUY, body.quantity, kind, limit, None, wire.REF_ENTRY
    )
    # The parent waits untransmitted while the bridge sleeps, then the children go and the last
    # one transmits all three. Shielded: IB goes on whatever happens to this HTTP request.
    with anyio.CancelScope(shield=True):
        await bridge.ib_sleep(BRACKET_PARENT)
        children = broker.attach_children(parent, body.take_profit, body.stop_loss, wire.REF_CHILD)
        if side is None:
            parent.action_text = body.action.upper().strip()
            broker.reject(parent)
        else:
            broker.transmit_bracket(parent, limit, body.stop_loss, body.take_profit)
            bridge.maybe_phantom(parent)
    await bridge.ib_sleep(BRACKET_SETTLE)
    return JSON(bracket_json(parent.order_id, [child.order_id for child in children], symbol))


async def list_orders(request: Request, bridge: PaperBridge) -> Response:
    rows = [
        wire.broker_order(order, _report(bridge, order, restored), restored=restored)
        for order, restored in bridge.broker.listing()
    ]
    rows = wire.newest_first(rows)
    return JSON({"orders": rows, "count": len(rows)})


async def order_status(request: Request, bridge: PaperBridge) -> Response:
    order_id = _path_order_id(request)
    found = _find_trade(bridge, order_id)
    unknown = Report(BrokerStatus.UNKNOWN, 0, None)  # ib_client.py get_order_status
    report = unknown if found is None else _report(bridge, *found)
    avg_fill_price = wire.ib_float(report.avg_fill_price)
    return JSON(status_json(order_id, report, avg_fill_price, wire.naive_utc_now()))


async def _cancel(bridge: PaperBridge, order: PaperOrder) -> None:
    """ib_client.py _cancel_trade: PendingCancel, 0.25 s, then IB's confirmation."""
    broker = bridge.broker
    with anyio.CancelScope(shield=True):
        broker.request_cancel(order)
        await bridge.ib_sleep(CANCEL_WAIT)
        broker.confirm_cancel(order)


async def cancel_order(request: Request, bridge: PaperBridge) -> Response:
    order_id = _path_order_id(request)
    found = _find_trade(bridge, order_id)
    if found is None:
        raise Refusal(400, f"Order {order_id} not found")
    order, restored = found
    status = order.status
    if restored or status not in OPEN:
        raise Refusal(400, f"Order {order_id} is not cancellable from status {status.value}")
    await _cancel(bridge, order)
    return JSON(cancelled_json(order_id, order.status.value))


def _exit_size(bridge: PaperBridge, symbol: str, asked: int | None, what: str) -> tuple[int, int]:
    """(shares held, shares to exit): all of the position unless `asked` is less."""
    held = bridge.broker.position_of(symbol)
    if held == 0:
        raise IBRefused(f"No open position found for {symbol}")
    quantity = asked or abs(held)
    if quantity > abs(held):
        raise IBRefused(f"{what} quantity must be between 1 and {abs(held)}")
    return held, quantity


async def close_position(request: Request, bridge: PaperBridge) -> Response:
    """main.py close_position: a market (or limit) order for all or part of the position."""
    symbol = request.path_params["symbol"]
    body = await _body(request, wire.ClosePositionRequest)
    try:
        held, quantity = _exit_size(bridge, symbol, body.quantity, "Close")
        contract = await _qualify(bridge, symbol)
        kind = _order_kind(bridge, body.order_type)
        prices = _prices(kind, body.limit_price, None)
    except IBRefused as exc:
        raise _refused(exc, 400) from None
    action = "SELL" if held > 0 else "BUY"
    order = _place(bridge, contract, action, quantity, kind, prices, wire.REF_CLOSE)
    await bridge.ib_sleep(ORDER_SETTLE)
    return JSON(placed_json(order.order_id, f"Close order submitted for {symbol.upper()}"))


def _replaceable(order: PaperOrder, symbol: str, exit_action: Action) -> bool:
    """ib_client.py protect_position: the open LMT/STP exits it cancels before protecting."""
    return (
        order.symbol == symbol
        and order.action is exit_action
        and not order.action_text
        and order.order_type in (OrderType.LMT, OrderType.STP)
        and order.status in OPEN
        and (order.order_ref in (wire.REF_PROTECT, wire.REF_CHILD) or order.parent_id is not None)
    )


async def protect_position(request: Request, bridge: PaperBridge) -> Response:
    """main.py protect_position: a stop (and a take-profit) in one OCA group, after cancelling
    the position's earlier protection when `replace_existing`."""
    symbol = request.path_params["symbol"]
    body = await _body(request, wire.ProtectPositionRequest)
    try:
        held, quantity = _exit_size(bridge, symbol, body.quantity, "Protection")
        contract = await _qualify(bridge, symbol)
    except IBRefused as exc:
        raise _refused(exc, 400) from None
    exit_action = Action.SELL if held > 0 else Action.BUY
    cancelled: list[int] = []
    if body.replace_existing:
        for order, restored in bridge.broker.listing():
            if not restored and _replaceable(order, contract, exit_action):
                await _cancel(bridge, order)
                cancelled.append(order.order_id)
    oca = f"protect-{contract}-{int(utcnow().timestamp())}"
    exits: list[tuple[OrderType, tuple[Decimal | None, Decimal | None]]] = [
        (OrderType.STP, (None, body.stop_loss))
    ]
    if body.take_profit is not None:
        exits.append((OrderType.LMT, (body.take_profit, None)))
    placed = [
        _place(
            bridge, contract, exit_action.value, quantity, kind, prices, wire.REF_PROTECT, oca
        ).order_id
        for kind, prices in exits
    ]
    await bridge.ib_sleep(ORDER_SETTLE)
    return JSON(
        {
            "success": True,
            "order_ids": placed,
            "cancelled_order_ids": cancelled,
            "message": f"Submitted protection for {contract}",
        }
    )


def ib_routes(profile: str) -> list[tuple[str, Handler, str, bool]]:
    """(path, handler, method, places_orders) in the real app's declaration order (it decides
    which of several matching routes answers, and so whether a missing one is 404 or 405)."""
    if profile == "legacy":  # main.py at 77853c5 (February 2026)
        return [
            ("/health", health, "GET", False),
            ("/orders", place_order, "POST", True),
            ("/orders/{order_id}", order_status, "GET", False),
            ("/positions", positions, "GET", False),
            ("/account", account, "GET", False),
        ]
    return [
        ("/health", health, "GET", False),
        ("/orders", place_order, "POST", True),
        ("/orders/bracket", place_bracket, "POST", True),
        ("/orders", list_orders, "GET", False),
        ("/orders/{order_id}", order_status, "GET", False),
        ("/orders/{order_id}", cancel_order, "DELETE", False),
        ("/positions", positions, "GET", False),
        ("/positions/{symbol}/close", close_position, "POST", True),
        ("/positions/{symbol}/protect", protect_position, "POST", True),
        ("/account", account, "GET", False),
    ]
