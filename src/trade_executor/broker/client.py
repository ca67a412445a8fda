"""The IB bridge client (CONTRACT section 7): one `httpx.AsyncClient`, anyio (asyncio or trio).

Guarantees:
- (CONTRACT v3) `timeout` (IB_BRIDGE_TIMEOUT) is a deadline for each whole call: the pool wait,
  connecting, sending and the whole answer, a read's retries included. An answer trickled
  slower than that is cut off (its connection closed): a read raises `BrokerUnavailable`, a
  POST `AmbiguousSubmission`, a cancel `BrokerError`.
- Reads (GET) are retried with capped exponential backoff and jitter on connection errors,
  timeouts and 5xx, at most `read_retries` more times within the deadline, then raise
  `BrokerUnavailable`. A 4xx or a
  malformed answer is not retried.
- Orders (POST) are attempted exactly once. The outcome is definite only when the bridge answered
  the documented JSON with a positive integer order id, a 4xx (`BrokerRejected`;
  `EndpointMissing` when its router has no such route), or when the connection could not even be
  opened (connect error, connect timeout, no free pooled connection: nothing was sent, so
  `BrokerUnavailable`). (CONTRACT v3) Everything else (a timeout or reset after sending, any
  5xx, the 503 "not connected" included since a proxy may answer it after forwarding, a 2xx
  whose order id is 0, missing or not an integer, a body that does not parse) raises
  `AmbiguousSubmission` carrying the `order_ref`, the bridge's `detail` if it gave one (the real
  bridge answers 500 with IB's reason when IB refused before placing) and the attempt time;
  `locate.locate_submission` settles it through `GET /orders`, never by sending again.
- A cancel (DELETE) is attempted once; failures raise a `BrokerError` (see `cancel_order`).
- If the caller's cancel scope interrupts a POST, the cancellation propagates untouched: the
  caller must then treat the submission as ambiguous itself.
- Prices IB left unset (1.797e+308) and non-finite numbers read as "no price" (None) wherever a
  price may be absent, and are refused where an amount is required (see `wire`).
"""

from __future__ import annotations

from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

import httpx

from trade_executor.clock import Clock, utcnow
from trade_executor.domain.models import (
    Account,
    AnyOrderRequest,
    BracketOrderRequest,
    BridgeHealth,
    BrokerOrder,
    CancelResult,
    OrderRequest,
    OrderStatus,
    OrderType,
    PlacedOrder,
    Position,
    ProtectionPlaced,
)

from . import capabilities as caps
from . import wire

if TYPE_CHECKING:
    from .protocol import Broker

from .transport import (
    BridgeTransport,
    RequestHook,
    compact,
    price_field,
    quantity_field,
    symbol_path,
)

# Seconds a whole call may take (see the module docstring). The real bridge can take over 5.7 s
# to place an order (up to 5 s to identify a new symbol, then fixed sleeps); its own Go client
# used 15 s.
DEFAULT_TIMEOUT = 15.0


class BrokerClient:
    """One per process: holds the connection pool. Use as `async with BrokerClient(...) as c:`.

    `on_request(endpoint, outcome, seconds)` is called once per HTTP attempt with `endpoint` like
    "GET /orders/{id}" and `outcome` one of "ok", "timeout", "connect_error", "error" (other
    transport failure or 5xx), "rejected" (4xx) and "malformed".
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        read_retries: int = 3,
        backoff_base: float = 0.1,
        backoff_max: float = 2.0,
        on_request: RequestHook | None = None,
        max_connections: int = 50,
        clock: Clock = utcnow,
    ) -> None:
        self._t = BridgeTransport(
            base_url,
            timeout,
            transport=transport,
            read_retries=read_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            on_request=on_request,
            max_connections=max_connections,
            clock=clock,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._t.aclose()

    # ---- reads -------------------------------------------------------------------------------

    async def health(self) -> BridgeHealth:
        return await self._t.read(
            "/health", "GET /health", wire.HealthWire, lambda w: w.to_domain()
        )

    async def account(self) -> Account:
        return await self._t.read(
            "/account", "GET /account", wire.AccountWire, lambda w: w.to_domain()
        )

    async def positions(self) -> list[Position]:
        return await self._t.read(
            "/positions",
            "GET /positions",
            wire.PositionsWire,
            lambda w: [p.to_domain() for p in w.positions],
        )

    async def order_status(self, order_id: int) -> OrderStatus:
        def convert(answer: wire.OrderStatusWire) -> OrderStatus:
            if answer.order_id != order_id:
                raise ValueError(f"asked for order {order_id}, answer is for {answer.order_id}")
            return answer.to_domain()

        return await self._t.read(
            f"/orders/{order_id}", "GET /orders/{id}", wire.OrderStatusWire, convert
        )

    async def orders(self) -> list[BrokerOrder]:
        """Every order of the bridge's IB session, finished ones included, as listed: orders of
        a previous session have `order_id` 0, odd statuses read `Unknown`, unset prices None.
        A bridge without this endpoint raises `EndpointMissing`. Decoded straight into domain
        orders (`wire.orders_from_body`: the reconciler and the pollers read lists of 10,000)."""
        return await self._t.read(
            "/orders",
            "GET /orders",
            wire.OrdersWire,
            lambda w: [o.to_domain() for o in w.orders],
            decode=wire.orders_from_body,
        )

    async def capabilities(self) -> caps.BridgeCapabilities:
        """Paper or live, connected, and which optional endpoints exist; places nothing.

        Raises `BrokerUnavailable` when the bridge cannot be reached (or a probe gets no
        answer), `MalformedResponse` when `/health` is not the documented JSON."""
        health = await self.health()
        routes = await self._t.routes_from_openapi()
        detected_by: Literal["openapi", "probes"] = "openapi"
        if routes is None:
            detected_by = "probes"
            routes = {endpoint: await self._t.probe(endpoint) for endpoint in caps.PROBED}
        return caps.BridgeCapabilities(
            connected=health.connected,
            paper_trading=health.paper_trading,
            version=health.version,
            bracket_orders=routes[caps.BRACKET],
            order_list=routes[caps.ORDER_LIST],
            cancel=routes[caps.CANCEL],
            close_position=routes[caps.CLOSE],
            protect_position=routes[caps.PROTECT],
            detected_by=detected_by,
        )

    # ---- orders ------------------------------------------------------------------------------

    async def place(self, req: AnyOrderRequest) -> PlacedOrder:
        if isinstance(req, BracketOrderRequest):
            return await self.place_bracket(req)
        return await self.place_order(req)

    async def place_order(self, req: OrderRequest) -> PlacedOrder:
        body = compact(
            {
                "symbol": req.symbol,
                "action": req.action.value,
                "quantity": quantity_field(req.quantity),
                "order_type": req.order_type.value,
                "limit_price": price_field(req.limit_price, "limit_price"),
                "stop_price": price_field(req.stop_price, "stop_price"),
                "order_ref": req.order_ref,
            }
        )
        answer = await self._t.submit("/orders", body, req.order_ref, wire.PlacedWire)
        return answer.to_domain()

    async def place_bracket(self, req: BracketOrderRequest) -> PlacedOrder:
        body = compact(
            {
                "symbol": req.symbol,
                "action": req.action.value,
                "quantity": quantity_field(req.quantity),
                "entry_order_type": req.entry_order_type.value,
                "entry_limit_price": price_field(req.entry_limit_price, "entry_limit_price"),
                "stop_loss": price_field(req.stop_loss, "stop_loss"),
                "take_profit": price_field(req.take_profit, "take_profit"),
                "order_ref": req.order_ref,
            }
        )
        answer = await self._t.submit(
            "/orders/bracket", body, req.order_ref, wire.BracketPlacedWire
        )
        return answer.to_domain()

    async def close_position(
        self,
        symbol: str,
        *,
        quantity: int | None = None,
        order_type: OrderType = OrderType.MKT,
        limit_price: Decimal | None = None,
    ) -> PlacedOrder:
        """`POST /positions/{symbol}/close`: one order (at market unless told) that flattens the
        position, or reduces it by `quantity`. Attempted once, like every order. The bridge
        answers 400 when there is no open position or the quantity exceeds it (`BrokerRejected`).
        """
        if order_type is OrderType.STP:
            raise ValueError("a position is closed with a MKT or LMT order")
        if order_type is OrderType.LMT and limit_price is None:
            raise ValueError("a LMT close needs a limit_price")
        body = compact(
            {
                "quantity": None if quantity is None else quantity_field(quantity),
                "order_type": order_type.value,
                "limit_price": price_field(limit_price, "limit_price"),
            }
        )
        answer = await self._t.submit(
            symbol_path(symbol, "close"),
            body,
            None,
            wire.PlacedWire,
            label="POST /positions/{symbol}/close",
        )
        return answer.to_domain()

    async def protect_position(
        self,
        symbol: str,
        *,
        stop_loss: Decimal,
        take_profit: Decimal | None = None,
        quantity: int | None = None,
        replace_existing: bool = True,
    ) -> ProtectionPlaced:
        """`POST /positions/{symbol}/protect`: a stop-loss (and a take-profit, one-cancels-other)
        for an open position; with `replace_existing` the bridge first cancels the position's
        working protective orders and lists them in `cancelled_order_ids`. Attempted once."""
        body = compact(
            {
                "stop_loss": price_field(stop_loss, "stop_loss"),
                "take_profit": price_field(take_profit, "take_profit"),
                "quantity": None if quantity is None else quantity_field(quantity),
                "replace_existing": replace_existing,
            }
        )
        answer = await self._t.submit(
            symbol_path(symbol, "protect"),
            body,
            None,
            wire.ProtectWire,
            label="POST /positions/{symbol}/protect",
        )
        return answer.to_domain()

    async def cancel_order(self, order_id: int) -> CancelResult:
        """One attempt. A 4xx (unknown order, already final) is `BrokerRejected`; no connection
        or a 503 "not connected" is `BrokerUnavailable` (nothing cancelled); a failure after
        sending is a plain `BrokerError` (the cancel may have happened: read the status)."""
        answer = await self._t.delete(f"/orders/{order_id}", "DELETE /orders/{id}", wire.CancelWire)
        return answer.to_domain()


if TYPE_CHECKING:
    # mypy checks here that the client satisfies the seam the actors depend on.
    def _satisfies_broker(client: BrokerClient) -> Broker:
        return client
