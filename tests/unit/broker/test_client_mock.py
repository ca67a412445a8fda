"""The client against `httpx.MockTransport`: malformed answers, retry and no-retry rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from trade_executor.broker import (
    AmbiguousSubmission,
    BrokerClient,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    MalformedResponse,
)
from trade_executor.domain.models import (
    Action,
    BracketOrderRequest,
    BrokerStatus,
    OrderRequest,
    OrderType,
)

pytestmark = pytest.mark.anyio

Reply = httpx.Response | Exception
ACCOUNT = (
    '{"account_id": "DU1", "net_liquidation": 100000.10, "total_cash": 5000.005, '
    '"buying_power": 123456789.123456789, "equity_with_loan": 100000, "currency": "USD"}'
)
LMT = OrderRequest(
    "AAPL", Action.BUY, 10, OrderType.LMT, limit_price=Decimal("150.125"), order_ref="exec-1"
)


class Bridge:
    """A scripted bridge: answers each request with the next reply, and keeps the requests."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []
        self.outcomes: list[tuple[str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies[0] if len(self.replies) == 1 else self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def client(self, read_retries: int = 3) -> BrokerClient:
        return BrokerClient(
            "http://bridge.test",
            timeout=1,
            transport=httpx.MockTransport(self.handle),
            read_retries=read_retries,
            backoff_base=0.0,
            on_request=lambda endpoint, outcome, _: self.outcomes.append((endpoint, outcome)),
        )

    @property
    def attempts(self) -> int:
        return len(self.requests)


def text(status: int, body: str, content_type: str = "application/json") -> httpx.Response:
    return httpx.Response(status, content=body.encode(), headers={"content-type": content_type})


def answer(status: int, data: Any) -> httpx.Response:
    return httpx.Response(status, json=data)


HTML = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"


# ---- numbers are exact -----------------------------------------------------------------------


async def test_amounts_are_parsed_straight_to_decimal(anyio_backend: str) -> None:
    async with Bridge(text(200, ACCOUNT)).client() as broker:
        account = await broker.account()
    assert account.net_liquidation == Decimal("100000.10")
    assert account.total_cash == Decimal("5000.005")
    assert account.buying_power == Decimal("123456789.123456789")
    assert account.equity_with_loan == Decimal(100000)


async def test_order_bodies_carry_cent_prices_as_numbers_and_the_reference(
    anyio_backend: str,
) -> None:
    bridge = Bridge(answer(200, {"success": True, "order_id": 5, "message": "ok"}))
    async with bridge.client() as broker:
        placed = await broker.place(LMT)
    assert placed.order_id == 5
    [request] = bridge.requests
    assert request.method == "POST" and request.url.path == "/orders"
    assert request.content == (
        b'{"symbol":"AAPL","action":"BUY","quantity":10,"order_type":"LMT",'
        b'"limit_price":150.13,"order_ref":"exec-1"}'
    )


async def test_bracket_body_and_answer(anyio_backend: str) -> None:
    bridge = Bridge(answer(200, {"success": True, "parent_order_id": 7, "child_order_ids": [8, 9]}))
    request = BracketOrderRequest(
        "MSFT",
        Action.SELL,
        3,
        OrderType.MKT,
        stop_loss=Decimal("110"),
        take_profit=Decimal("90.5"),
        order_ref="exec-2",
    )
    async with bridge.client() as broker:
        placed = await broker.place(request)
    assert (placed.order_id, placed.child_order_ids) == (7, (8, 9))
    assert bridge.requests[0].url.path == "/orders/bracket"
    assert bridge.requests[0].content == (
        b'{"symbol":"MSFT","action":"SELL","quantity":3,"entry_order_type":"MKT",'
        b'"stop_loss":110.00,"take_profit":90.50,"order_ref":"exec-2"}'
    )


@pytest.mark.parametrize(
    "bad",
    [
        OrderRequest("AAPL", Action.BUY, 0, OrderType.MKT),
        OrderRequest("AAPL", Action.BUY, 1, OrderType.LMT, limit_price=Decimal("NaN")),
        OrderRequest("AAPL", Action.BUY, 1, OrderType.LMT, limit_price=Decimal("-1")),
    ],
)
async def test_nonsense_orders_are_refused_before_sending(
    anyio_backend: str, bad: OrderRequest
) -> None:
    bridge = Bridge(answer(200, {"success": True, "order_id": 1, "message": ""}))
    async with bridge.client() as broker:
        with pytest.raises(ValueError):
            await broker.place(bad)
    assert bridge.attempts == 0


# ---- malformed answers -----------------------------------------------------------------------

MALFORMED: list[tuple[str, str, Callable[[BrokerClient], Any]]] = [
    ("html page", HTML, lambda b: b.account()),
    ("truncated body", ACCOUNT[:40], lambda b: b.account()),
    ("empty body", "", lambda b: b.account()),
    ("missing field", '{"account_id": "DU1", "net_liquidation": 1}', lambda b: b.account()),
    ("string for a number", ACCOUNT.replace("100000.10", '"100000.10"'), lambda b: b.account()),
    ("bool for a number", ACCOUNT.replace("100000.10", "true"), lambda b: b.account()),
    ("NaN", ACCOUNT.replace("100000.10", "NaN"), lambda b: b.account()),
    ("Infinity", ACCOUNT.replace("100000.10", "Infinity"), lambda b: b.account()),
    ("not an object", "[1, 2]", lambda b: b.account()),
    (
        "negative filled quantity",
        '{"order_id": 3, "status": "Filled", "filled_qty": -5, "avg_fill_price": 1.5}',
        lambda b: b.order_status(3),
    ),
    (
        "fractional quantity",
        '{"order_id": 3, "status": "Filled", "filled_qty": 1.5, "avg_fill_price": 1.5}',
        lambda b: b.order_status(3),
    ),
    (
        "unknown status",
        '{"order_id": 3, "status": "Exploded", "filled_qty": 0, "avg_fill_price": 0}',
        lambda b: b.order_status(3),
    ),
    (
        "answer about another order",
        '{"order_id": 4, "status": "Filled", "filled_qty": 1, "avg_fill_price": 2}',
        lambda b: b.order_status(3),
    ),
    (
        "negative order quantity",
        '{"orders": [{"order_id": 1, "symbol": "A", "action": "BUY", "order_type": "MKT", '
        '"quantity": -10, "status": "Submitted", "filled_qty": 0, "remaining_qty": 0}], '
        '"count": 1}',
        lambda b: b.orders(),
    ),
    ("count disagrees", '{"orders": [], "count": 2}', lambda b: b.orders()),
    (
        "position quantity as text",
        '{"positions": [{"symbol": "A", "quantity": "10", "avg_cost": 1}], "count": 1}',
        lambda b: b.positions(),
    ),
    (
        "bad timestamp",
        '{"order_id": 3, "status": "Filled", "filled_qty": 1, '
        '"avg_fill_price": 2, "last_update": "yesterday"}',
        lambda b: b.order_status(3),
    ),
    ("health without connected", '{"status": "ok"}', lambda b: b.health()),
    (
        "cancel without success",
        '{"order_id": 3, "status": "Cancelled"}',
        lambda b: b.cancel_order(3),
    ),
]


@pytest.mark.parametrize(("case", "body", "call"), MALFORMED, ids=[c[0] for c in MALFORMED])
async def test_malformed_answers_name_endpoint_status_and_body(
    anyio_backend: str, case: str, body: str, call: Callable[[BrokerClient], Any]
) -> None:
    bridge = Bridge(text(200, body))
    async with bridge.client() as broker:
        with pytest.raises(MalformedResponse) as bad:
            await call(broker)
    error = bad.value
    assert error.status == 200
    assert error.endpoint.split()[0] in ("GET", "DELETE")
    assert error.endpoint in str(error) and "status 200" in str(error)
    assert error.excerpt == " ".join(body.split())[:200]
    assert bridge.attempts == 1  # a malformed answer is not retried
    assert bridge.outcomes[-1][1] == "malformed"


async def test_a_long_body_is_cut_in_the_message(anyio_backend: str) -> None:
    async with Bridge(text(200, "<html>" + "x" * 5000)).client() as broker:
        with pytest.raises(MalformedResponse) as bad:
            await broker.account()
    assert len(bad.value.excerpt) == 200 and bad.value.excerpt.endswith("...")


async def test_quirks_of_the_real_bridge_are_understood(anyio_backend: str) -> None:
    orders = {
        "orders": [
            {
                "order_id": 11,
                "symbol": "AAPL",
                "action": "BUY",
                "order_type": "LMT",
                "quantity": 10,
                "limit_price": 150.0,
                "stop_price": None,
                "status": "ApiPending",
                "filled_qty": 0,
                "remaining_qty": 10,
                "avg_fill_price": 0.0,
                "source": "broker",
                "can_cancel": True,
                "parent_id": None,
                "order_ref": "manual-entry",
                "created_at": "2024-05-01T13:30:00.123456",
                "updated_at": "2024-05-01T13:30:00.5+00:00",
            }
        ],
        "count": 1,
    }
    async with Bridge(answer(200, orders)).client() as broker:
        [order] = await broker.orders()
    assert order.status is BrokerStatus.PENDING_SUBMIT
    assert order.avg_fill_price is None  # 0.0 with nothing filled is not a price
    assert order.limit_price == Decimal("150.0")
    assert order.created_at == datetime(2024, 5, 1, 13, 30, 0, 123456, tzinfo=UTC)
    assert order.updated_at is not None and order.updated_at.tzinfo is not None


# ---- retries ---------------------------------------------------------------------------------

READ_FAILURES: list[tuple[str, Reply, str]] = [
    ("500", text(500, '{"detail": "boom"}'), "error"),
    ("502 html", text(502, HTML, "text/html"), "error"),
    ("503 not connected", text(503, '{"detail": "Not connected to IB Gateway"}'), "error"),
    ("read timeout", httpx.ReadTimeout("slow"), "timeout"),
    ("connect error", httpx.ConnectError("refused"), "connect_error"),
    ("reset", httpx.RemoteProtocolError("Server disconnected"), "error"),
]


@pytest.mark.parametrize(
    ("case", "reply", "outcome"), READ_FAILURES, ids=[c[0] for c in READ_FAILURES]
)
async def test_reads_retry_up_to_the_bound_then_are_unavailable(
    anyio_backend: str, case: str, reply: Reply, outcome: str
) -> None:
    bridge = Bridge(reply)
    async with bridge.client(read_retries=3) as broker:
        with pytest.raises(BrokerUnavailable) as down:
            await broker.account()
    assert bridge.attempts == 4
    assert bridge.outcomes == [("GET /account", outcome)] * 4
    assert down.value.endpoint == "GET /account"


async def test_a_read_succeeds_after_transient_failures(anyio_backend: str) -> None:
    bridge = Bridge(text(503, '{"detail": "x"}'), httpx.ReadTimeout("slow"), text(200, ACCOUNT))
    async with bridge.client(read_retries=3) as broker:
        account = await broker.account()
    assert account.account_id == "DU1"
    assert bridge.attempts == 3
    assert [o for _, o in bridge.outcomes] == ["error", "timeout", "ok"]


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_a_4xx_read_is_not_retried(anyio_backend: str, status: int) -> None:
    bridge = Bridge(text(status, '{"detail": "no such thing"}'))
    async with bridge.client() as broker:
        with pytest.raises(BrokerError) as failed:
            await broker.order_status(1)
    assert not isinstance(failed.value, BrokerUnavailable)
    assert failed.value.status == status
    assert "no such thing" in str(failed.value)
    assert bridge.attempts == 1


async def test_retries_wait_with_bounded_backoff(anyio_backend: str) -> None:
    broker = BrokerClient("http://x", timeout=1, backoff_base=0.1, backoff_max=0.5)
    try:
        delays = [broker._t.backoff(n) for n in range(1, 8) for _ in range(20)]
    finally:
        await broker.aclose()
    assert all(0 < d <= 0.5 for d in delays)
    assert len(set(delays)) > 1  # jittered
    assert max(broker._t.backoff(1) for _ in range(50)) <= 0.1


# ---- orders are attempted exactly once -------------------------------------------------------

AMBIGUOUS: list[tuple[str, Reply]] = [
    ("500", text(500, '{"detail": "boom"}')),
    ("502 html", text(502, HTML, "text/html")),
    ("503 without detail json", text(503, HTML, "text/html")),
    # (CONTRACT v3) a 503 with the documented detail may come from a proxy after forwarding.
    ("503 not connected", text(503, '{"detail": "Not connected to IB Gateway"}')),
    ("read timeout", httpx.ReadTimeout("slow")),
    ("write timeout", httpx.WriteTimeout("slow")),
    ("reset", httpx.RemoteProtocolError("Server disconnected without sending a response")),
    ("read error", httpx.ReadError("connection reset by peer")),
    ("200 html", text(200, HTML, "text/html")),
    ("200 truncated", text(200, '{"success": true, "order_')),
    ("200 without order id", text(200, '{"success": true, "message": "ok"}')),
    # (CONTRACT v3) 0 is how the bridge lists a forgotten order: no usable id.
    ("200 order id 0", text(200, '{"success": true, "order_id": 0, "message": ""}')),
    ("200 order id string", text(200, '{"success": true, "order_id": "7", "message": ""}')),
    ("200 order id negative", text(200, '{"success": true, "order_id": -3, "message": ""}')),
    ("200 order id bool", text(200, '{"success": true, "order_id": true, "message": ""}')),
    ("200 order id fraction", text(200, '{"success": true, "order_id": 7.5, "message": ""}')),
    ("200 with success false", text(200, '{"success": false, "order_id": 5, "message": ""}')),
    ("302", httpx.Response(302, headers={"location": "/elsewhere"})),
]


@pytest.mark.parametrize(("case", "reply"), AMBIGUOUS, ids=[c[0] for c in AMBIGUOUS])
async def test_unknown_order_outcomes_are_ambiguous_and_never_retried(
    anyio_backend: str, case: str, reply: Reply
) -> None:
    bridge = Bridge(reply)
    async with bridge.client(read_retries=5) as broker:
        with pytest.raises(AmbiguousSubmission) as lost:
            await broker.place(LMT)
    assert bridge.attempts == 1
    assert lost.value.order_ref == "exec-1"
    assert lost.value.endpoint == "POST /orders"
    assert "exec-1" in str(lost.value)


async def test_an_ambiguous_bracket_carries_its_reference(anyio_backend: str) -> None:
    bridge = Bridge(httpx.ReadTimeout("slow"))
    request = BracketOrderRequest(
        "A", Action.BUY, 1, OrderType.MKT, Decimal(1), Decimal(3), order_ref="exec-b"
    )
    async with bridge.client() as broker:
        with pytest.raises(AmbiguousSubmission) as lost:
            await broker.place_bracket(request)
    assert (bridge.attempts, lost.value.order_ref) == (1, "exec-b")
    assert lost.value.endpoint == "POST /orders/bracket"


@pytest.mark.parametrize(
    "reply",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("no route"),
        httpx.PoolTimeout("no free connection"),
    ],
    ids=["connect error", "connect timeout", "pool timeout"],
)
async def test_definitely_unsent_orders_are_unavailable(anyio_backend: str, reply: Reply) -> None:
    bridge = Bridge(reply)
    async with bridge.client() as broker:
        with pytest.raises(BrokerUnavailable) as down:
            await broker.place(LMT)
    assert not isinstance(down.value, AmbiguousSubmission)
    assert bridge.attempts == 1


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (400, '{"detail": "Limit price required for limit orders"}', "Limit price required"),
        (422, '{"detail": [{"loc": ["body", "quantity"], "msg": "must be > 0"}]}', "must be > 0"),
        (409, "<html>Conflict</html>", "<html>Conflict</html>"),
    ],
)
async def test_a_4xx_order_is_a_definite_rejection_with_the_detail(
    anyio_backend: str, status: int, body: str, detail: str
) -> None:
    bridge = Bridge(text(status, body))
    async with bridge.client() as broker:
        with pytest.raises(BrokerRejected) as refused:
            await broker.place(LMT)
    assert refused.value.status == status
    assert detail in refused.value.detail
    assert bridge.attempts == 1
    assert bridge.outcomes == [("POST /orders", "rejected")]


# ---- cancel: one attempt ---------------------------------------------------------------------


async def test_cancel_answer_is_parsed(anyio_backend: str) -> None:
    bridge = Bridge(answer(200, {"success": True, "order_id": 3, "status": "PendingCancel"}))
    async with bridge.client() as broker:
        result = await broker.cancel_order(3)
    assert (result.success, result.order_id, result.status) == (
        True,
        3,
        BrokerStatus.PENDING_CANCEL,
    )
    assert bridge.requests[0].method == "DELETE"
    assert bridge.requests[0].url.path == "/orders/3"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (text(500, '{"detail": "boom"}'), BrokerError),
        (httpx.ReadTimeout("slow"), BrokerError),
        (httpx.ConnectError("refused"), BrokerUnavailable),
        (text(503, '{"detail": "Not connected to IB Gateway"}'), BrokerUnavailable),
        (text(400, '{"detail": "Order 3 not found"}'), BrokerRejected),
    ],
)
async def test_cancel_is_attempted_once(
    anyio_backend: str, reply: Reply, error: type[BrokerError]
) -> None:
    bridge = Bridge(reply)
    async with bridge.client(read_retries=5) as broker:
        with pytest.raises(BrokerError) as failed:
            await broker.cancel_order(3)
    assert type(failed.value) is error
    assert bridge.attempts == 1


# ---- metrics ---------------------------------------------------------------------------------


async def test_a_failing_metrics_hook_does_not_change_the_outcome(anyio_backend: str) -> None:
    def broken(endpoint: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("metrics backend down")

    transport = httpx.MockTransport(lambda request: text(200, ACCOUNT))
    async with BrokerClient("http://x", 1, transport=transport, on_request=broken) as broker:
        assert (await broker.account()).account_id == "DU1"


async def test_order_status_endpoint_label_is_templated(anyio_backend: str) -> None:
    bridge = Bridge(
        answer(
            200,
            {
                "order_id": 99,
                "status": "Filled",
                "filled_qty": 1,
                "avg_fill_price": 10.5,
                "last_update": None,
            },
        )
    )
    async with bridge.client() as broker:
        status = await broker.order_status(99)
    assert status.avg_fill_price == Decimal("10.5")
    assert bridge.outcomes == [("GET /orders/{id}", "ok")]


async def test_cookies_the_bridge_sets_are_not_kept(anyio_backend: str) -> None:
    with_cookie = httpx.Response(
        200,
        content=ACCOUNT.encode(),
        headers={"content-type": "application/json", "set-cookie": "session=abc; Path=/"},
    )
    bridge = Bridge(with_cookie)
    async with bridge.client() as client:
        await client.account()
        await client.account()
    assert [r.headers.get("cookie") for r in bridge.requests] == [None, None]
