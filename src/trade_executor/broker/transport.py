"""The HTTP mechanics of the bridge client: one pooled `httpx.AsyncClient`, reads retried with
backoff, orders sent once, answers classified into the broker's errors. `BrokerClient` builds
the bridge's endpoints on top; see its module docstring for the guarantees.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import httpx
import structlog
from pydantic import BaseModel, ValidationError

from . import capabilities as caps
from . import jsonnum
from .errors import (
    AmbiguousSubmission,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    EndpointMissing,
    MalformedResponse,
    excerpt,
)

log = structlog.get_logger("trade_executor.broker.client")

T = TypeVar("T")
W = TypeVar("W", bound=BaseModel)

RequestHook = Callable[[str, str, float], None]

# Errors raised before any byte of the request could have reached the bridge.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def validate_answer(model: type[W], data: Any) -> W:
    return model.model_validate(data)


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "answer"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def detail_of(body: bytes) -> str | None:
    """The bridge's `{"detail": ...}` as text, or None if the body is not that shape."""
    try:
        data = jsonnum.loads(body, non_finite=True)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or "detail" not in data:
        return None
    detail = data["detail"]
    return detail if isinstance(detail, str) else jsonnum.dumps(detail)


def price_field(value: Decimal | None, name: str) -> Decimal | None:
    """Prices go out as JSON numbers rounded to the cent; nonsense is refused before sending."""
    if value is None:
        return None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{name} must be a positive finite price, got {value}")
    return value.quantize(jsonnum.CENT, rounding=ROUND_HALF_UP)


def quantity_field(value: int) -> int:
    if isinstance(value, bool) or value <= 0:
        raise ValueError(f"quantity must be a positive int, got {value!r}")
    return value


def symbol_path(symbol: str, action: str) -> str:
    """`/positions/{symbol}/{action}` with the symbol upper-cased and escaped as one segment."""
    cleaned = symbol.strip().upper()
    if not cleaned:
        raise ValueError("symbol must not be empty")
    return f"/positions/{quote(cleaned, safe='')}/{action}"


def compact(fields: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in fields.items() if v is not None}


def _plain_http(base_url: str) -> bool:
    return base_url.strip().lower().startswith("http://")


class _IgnoredCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: the bridge's API is stateless."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class BridgeTransport:
    """Requests to the bridge, each observed once through `on_request(endpoint, outcome, s)`."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        *,
        transport: httpx.AsyncBaseTransport | None,
        read_retries: int,
        backoff_base: float,
        backoff_max: float,
        on_request: RequestHook | None,
        max_connections: int,
        clock: Callable[[], datetime],
    ) -> None:
        if read_retries < 0 or backoff_base < 0 or timeout <= 0:
            raise ValueError("read_retries and backoff_base must be >= 0, timeout > 0")
        # (CONTRACT v3) `timeout` (IB_BRIDGE_TIMEOUT) is a deadline for a whole call: waiting
        # for a pooled connection, connecting, sending and reading the whole answer, a read's
        # retries included. httpx's own timeouts bound each phase and each socket read only,
        # so an answer trickled a byte at a time would never end: see `_exchange`.
        self.timeout = timeout
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"Accept": "application/json"},
            # An http:// bridge never speaks TLS: building the default SSL context (the CA
            # bundle read and parsed) cost 0.2-0.8 s per client at start (issue 22).
            verify=not _plain_http(base_url),
        )
        # The bridge sets no cookies, and running every answer through the cookie jar costs
        # about 15% of a request's CPU (measured: 10,000 pollers are CPU-bound on it).
        self.http._cookies = _IgnoredCookies()
        self._read_retries = read_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._on_request = on_request
        self._jitter = random.Random()  # jitter, not secrets
        self.clock = clock  # wall clock (aware) for attempt times, compared with the bridge's

    async def aclose(self) -> None:
        await self.http.aclose()

    def observe(self, label: str, outcome: str, started: float) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(label, outcome, time.perf_counter() - started)
        except Exception:  # a broken metrics hook must not change a broker outcome
            log.exception("broker.metrics_hook_failed", endpoint=label)

    def deadline(self) -> float:
        """The moment (anyio's clock) a call starting now must have ended by."""
        return anyio.current_time() + self.timeout

    async def _exchange(
        self, send: Callable[[], Awaitable[httpx.Response]], deadline: float
    ) -> httpx.Response | None:
        """One HTTP exchange, cut off at `deadline`: the response (its whole body read), or
        None when the deadline came first. Cutting it off closes the connection (httpcore never
        returns a connection interrupted mid-answer to the pool)."""
        with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
            return await send()
        return None

    def _past_deadline(self) -> str:
        return f"no whole answer within IB_BRIDGE_TIMEOUT ({self.timeout:g} s)"

    def backoff(self, retry: int) -> float:
        ceiling: float = min(self._backoff_max, self._backoff_base * 2.0 ** (retry - 1))
        return ceiling * self._jitter.uniform(0.5, 1.0)

    def parse(
        self,
        label: str,
        response: httpx.Response,
        started: float,
        model: type[W],
        convert: Callable[[W], T],
        decode: Callable[[bytes], T] | None = None,
    ) -> T:
        """A 2xx answer through its schema into domain objects, or `MalformedResponse`.
        `decode` (the body straight to the result) replaces the schema and `convert`: it must
        raise what they raise for what they refuse (see `wire.orders_from_body`)."""
        body = response.content
        try:
            if decode is not None:
                result = decode(body)
            else:
                result = convert(validate_answer(model, jsonnum.loads(body, non_finite=True)))
        except ValidationError as exc:
            reason = f"not the documented JSON: {_first_error(exc)}"
        except (ValueError, RecursionError) as exc:
            reason = f"not the documented JSON: {exc}"
        else:
            self.observe(label, "ok", started)
            return result
        self.observe(label, "malformed", started)
        raise MalformedResponse(
            reason, endpoint=label, status=response.status_code, excerpt=excerpt(body)
        )

    async def read(
        self,
        path: str,
        label: str,
        model: type[W],
        convert: Callable[[W], T],
        decode: Callable[[bytes], T] | None = None,
    ) -> T:
        attempts = 1 + self._read_retries
        failure: BrokerError | None = None
        deadline = self.deadline()
        for attempt in range(attempts):
            if attempt:
                left = deadline - anyio.current_time()
                if left <= 0:
                    break  # the retries share the call's deadline
                await anyio.sleep(min(self.backoff(attempt), left))
            started = time.perf_counter()
            try:
                response = await self._exchange(lambda: self.http.get(path), deadline)
            except httpx.TransportError as exc:
                self.observe(label, _transport_outcome(exc), started)
                failure = BrokerUnavailable(_describe(exc), endpoint=label)
                log.warning(
                    "broker.read_retry", endpoint=label, attempt=attempt + 1, error=str(exc)
                )
                continue
            if response is None:
                self.observe(label, "timeout", started)
                failure = BrokerUnavailable(self._past_deadline(), endpoint=label)
                break
            status, body = response.status_code, response.content
            if status >= 500:
                self.observe(label, "error", started)
                detail = detail_of(body)
                reason = f"not connected: {detail}" if status == 503 and detail else "bridge error"
                failure = BrokerUnavailable(
                    reason, endpoint=label, status=status, excerpt=excerpt(body)
                )
                log.warning("broker.read_retry", endpoint=label, attempt=attempt + 1, status=status)
                continue
            if not 200 <= status < 300:
                self.observe(label, "rejected" if status < 500 else "error", started)
                detail = detail_of(body)
                if caps.route_missing(status, detail):
                    raise EndpointMissing(endpoint=label, status=status, excerpt=excerpt(body))
                raise BrokerError(
                    f"unexpected answer{': ' + detail if detail else ''}",
                    endpoint=label,
                    status=status,
                    excerpt=excerpt(body),
                )
            return self.parse(label, response, started, model, convert, decode)
        assert failure is not None
        raise failure

    async def routes_from_openapi(self) -> dict[caps.Endpoint, bool] | None:
        """The optional routes as the bridge's OpenAPI document lists them, or None without one."""
        label = "GET /openapi.json"
        started = time.perf_counter()
        try:
            response = await self._exchange(lambda: self.http.get("/openapi.json"), self.deadline())
        except httpx.TransportError as exc:
            self.observe(label, _transport_outcome(exc), started)
            raise BrokerUnavailable(_describe(exc), endpoint=label) from exc
        if response is None:
            self.observe(label, "timeout", started)
            raise BrokerUnavailable(self._past_deadline(), endpoint=label)
        self.observe(label, "ok" if response.status_code == 200 else "rejected", started)
        if response.status_code != 200:
            return None
        try:
            document = jsonnum.loads(response.content, non_finite=True)
        except (ValueError, RecursionError):
            return None
        return caps.routes_from_openapi(document)

    async def probe(self, endpoint: caps.Endpoint) -> bool:
        """Whether the bridge has `endpoint`, from a request its router or validation refuses
        before any handler acts (see `capabilities`). Never retried."""
        label = f"probe {endpoint.label}"  # for messages; the metric gets the endpoint's own
        observed = endpoint.metric_label
        started = time.perf_counter()
        headers = {"Content-Type": "application/json"} if endpoint.probe_body is not None else {}
        try:
            response = await self._exchange(
                lambda: self.http.request(
                    endpoint.method,
                    endpoint.probe_path,
                    content=endpoint.probe_body,
                    headers=headers,
                ),
                self.deadline(),
            )
        except httpx.TransportError as exc:
            self.observe(observed, _transport_outcome(exc), started)
            raise BrokerUnavailable(
                f"capability probe got no answer: {_describe(exc)}", endpoint=label
            ) from exc
        if response is None:
            self.observe(observed, "timeout", started)
            raise BrokerUnavailable(
                f"capability probe got no answer: {self._past_deadline()}", endpoint=label
            )
        missing = caps.route_missing(response.status_code, detail_of(response.content))
        self.observe(observed, "ok", started)
        if 200 <= response.status_code < 300 and endpoint.method != "GET":
            # A bridge that accepts a body it must refuse is not the bridge we know.
            log.error("broker.probe_accepted", endpoint=endpoint.label, body=endpoint.probe_body)
        return not missing

    async def submit(
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
        attempted_at = self.clock()
        started = time.perf_counter()
        content = jsonnum.dumps(body).encode()
        try:
            response = await self._exchange(
                lambda: self.http.post(
                    path, content=content, headers={"Content-Type": "application/json"}
                ),
                self.deadline(),
            )
        except _NOT_SENT as exc:
            self.observe(label, _transport_outcome(exc), started)
            raise BrokerUnavailable(
                f"could not connect, order not sent: {_describe(exc)}", endpoint=label
            ) from exc
        except httpx.TransportError as exc:
            self.observe(label, _transport_outcome(exc), started)
            raise AmbiguousSubmission(
                f"no answer after sending: {_describe(exc)}",
                endpoint=label,
                order_ref=order_ref,
                detail=f"no answer after sending: {_describe(exc)}",
                attempted_at=attempted_at,
            ) from exc
        if response is None:
            # Cut off at the deadline: the request may have been sent whole (or while the
            # connection was still being opened: ambiguous errs on the side of looking).
            self.observe(label, "timeout", started)
            raise AmbiguousSubmission(
                self._past_deadline(),
                endpoint=label,
                order_ref=order_ref,
                detail=self._past_deadline(),
                attempted_at=attempted_at,
            )
        status, raw = response.status_code, response.content
        detail = detail_of(raw)
        # (CONTRACT v3) Only a 4xx is a clear refusal. Any 5xx, the documented 503 "not
        # connected" included, may come from a proxy or a bridge that lost IB's answer after
        # placing: it is located through the order list, never taken as "not placed".
        self._raise_definite_refusal(label, started, status, raw, detail, "order", None)
        if not 200 <= status < 300:
            self.observe(label, "error", started)
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
            answer = self.parse(label, response, started, model, successful)
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

    def _raise_definite_refusal(
        self,
        label: str,
        started: float,
        status: int,
        body: bytes,
        detail: str | None,
        what: str,
        consequence: str | None,
    ) -> None:
        """Raise for the answers whose outcome is definite: a missing route
        (`EndpointMissing`), a 4xx (`BrokerRejected`: the bridge refused `what`), and, where
        `consequence` is given (a cancel), a 503 with the documented detail
        (`BrokerUnavailable`: not connected, so `consequence`). An order POST passes None:
        its 503 is ambiguous."""
        if caps.route_missing(status, detail):
            self.observe(label, "rejected", started)
            raise EndpointMissing(endpoint=label, status=status, excerpt=excerpt(body))
        if 400 <= status < 500:
            self.observe(label, "rejected", started)
            raise BrokerRejected(
                f"{what} refused: {detail if detail is not None else 'no detail'}",
                endpoint=label,
                status=status,
                excerpt=excerpt(body),
                detail=detail if detail is not None else excerpt(body),
            )
        if consequence is not None and status == 503 and detail is not None:
            self.observe(label, "error", started)
            raise BrokerUnavailable(
                f"bridge not connected, {consequence}: {detail}",
                endpoint=label,
                status=status,
                excerpt=excerpt(body),
            )

    async def delete(self, path: str, label: str, model: type[W]) -> W:
        """One attempt. A 4xx (unknown order, already final) is `BrokerRejected`; no connection
        or a 503 "not connected" is `BrokerUnavailable` (nothing cancelled); a failure after
        sending is a plain `BrokerError` (the cancel may have happened: read the status)."""
        started = time.perf_counter()
        try:
            response = await self._exchange(lambda: self.http.delete(path), self.deadline())
        except _NOT_SENT as exc:
            self.observe(label, _transport_outcome(exc), started)
            raise BrokerUnavailable(_describe(exc), endpoint=label) from exc
        except httpx.TransportError as exc:
            self.observe(label, _transport_outcome(exc), started)
            raise BrokerError(f"cancel outcome unknown: {_describe(exc)}", endpoint=label) from exc
        if response is None:
            self.observe(label, "timeout", started)
            raise BrokerError(f"cancel outcome unknown: {self._past_deadline()}", endpoint=label)
        status, body = response.status_code, response.content
        self._raise_definite_refusal(
            label, started, status, body, detail_of(body), "cancel", "nothing cancelled"
        )
        if not 200 <= status < 300:
            self.observe(label, "error", started)
            raise BrokerError(
                "cancel outcome unknown", endpoint=label, status=status, excerpt=excerpt(body)
            )
        return self.parse(label, response, started, model, lambda w: w)


def successful(answer: W) -> W:
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
