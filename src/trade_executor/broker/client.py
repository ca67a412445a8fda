"""The IB bridge client (CONTRACT section 7): one `httpx.AsyncClient`, anyio (asyncio or trio).

Guarantees:
- Reads (GET) are retried with capped exponential backoff and jitter on connection errors,
  timeouts and 5xx, at most `read_retries` more times, then raise `BrokerUnavailable`. A 4xx or a
  malformed answer is not retried.
- Orders (POST) are attempted exactly once. The outcome is definite only when the bridge answered
  the documented JSON, a 4xx (`BrokerRejected`; `EndpointMissing` when its router has no such
  route), a 503 with the documented `{"detail": ...}` ("not connected to IB", raised before IB is
  asked: `BrokerUnavailable`), or when the connection could not even be opened (connect error,
  connect timeout, no free pooled connection: nothing was sent, so `BrokerUnavailable`).
  Everything else (a timeout or reset after sending, another 5xx, an unparsable 2xx) raises
  `AmbiguousSubmission` carrying the `order_ref`, the bridge's `detail` if it gave one (the real
  bridge answers 500 with IB's reason when IB refused before placing) and the attempt time;
  `locate_submission` settles it through `GET /orders`, never by sending again.
- A cancel (DELETE) is attempted once; failures raise a `BrokerError` (see `cancel_order`).
- If the caller's cancel scope interrupts a POST, the cancellation propagates untouched: the
  caller must then treat the submission as ambiguous itself.
- Prices IB left unset (1.797e+308) and non-finite numbers read as "no price" (None) wherever a
  price may be absent, and are refused where an amount is required (see `wire`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar
from urllib.parse import quote

import anyio
import httpx
import structlog
from pydantic import BaseModel, ValidationError

from trade_executor.domain.models import (
    Account,
    Action,
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
from . import jsonnum, locate, wire
from .errors import (
    AmbiguousSubmission,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    EndpointMissing,
    MalformedResponse,
    excerpt,
)
from .orderbook import OrderIndex, index_orders
from .reconcile import FindResult, SubmissionKey, match_order

if TYPE_CHECKING:
    from .protocol import Broker

log = structlog.get_logger(__name__)

T = TypeVar("T")
W = TypeVar("W", bound=BaseModel)

RequestHook = Callable[[str, str, float], None]

# Seconds per request. The real bridge can take over 5.7 s to place an order (up to 5 s to
# identify a new symbol, then fixed sleeps); its own Go client used 15 s.
DEFAULT_TIMEOUT = 15.0

# Errors raised before any byte of the request could have reached the bridge.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _validate(model: type[W], data: Any) -> W:
    return model.model_validate(data)


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "answer"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _detail(body: bytes) -> str | None:
    """The bridge's `{"detail": ...}` as text, or None if the body is not that shape."""
    try:
        data = jsonnum.loads(body, non_finite=True)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or "detail" not in data:
        return None
    detail = data["detail"]
    return detail if isinstance(detail, str) else jsonnum.dumps(detail)


def _price(value: Decimal | None, name: str) -> Decimal | None:
    """Prices go out as JSON numbers rounded to the cent; nonsense is refused before sending."""
    if value is None:
        return None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{name} must be a positive finite price, got {value}")
    return value.quantize(jsonnum.CENT, rounding=ROUND_HALF_UP)


def _quantity(value: int) -> int:
    if isinstance(value, bool) or value <= 0:
        raise ValueError(f"quantity must be a positive int, got {value!r}")
    return value


def _symbol_path(symbol: str, action: str) -> str:
    """`/positions/{symbol}/{action}` with the symbol upper-cased and escaped as one segment."""
    cleaned = symbol.strip().upper()
    if not cleaned:
        raise ValueError("symbol must not be empty")
    return f"/positions/{quote(cleaned, safe='')}/{action}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _compact(fields: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in fields.items() if v is not None}


class _IgnoredCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: the bridge's API is stateless."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


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
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if read_retries < 0 or backoff_base < 0 or timeout <= 0:
            raise ValueError("read_retries and backoff_base must be >= 0, timeout > 0")
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"Accept": "application/json"},
        )
        # The bridge sets no cookies, and running every answer through the cookie jar costs
        # about 15% of a request's CPU (measured: 10,000 pollers are CPU-bound on it).
        self._http._cookies = _IgnoredCookies()
        self._read_retries = read_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._on_request = on_request
        self._jitter = random.Random()  # jitter, not secrets
        self._clock = clock  # wall clock (aware) for attempt times, compared with the bridge's

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
        await self._http.aclose()

    # ---- reads -------------------------------------------------------------------------------

    async def health(self) -> BridgeHealth:
        return await self._read("/health", "GET /health", wire.HealthWire, lambda w: w.to_domain())

    async def account(self) -> Account:
        return await self._read(
            "/account", "GET /account", wire.AccountWire, lambda w: w.to_domain()
        )

    async def positions(self) -> list[Position]:
        return await self._read(
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

        return await self._read(
            f"/orders/{order_id}", "GET /orders/{id}", wire.OrderStatusWire, convert
        )

    async def orders(self) -> list[BrokerOrder]:
        """Every order of the bridge's IB session, finished ones included, as listed: orders of
        a previous session have `order_id` 0, odd statuses read `Unknown`, unset prices None.
        A bridge without this endpoint raises `EndpointMissing`."""
        return await self._read(
            "/orders", "GET /orders", wire.OrdersWire, lambda w: [o.to_domain() for o in w.orders]
        )

    async def order_index(self) -> OrderIndex:
        """One `GET /orders`, indexed by order id for the pollers (see `orderbook`)."""
        return index_orders(await self.orders())

    async def capabilities(self) -> caps.BridgeCapabilities:
        """Paper or live, connected, and which optional endpoints exist; places nothing.

        Raises `BrokerUnavailable` when the bridge cannot be reached (or a probe gets no
        answer), `MalformedResponse` when `/health` is not the documented JSON."""
        health = await self.health()
        routes = await self._routes_from_openapi()
        detected_by: Literal["openapi", "probes"] = "openapi"
        if routes is None:
            detected_by = "probes"
            routes = {endpoint: await self._probe(endpoint) for endpoint in caps.PROBED}
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

    async def find_order(
        self,
        order_ref: str,
        *,
        symbol: str,
        action: Action,
        quantity: int,
        price: Decimal | None,
        placed_after: datetime,
        order_type: OrderType | None = None,
    ) -> FindResult:
        """Reconciliation look-up over `GET /orders`; see `reconcile.match_order`.

        `placed_after` is compared with the bridge's clock: pass the attempt time minus any
        allowance for clock skew. Prefer `locate_submission`, which also says "not placed".
        """
        return match_order(
            await self.orders(),
            order_ref,
            symbol=symbol,
            action=action,
            quantity=quantity,
            price=price,
            placed_after=placed_after,
            order_type=order_type,
        )

    async def locate_submission(
        self,
        key: SubmissionKey,
        *,
        attempted_at: datetime,
        detail: str | None = None,
        clock_skew: timedelta = locate.CLOCK_SKEW,
        settle: timedelta = locate.SETTLE,
        rereads: int = locate.REREADS,
        reread_delay: float = locate.REREAD_DELAY,
    ) -> locate.Located:
        """Settle an ambiguous submission through `GET /orders`; see `locate.locate_submission`."""
        return await locate.locate_submission(
            self,
            key,
            attempted_at=attempted_at,
            detail=detail,
            clock_skew=clock_skew,
            settle=settle,
            rereads=rereads,
            reread_delay=reread_delay,
            now=self._clock,
        )

    # ---- orders ------------------------------------------------------------------------------

    async def place(self, req: AnyOrderRequest) -> PlacedOrder:
        if isinstance(req, BracketOrderRequest):
            return await self.place_bracket(req)
        return await self.place_order(req)

    async def place_order(self, req: OrderRequest) -> PlacedOrder:
        body = _compact(
            {
                "symbol": req.symbol,
                "action": req.action.value,
                "quantity": _quantity(req.quantity),
                "order_type": req.order_type.value,
                "limit_price": _price(req.limit_price, "limit_price"),
                "stop_price": _price(req.stop_price, "stop_price"),
                "order_ref": req.order_ref,
            }
        )
        answer = await self._submit("/orders", body, req.order_ref, wire.PlacedWire)
        return answer.to_domain()

    async def place_bracket(self, req: BracketOrderRequest) -> PlacedOrder:
        body = _compact(
            {
                "symbol": req.symbol,
                "action": req.action.value,
                "quantity": _quantity(req.quantity),
                "entry_order_type": req.entry_order_type.value,
                "entry_limit_price": _price(req.entry_limit_price, "entry_limit_price"),
                "stop_loss": _price(req.stop_loss, "stop_loss"),
                "take_profit": _price(req.take_profit, "take_profit"),
                "order_ref": req.order_ref,
            }
        )
        answer = await self._submit("/orders/bracket", body, req.order_ref, wire.BracketPlacedWire)
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
        body = _compact(
            {
                "quantity": None if quantity is None else _quantity(quantity),
                "order_type": order_type.value,
                "limit_price": _price(limit_price, "limit_price"),
            }
        )
        answer = await self._submit(
            _symbol_path(symbol, "close"),
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
        body = _compact(
            {
                "stop_loss": _price(stop_loss, "stop_loss"),
                "take_profit": _price(take_profit, "take_profit"),
                "quantity": None if quantity is None else _quantity(quantity),
                "replace_existing": replace_existing,
            }
        )
        answer = await self._submit(
            _symbol_path(symbol, "protect"),
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
        label = "DELETE /orders/{id}"
        started = time.perf_counter()
        try:
            response = await self._http.delete(f"/orders/{order_id}")
        except _NOT_SENT as exc:
            self._observe(label, _transport_outcome(exc), started)
            raise BrokerUnavailable(_describe(exc), endpoint=label) from exc
        except httpx.TransportError as exc:
            self._observe(label, _transport_outcome(exc), started)
            raise BrokerError(f"cancel outcome unknown: {_describe(exc)}", endpoint=label) from exc
        status, body = response.status_code, response.content
        detail = _detail(body)
        if caps.route_missing(status, detail):
            self._observe(label, "rejected", started)
            raise EndpointMissing(endpoint=label, status=status, excerpt=excerpt(body))
        if 400 <= status < 500:
            self._observe(label, "rejected", started)
            raise BrokerRejected(
                f"cancel refused: {detail if detail is not None else 'no detail'}",
                endpoint=label,
                status=status,
                excerpt=excerpt(body),
                detail=detail if detail is not None else excerpt(body),
            )
        if status == 503 and detail is not None:
            self._observe(label, "error", started)
            raise BrokerUnavailable(
                f"bridge not connected: {detail}",
                endpoint=label,
                status=status,
                excerpt=excerpt(body),
            )
        if not 200 <= status < 300:
            self._observe(label, "error", started)
            raise BrokerError(
                "cancel outcome unknown", endpoint=label, status=status, excerpt=excerpt(body)
            )
        return self._parse(label, response, started, wire.CancelWire, lambda w: w.to_domain())

    # ---- plumbing ----------------------------------------------------------------------------

    def _observe(self, label: str, outcome: str, started: float) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(label, outcome, time.perf_counter() - started)
        except Exception:  # a broken metrics hook must not change a broker outcome
            log.exception("broker.metrics_hook_failed", endpoint=label)

    def _backoff(self, retry: int) -> float:
        ceiling: float = min(self._backoff_max, self._backoff_base * 2.0 ** (retry - 1))
        return ceiling * self._jitter.uniform(0.5, 1.0)

    def _parse(
        self,
        label: str,
        response: httpx.Response,
        started: float,
        model: type[W],
        convert: Callable[[W], T],
    ) -> T:
        """A 2xx answer through its schema into domain objects, or `MalformedResponse`."""
        body = response.content
        try:
            result = convert(_validate(model, jsonnum.loads(body, non_finite=True)))
        except ValidationError as exc:
            reason = f"not the documented JSON: {_first_error(exc)}"
        except (ValueError, RecursionError) as exc:
            reason = f"not the documented JSON: {exc}"
        else:
            self._observe(label, "ok", started)
            return result
        self._observe(label, "malformed", started)
        raise MalformedResponse(
            reason, endpoint=label, status=response.status_code, excerpt=excerpt(body)
        )

    async def _read(self, path: str, label: str, model: type[W], convert: Callable[[W], T]) -> T:
        attempts = 1 + self._read_retries
        failure: BrokerError | None = None
        for attempt in range(attempts):
            if attempt:
                await anyio.sleep(self._backoff(attempt))
            started = time.perf_counter()
            try:
                response = await self._http.get(path)
            except httpx.TransportError as exc:
                self._observe(label, _transport_outcome(exc), started)
                failure = BrokerUnavailable(_describe(exc), endpoint=label)
                log.warning(
                    "broker.read_retry", endpoint=label, attempt=attempt + 1, error=str(exc)
                )
                continue
            status, body = response.status_code, response.content
            if status >= 500:
                self._observe(label, "error", started)
                detail = _detail(body)
                reason = f"not connected: {detail}" if status == 503 and detail else "bridge error"
                failure = BrokerUnavailable(
                    reason, endpoint=label, status=status, excerpt=excerpt(body)
                )
                log.warning("broker.read_retry", endpoint=label, attempt=attempt + 1, status=status)
                continue
            if not 200 <= status < 300:
                self._observe(label, "rejected" if status < 500 else "error", started)
                detail = _detail(body)
                if caps.route_missing(status, detail):
                    raise EndpointMissing(endpoint=label, status=status, excerpt=excerpt(body))
                raise BrokerError(
                    f"unexpected answer{': ' + detail if detail else ''}",
                    endpoint=label,
                    status=status,
                    excerpt=excerpt(body),
                )
            return self._parse(label, response, started, model, convert)
        assert failure is not None
        raise failure

    async def _routes_from_openapi(self) -> dict[caps.Endpoint, bool] | None:
        """The optional routes as the bridge's OpenAPI document lists them, or None without one."""
        label = "GET /openapi.json"
        started = time.perf_counter()
        try:
            response = await self._http.get("/openapi.json")
        except httpx.TransportError as exc:
            self._observe(label, _transport_outcome(exc), started)
            raise BrokerUnavailable(_describe(exc), endpoint=label) from exc
        self._observe(label, "ok" if response.status_code == 200 else "rejected", started)
        if response.status_code != 200:
            return None
        try:
            document = jsonnum.loads(response.content, non_finite=True)
        except (ValueError, RecursionError):
            return None
        return caps.routes_from_openapi(document)

    async def _probe(self, endpoint: caps.Endpoint) -> bool:
        """Whether the bridge has `endpoint`, from a request its router or validation refuses
        before any handler acts (see `capabilities`). Never retried."""
        label = f"probe {endpoint.label}"
        started = time.perf_counter()
        headers = {"Content-Type": "application/json"} if endpoint.probe_body is not None else {}
        try:
            response = await self._http.request(
                endpoint.method, endpoint.probe_path, content=endpoint.probe_body, headers=headers
            )
        except httpx.TransportError as exc:
            self._observe(label, _transport_outcome(exc), started)
            raise BrokerUnavailable(
                f"capability probe got no answer: {_describe(exc)}", endpoint=label
            ) from exc
        missing = caps.route_missing(response.status_code, _detail(response.content))
        self._observe(label, "ok", started)
        if 200 <= response.status_code < 300 and endpoint.method != "GET":
            # A bridge that accepts a body it must refuse is not the bridge we know.
            log.error("broker.probe_accepted", endpoint=endpoint.label, body=endpoint.probe_body)
        return not missing

    async def _submit(
        self,
        path: str,
        body: dict[str, object],
        order_ref: str | None,
        model: type[W],
        *,
        label: str | None = None,
    ) -> W:
        """POST an order exactly once; see the module docstring for what counts as definite."""
        label = label or f"POST {path}"
        attempted_at = self._clock()
        started = time.perf_counter()
        try:
            response = await self._http.post(
                path,
                content=jsonnum.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
        except _NOT_SENT as exc:
            self._observe(label, _transport_outcome(exc), started)
            raise BrokerUnavailable(
                f"could not connect, order not sent: {_describe(exc)}", endpoint=label
            ) from exc
        except httpx.TransportError as exc:
            self._observe(label, _transport_outcome(exc), started)
            raise AmbiguousSubmission(
                f"no answer after sending: {_describe(exc)}",
                endpoint=label,
                order_ref=order_ref,
                detail=f"no answer after sending: {_describe(exc)}",
                attempted_at=attempted_at,
            ) from exc
        status, raw = response.status_code, response.content
        detail = _detail(raw)
        if caps.route_missing(status, detail):
            self._observe(label, "rejected", started)
            raise EndpointMissing(endpoint=label, status=status, excerpt=excerpt(raw))
        if 400 <= status < 500:
            self._observe(label, "rejected", started)
            raise BrokerRejected(
                f"order refused: {detail if detail is not None else 'no detail'}",
                endpoint=label,
                status=status,
                excerpt=excerpt(raw),
                detail=detail if detail is not None else excerpt(raw),
            )
        if status == 503 and detail is not None:
            self._observe(label, "error", started)
            raise BrokerUnavailable(
                f"bridge not connected, order not placed: {detail}",
                endpoint=label,
                status=status,
                excerpt=excerpt(raw),
            )
        if not 200 <= status < 300:
            self._observe(label, "error", started)
            raise AmbiguousSubmission(
                f"unexpected answer{': ' + detail if detail else ''}",
                endpoint=label,
                order_ref=order_ref,
                status=status,
                excerpt=excerpt(raw),
                detail=detail,
                attempted_at=attempted_at,
            )
        try:
            answer = self._parse(label, response, started, model, _successful)
        except MalformedResponse as exc:
            raise AmbiguousSubmission(
                exc.reason,
                endpoint=label,
                order_ref=order_ref,
                status=status,
                excerpt=exc.excerpt,
                attempted_at=attempted_at,
            ) from exc
        return answer


if TYPE_CHECKING:
    # mypy checks here that the client satisfies the seam the actors depend on.
    def _satisfies_broker(client: BrokerClient) -> Broker:
        return client


def _successful(answer: W) -> W:
    if getattr(answer, "success", True) is not True:
        raise ValueError("success is false on a 2xx answer")
    return answer


def _transport_outcome(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return "connect_error"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "error"


def _describe(exc: httpx.TransportError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
