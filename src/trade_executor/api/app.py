"""The HTTP API (CONTRACT section 6): /api/v1/execute, /api/v1/close, /api/v1/executions/{id},
/health, /metrics, and the operator's console under /console (`api.console`).

`POST /api/v1/execute` goes through the executor's mailbox like a notification does: there is no
second execution path. The claim in the database decides who executes; the API only waits for
the outcome of the signal. `close` and `protect` are the operations the command line and the
console run (`ops.close.close`, `ops.protect.protect`): the same checks, the same refusals.
"""

from __future__ import annotations

import hmac
import json
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trade_executor import __version__
from trade_executor.api.console import console_routes
from trade_executor.api.gateway import Gateway
from trade_executor.broker.jsonnum import dumps
from trade_executor.config.sources import Settings
from trade_executor.domain.execution import Execution
from trade_executor.domain.states import ExecutionState
from trade_executor.observability.logging import get_logger, log_repeated
from trade_executor.ops.close import close
from trade_executor.ops.common import Context, Refusal
from trade_executor.ops.protect import protect
from trade_executor.store.lookup import (
    AmbiguousId,
    IdSyntaxError,
    NoSuchExecution,
    event_view,
    execution_view,
    parse_id,
)
from trade_executor.store.lookup import load as load_execution
from trade_executor.store.protocol import Store

log = get_logger("trade_executor.api")

MAX_BODY = 16 * 1024
MAX_APPROVER = 200
EXECUTE_WAIT = 30.0
CLOSE_WAIT = 30.0
MAX_REASON = 500
DEPENDENCY_TIMEOUT = 2.0
SUCCESS_STATES = frozenset(
    {
        ExecutionState.SUBMITTED,
        ExecutionState.PARTIALLY_FILLED,
        ExecutionState.FILLED,
        ExecutionState.DRY_RUN,
        ExecutionState.CANCELLED,
    }
)


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


def error(message: str, status: int, **extra: Any) -> Response:
    return json_response({"error": message, **extra}, status)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (404 no such route, 405 wrong method) as JSON, like ours."""
    assert isinstance(exc, HTTPException)
    messages = {404: "not found", 405: "method not allowed"}
    message = messages.get(exc.status_code) or str(exc.detail)
    response = error(f"{message}: {request.method} {request.url.path}", exc.status_code)
    if exc.headers:
        response.headers.update(exc.headers)  # 405's Allow
    return response


def create_app(settings: Settings, gateway: Gateway) -> Starlette:
    api = _Api(settings, gateway)
    return Starlette(
        routes=[
            Route("/api/v1/execute", api.execute, methods=["POST"]),
            Route("/api/v1/close", api.close, methods=["POST"]),
            Route("/api/v1/protect", api.protect, methods=["POST"]),
            Route("/api/v1/executions/{id}", api.execution, methods=["GET"]),
            Route("/api/v1/report", api.report, methods=["GET"]),
            Route("/health", api.health, methods=["GET"]),
            Route("/metrics", api.metrics, methods=["GET"]),
            *console_routes(settings, gateway),
        ],
        exception_handlers={HTTPException: _http_error},
    )


class _Api:
    def __init__(self, settings: Settings, gateway: Gateway) -> None:
        self._settings = settings
        self._gateway = gateway

    def _unauthorised(self, request: Request) -> Response | None:
        """The 403/401 answer of a POST without the API token, else None (every POST route)."""
        token = self._settings.api_token
        if token is None or not token.get_secret_value():
            return error("POST endpoints are disabled: API_TOKEN is not set", 403)
        if _authorised(request, token.get_secret_value()):
            return None
        # Rate-limited per client: a caller left on an old token (after a rotation) is seen
        # once, then once a minute with a count, never a line per request.
        client = request.client.host if request.client is not None else None
        log_repeated(
            ("api.unauthorized", client),
            "api.unauthorized",
            client=client,
            path=request.url.path,
            header="present" if request.headers.get("authorization") else "missing",
        )
        return error("missing or invalid bearer token", 401)

    # -- POST /api/v1/execute -------------------------------------------------------------------

    async def execute(self, request: Request) -> Response:
        started = time.perf_counter()
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        gateway = self._gateway
        outcomes, store = gateway.outcomes, gateway.store
        if outcomes is None or store is None:
            return error(f"not ready: this instance is {gateway.facts().role}", 503)
        body = await _read_body(request)
        if isinstance(body, Response):
            return body
        signal_id, approved_by = body
        if await store.get_signal(signal_id) is None:
            return error(f"signal {signal_id} not found", 404)
        existing = await store.execution_for_signal(signal_id)
        if existing is not None:
            trade = await _trade(store, signal_id)
            return error(
                "signal already executed",
                409,
                execution_id=str(existing.id),
                state=existing.state.value,
                trade=trade,
            )
        if gateway.facts().halted:
            # Still goes through the executor, which records the rejection with its reason.
            log.info("api.execute_while_halted", signal_id=str(signal_id))
        waiting = outcomes.expect(signal_id)
        approval_id = await store.approve(signal_id, approved_by)
        gateway.approval_seen(approval_id)
        outcome = await outcomes.wait(waiting, EXECUTE_WAIT)
        if outcome is None:
            # Another path (the listener, before this request) may own it: report what we know.
            outcome = await store.execution_for_signal(signal_id)
            if outcome is None or not _reportable(outcome):
                return error("timed out waiting for the execution", 504)
        duration = round(time.perf_counter() - started, 6)
        if outcome.state in SUCCESS_STATES:
            trade = await _trade(store, signal_id)
            return json_response(
                {
                    "success": True,
                    "trade_id": str(outcome.id),
                    "order_id": outcome.order_id,
                    "trade": trade,
                    "duration": duration,
                }
            )
        return error(
            outcome.reason or outcome.state.value,
            422,
            state=outcome.state.value,
            execution_id=str(outcome.id),
            duration=duration,
        )

    # -- GET /api/v1/executions/{id} ---------------------------------------------------------------

    async def execution(self, request: Request) -> Response:
        """One execution and its events; {id} is an execution id, a signal id, or an unambiguous
        prefix of either (at least 4 hex digits)."""
        store = self._gateway.store
        if store is None:
            return error(f"not ready: this instance is {self._gateway.facts().role}", 503)
        try:
            pattern = parse_id(request.path_params["id"])
        except IdSyntaxError as bad:
            return error(str(bad), 400)
        try:
            execution, events = await load_execution(store, pattern)
        except AmbiguousId as ambiguous:
            return error(str(ambiguous), 400)
        except NoSuchExecution as missing:
            return error(str(missing), 404)
        return json_response(
            {
                "execution": execution_view(execution),
                "events": [event_view(event) for event in events],
            }
        )

    # -- GET /api/v1/report ----------------------------------------------------------------------

    async def report(self, request: Request) -> Response:
        """The `report` command's JSON: `day=D` or `from=D&to=D`, and `strategy=S`."""
        query = request.query_params
        days: dict[str, date | None] = {}
        for name in ("day", "from", "to"):
            text = query.get(name)
            try:
                days[name] = date.fromisoformat(text) if text else None
            except ValueError:
                return error(f"{name}: not a day as YYYY-MM-DD: {text!r}", 400)
        if days["day"] is not None and (days["from"] or days["to"]):
            return error("give either day or from/to, not both", 400)
        first = days["day"] or days["from"] or days["to"]
        last = days["day"] or days["to"] or days["from"]
        try:
            body = await self._gateway.report(first, last, query.get("strategy") or None)
        except ValueError as bad:
            return error(str(bad), 400)
        except LookupError as not_ready:
            return error(str(not_ready), 503)
        return json_response(body)

    # -- POST /api/v1/close ---------------------------------------------------------------------

    async def close(self, request: Request) -> Response:
        """`{"symbol": "AAPL", "reason": "..."}` or `{"all": true, "reason": "..."}`: the open
        positions are closed through the bridge by the exits (their children cancelled first);
        waits up to CLOSE_WAIT s for the close orders to fill and answers the positions as then
        recorded (`position_state` "closed" once filled). 404: no open position for the symbol."""
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        data = await _read_json(request)
        if isinstance(data, Response):
            return data
        target = _close_target(data)
        if isinstance(target, Response):
            return target
        symbol, reason = target
        store = self._gateway.store
        if store is None:
            return error(f"not ready: this instance is {self._gateway.facts().role}", 503)
        closed = await close(
            Context(store, self._settings),
            symbol,
            reason,
            by="api",
            wait=CLOSE_WAIT,
            force=data.get("force") is True,
            via=self._gateway,
        )
        positions: list[Execution] = []
        if isinstance(closed, Refusal):
            if closed.not_ready:
                return error(f"not ready: this instance is {self._gateway.facts().role}", 503)
            if not closed.not_found:  # the ledger and the broker disagree
                return error(closed.message, 409)
            if symbol is not None:
                return error(closed.message, 404)
        else:
            positions = closed.latest
        log.info("api.close", symbol=symbol or "all", reason=reason, positions=len(positions))
        return json_response(
            {
                "success": True,
                "closed": sum(1 for p in positions if p.position_state == "closed"),
                "positions": [_position(p) for p in positions],
            }
        )

    # -- POST /api/v1/protect -------------------------------------------------------------------

    async def protect(self, request: Request) -> Response:
        """(v3) `{"symbol", "stop_loss"?, "take_profit"?, "force"?}`: protect an open position
        again through the bridge (`ops.protect`: the broker's quantity, the signal's stop and
        target by default, the same checks as close). 200 with the orders placed; 404 no open
        position; 409 the ledger and the broker disagree (the sentence names both)."""
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        data = await _read_json(request)
        if isinstance(data, Response):
            return data
        symbol = data.get("symbol")
        if not isinstance(symbol, str) or not symbol.strip():
            return error("symbol is required and must be a non-empty string", 400)
        prices: dict[str, Decimal | None] = {}
        for name in ("stop_loss", "take_profit"):
            raw = data.get(name)
            if raw is None:
                prices[name] = None
                continue
            try:
                value = Decimal(str(raw))
            except ArithmeticError:
                return error(f"{name} must be a positive number", 400)
            if not value.is_finite() or value <= 0 or isinstance(raw, bool):
                return error(f"{name} must be a positive number", 400)
            prices[name] = value
        store = self._gateway.store
        if store is None:
            return error(f"not ready: this instance is {self._gateway.facts().role}", 503)
        done = await protect(
            Context(store, self._settings),
            symbol,
            by="api",
            stop=prices["stop_loss"],
            take_profit=prices["take_profit"],
            force=data.get("force") is True,
        )
        ok = not isinstance(done, Refusal)
        log.info("api.protect", symbol=symbol.strip().upper(), ok=ok, message=done.message)
        if isinstance(done, Refusal):
            return error(done.message, 404 if done.not_found else 409)
        return json_response(
            {"success": True, "message": done.message, "order_ids": list(done.order_ids)}
        )

    # -- GET /health -----------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        gateway = self._gateway
        store = gateway.store
        database = await _check(store.ping() if store is not None else None)
        bridge = await _check(gateway.check_bridge())
        facts = gateway.facts()
        if facts.role == "standby":
            status = "standby"
        elif (
            facts.role == "active"
            and database
            and bridge
            and facts.listener_connected
            and not facts.reconcile_breaks
            and not facts.live_trading_refused
        ):
            status = "ok"
        else:
            status = "degraded"
        listener = "ok" if facts.listener_connected else "down"
        body = {
            "status": status,
            "role": facts.role,
            "database": "ok" if database else "unavailable",
            "bridge": "ok" if bridge else "unavailable",
            "listener": "standby" if facts.role == "standby" else listener,
            "halted": facts.halted,
            "execution_enabled": self._settings.execution_enabled,
            "version": __version__,
            "children": facts.children,
            "open_pollers": facts.open_pollers,
            "reconcile_breaks": facts.reconcile_breaks,
            "account": facts.account,
            "live_trading_refused": facts.live_trading_refused,
        }
        if facts.live_trading_refused:
            body["reason"] = LIVE_REFUSED_REASON
        return json_response(body, 200 if status == "ok" else 503)

    async def metrics(self, request: Request) -> Response:
        return Response(
            self._gateway.render_metrics(),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )


LIVE_REFUSED_REASON = (
    "the bridge's account is LIVE and ALLOW_LIVE_TRADING is false: every approval is rejected "
    "live_trading_not_allowed"
)


def _authorised(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


async def _read_json(request: Request) -> dict[str, Any] | Response:
    """The body as a JSON object, or the 400 answer (413 for one above MAX_BODY)."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        return error("bad Content-Length header", 400)
    if declared is not None and int(declared) > MAX_BODY:
        return error(f"request body too large (at most {MAX_BODY} bytes)", 413)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            return error(f"request body too large (at most {MAX_BODY} bytes)", 413)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested thousands deep
        return error("request body is not valid JSON", 400)
    if not isinstance(data, dict):
        return error("request body must be a JSON object", 400)
    return data


def _close_target(data: dict[str, Any]) -> tuple[str | None, str] | Response:
    """(symbol or None for all, reason) of a close request, or the 400 answer."""
    symbol, every, reason = data.get("symbol"), data.get("all"), data.get("reason")
    if (symbol is None) == (every is None or every is False):
        return error('give either "symbol" or "all": true', 400)
    if symbol is not None and (not isinstance(symbol, str) or not symbol.strip()):
        return error("symbol must be a non-empty string", 400)
    if every is not None and every is not True and symbol is None:
        return error('"all" must be true', 400)
    if not isinstance(reason, str) or not reason.strip():
        return error("reason is required and must be a non-empty string", 400)
    if len(reason) > MAX_REASON or not reason.isprintable():
        return error(f"reason must be printable and at most {MAX_REASON} characters", 400)
    return (symbol.strip().upper() if isinstance(symbol, str) else None), reason.strip()


def _position(execution: Execution) -> dict[str, Any]:
    return {
        "execution_id": str(execution.id),
        "signal_id": str(execution.signal_id),
        "symbol": execution.symbol,
        "direction": execution.action,
        "quantity": execution.filled_qty,
        "entry_price": execution.avg_fill_price,
        "position_state": execution.position_state,
        "exit_reason": execution.exit_reason,
        "close_order_id": execution.exit_order_id if (execution.exit_order_id or 0) > 0 else None,
        "exit_qty": execution.exit_qty,
        "exit_avg_price": execution.exit_avg_price,
        "realized_pnl": execution.realized_pnl,
        "r_multiple": execution.r_multiple,
        "closed_at": execution.closed_at,
    }


async def _read_body(request: Request) -> tuple[UUID, str] | Response:
    data = await _read_json(request)
    if isinstance(data, Response):
        return data
    signal_text, approved_by = data.get("signal_id"), data.get("approved_by")
    if not isinstance(signal_text, str):
        return error("signal_id is required and must be a UUID string", 400)
    try:
        signal_id = UUID(signal_text)
    except ValueError:
        return error("signal_id is not a valid UUID", 400)
    if not isinstance(approved_by, str) or not approved_by.strip():
        return error("approved_by is required and must be a non-empty string", 400)
    if len(approved_by) > MAX_APPROVER or not approved_by.isprintable():
        return error(f"approved_by must be printable and at most {MAX_APPROVER} characters", 400)
    return signal_id, approved_by.strip()


def _reportable(execution: Execution) -> bool:
    return execution.state not in (ExecutionState.RECEIVED, ExecutionState.SUBMITTING)


async def _trade(store: Store, signal_id: UUID) -> dict[str, Any] | None:
    trade = await store.trade_for_signal(signal_id)
    if trade is None:
        return None
    fields = trade.fields
    keys = (
        "trade_id", "signal_id", "order_id", "symbol", "direction", "quantity", "entry_price",
        "stop_loss", "take_profit", "strategy_id", "status", "filled_qty", "avg_fill_price",
        "risk_amount", "risk_percent", "position_value", "submitted_at",
    )  # fmt: skip
    return {key: _plain(fields.get(key)) for key in keys}


def _plain(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal | datetime | int | str | None):
        return value
    return str(value)


async def _check(call: Any) -> bool:
    if call is None:
        return False
    try:
        with anyio.fail_after(DEPENDENCY_TIMEOUT):
            await call
    except Exception:
        return False
    return True
