"""The client against the real bridge's answers (CONTRACT section 7), one test per quirk.

Every answer comes from `realbridge`, which reproduces the real bridge's JSON exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from tests.support import realbridge as rb
from trade_executor.broker import (
    DEFAULT_TIMEOUT,
    AmbiguousSubmission,
    BrokerClient,
    BrokerRejected,
    EndpointMissing,
    MalformedResponse,
    order_index,
)
from trade_executor.domain.models import (
    Action,
    BracketOrderRequest,
    BrokerStatus,
    OrderRequest,
    OrderType,
)

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 9, 14, 30, tzinfo=UTC)
LMT = OrderRequest("AAPL", Action.BUY, 10, OrderType.LMT, Decimal("150.12"), order_ref="exec-1")
MKT_BRACKET = BracketOrderRequest(
    "AAPL", Action.BUY, 5, OrderType.MKT, Decimal(145), Decimal(160), order_ref="exec-2"
)


class Recorder:
    def __init__(self, handler: rb.Router) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def client(self, read_retries: int = 0) -> BrokerClient:
        return BrokerClient(
            "http://bridge.test",
            transport=httpx.MockTransport(self),
            read_retries=read_retries,
            backoff_base=0.0,
            clock=lambda: NOW,
        )

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if (r.method, r.url.path) == (method, path)]


def bridge(table: Mapping[tuple[str, str], httpx.Response | list[httpx.Response]]) -> Recorder:
    return Recorder(rb.routed(table))


# ---- IB's unset price ------------------------------------------------------------------------


async def test_unset_prices_in_the_order_list_read_as_no_price(anyio_backend: str) -> None:
    listing = rb.order_list(*rb.bracket(7, entry_type="MKT", entry_price=None))
    assert rb.UNSET_TEXT.encode() in listing.content  # the answer really carries the sentinel
    async with bridge({("GET", "/orders"): listing}).client() as broker:
        parent, take_profit, stop_loss = await broker.orders()
    assert (parent.limit_price, parent.stop_price) == (None, None)
    assert (take_profit.limit_price, take_profit.stop_price) == (Decimal("160.0"), None)
    assert (stop_loss.limit_price, stop_loss.stop_price) == (None, Decimal("145.0"))
    assert (take_profit.parent_id, stop_loss.parent_id, parent.parent_id) == (7, 7, None)


async def test_unset_fill_price_of_an_order_status_reads_as_none(anyio_backend: str) -> None:
    status = rb.json_answer(
        200,
        {
            "order_id": 4,
            "status": "Filled",
            "filled_qty": 5,
            "avg_fill_price": rb.UNSET,
            "last_update": "2026-03-09T14:30:01.519349",
        },
    )
    async with bridge({("GET", "/orders/4"): status}).client() as broker:
        answer = await broker.order_status(4)
    assert (answer.status, answer.filled_qty, answer.avg_fill_price) == (
        BrokerStatus.FILLED,
        5,
        None,
    )
    assert answer.last_update == datetime(2026, 3, 9, 14, 30, 1, 519349, tzinfo=UTC)


async def test_unset_amounts_of_a_position_read_as_none(anyio_backend: str) -> None:
    positions = rb.json_answer(
        200,
        {
            "positions": [
                {
                    "symbol": "AAPL",
                    "contract_id": 265598,
                    "quantity": 10,
                    "avg_cost": 150.25,
                    "market_price": rb.UNSET,
                    "market_value": 0.0,
                    "unrealized_pnl": 0.0,
                    "realized_pnl": rb.UNSET,
                    "account": "DU1",
                }
            ],
            "count": 1,
        },
    )
    async with bridge({("GET", "/positions"): positions}).client() as broker:
        [position] = await broker.positions()
    assert (position.market_price, position.realized_pnl) == (None, None)
    assert (position.avg_cost, position.market_value) == (Decimal("150.25"), Decimal("0.0"))


@pytest.mark.parametrize("field", ["net_liquidation", "buying_power", "total_cash"])
async def test_an_unset_account_amount_is_refused_never_sized_on(
    anyio_backend: str, field: str
) -> None:
    account = {
        "account_id": "DU1",
        "net_liquidation": 100000.5,
        "total_cash": 0.0,
        "buying_power": 200000.0,
        "equity_with_loan": 0.0,
        "currency": "USD",
    }
    account[field] = rb.UNSET
    async with bridge({("GET", "/account"): rb.json_answer(200, account)}).client() as broker:
        with pytest.raises(MalformedResponse) as bad:
            await broker.account()
    assert field in str(bad.value) and "unset" in str(bad.value)


async def test_non_finite_prices_read_as_no_price(anyio_backend: str) -> None:
    # Not what the real bridge sends (it fails with a 500 instead), but a bridge that writes
    # NaN or Infinity must not crash the client nor be taken for a price.
    body = (
        b'{"orders":[{"order_id":3,"symbol":"AAPL","action":"BUY","order_type":"LMT",'
        b'"quantity":1,"limit_price":NaN,"stop_price":Infinity,"status":"Submitted",'
        b'"filled_qty":0,"remaining_qty":1,"avg_fill_price":-Infinity,"parent_id":null,'
        b'"order_ref":"manual-entry","created_at":"2026-03-09T14:30:00","updated_at":'
        b'"2026-03-09T14:30:00"}],"count":1}'
    )
    answer = httpx.Response(200, content=body, headers={"content-type": "application/json"})
    async with bridge({("GET", "/orders"): answer}).client() as broker:
        [order] = await broker.orders()
    assert (order.limit_price, order.stop_price, order.avg_fill_price) == (None, None, None)


# ---- the order list --------------------------------------------------------------------------


async def test_entries_are_stamped_manual_entry_whatever_reference_was_sent(
    anyio_backend: str,
) -> None:
    listing = rb.order_list(rb.listed(2, limit_price=150.12))
    placed = rb.json_answer(
        200, {"success": True, "order_id": 2, "message": "Order placed successfully"}
    )
    recorder = bridge({("POST", "/orders"): placed, ("GET", "/orders"): listing})
    async with recorder.client() as broker:
        assert (await broker.place(LMT)).order_id == 2
        [order] = await broker.orders()
    assert b'"order_ref":"exec-1"' in recorder.sent("POST", "/orders")[0].content
    assert order.order_ref == "manual-entry"


async def test_a_previous_sessions_orders_are_listed_with_id_zero_and_kept_aside(
    anyio_backend: str,
) -> None:
    listing = rb.order_list(
        rb.listed(0, status="Filled", filled_qty=10, avg_fill_price=150.1, limit_price=150.12),
        rb.listed(0, status="Cancelled", order_type="STP", stop_price=140.0),
        *rb.bracket(31),
    )
    async with bridge({("GET", "/orders"): listing}).client() as broker:
        index = await order_index(broker)
    assert sorted(index.by_id) == [31, 32, 33]
    assert [o.status for o in index.anonymous] == [BrokerStatus.FILLED, BrokerStatus.CANCELLED]
    assert index.anonymous[0].avg_fill_price == Decimal("150.1")
    assert index.children_of(31) == (32, 33)
    assert 0 not in index


async def test_an_unknown_or_odd_status_in_the_list_reads_unknown(anyio_backend: str) -> None:
    listing = rb.order_list(
        rb.listed(1, status="Unknown"), rb.listed(2, status="ValidationError"), rb.listed(3)
    )
    async with bridge({("GET", "/orders"): listing}).client() as broker:
        orders = await broker.orders()
    assert [o.status for o in orders] == [
        BrokerStatus.UNKNOWN,
        BrokerStatus.UNKNOWN,
        BrokerStatus.PRE_SUBMITTED,
    ]
    assert not any(o.status.is_final for o in orders[:2])


async def test_a_thousand_listed_orders_index_by_id(anyio_backend: str) -> None:
    entries = [rb.listed(i, limit_price=100 + i / 100) for i in range(1, 1001)]
    async with bridge({("GET", "/orders"): rb.order_list(*entries)}).client() as broker:
        index = await order_index(broker)
    assert len(index) == 1000
    order = index.get(734)
    assert order is not None and order.limit_price == Decimal("107.34")
    assert index.get(1001) is None


# ---- after the bridge restarts ---------------------------------------------------------------


async def test_a_forgotten_order_reads_unknown_with_no_fills(anyio_backend: str) -> None:
    forgotten = rb.json_answer(
        200,
        {
            "order_id": 999,
            "status": "Unknown",
            "filled_qty": 0,
            "avg_fill_price": 0.0,
            "last_update": "2026-03-09T14:30:24.519750",
        },
    )
    async with bridge({("GET", "/orders/999"): forgotten}).client() as broker:
        status = await broker.order_status(999)
    assert (status.status, status.filled_qty, status.avg_fill_price) == (
        BrokerStatus.UNKNOWN,
        0,
        None,
    )
    assert not status.status.is_final


async def test_cancelling_a_forgotten_order_is_a_400_not_found(anyio_backend: str) -> None:
    answer = rb.detail(400, "Order 999 not found")
    recorder = bridge({("DELETE", "/orders/999"): answer})
    async with recorder.client() as broker:
        with pytest.raises(BrokerRejected) as refused:
            await broker.cancel_order(999)
    assert not isinstance(refused.value, EndpointMissing)
    assert refused.value.detail == "Order 999 not found"
    assert len(recorder.requests) == 1


# ---- failed order POSTs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason", ["Could not find contract for symbol ZZZZ", "Limit price required for limit orders"]
)
async def test_a_500_with_a_detail_is_ambiguous_and_carries_the_detail(
    anyio_backend: str, reason: str
) -> None:
    recorder = bridge({("POST", "/orders"): rb.detail(500, reason)})
    async with recorder.client() as broker:
        with pytest.raises(AmbiguousSubmission) as lost:
            await broker.place(LMT)
    assert lost.value.detail == reason
    assert lost.value.status == 500
    assert lost.value.attempted_at == NOW
    assert lost.value.order_ref == "exec-1"
    assert len(recorder.requests) == 1  # never re-sent


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("Server disconnected")],
    ids=["timeout", "reset"],
)
async def test_a_timeout_or_reset_after_sending_is_ambiguous_with_a_description(
    anyio_backend: str, failure: Exception
) -> None:
    def lose(request: httpx.Request) -> httpx.Response:
        raise failure

    recorder = Recorder(lose)
    async with recorder.client() as broker:
        with pytest.raises(AmbiguousSubmission) as lost:
            await broker.place(MKT_BRACKET)
    assert lost.value.detail is not None and type(failure).__name__ in lost.value.detail
    assert (lost.value.attempted_at, lost.value.endpoint) == (NOW, "POST /orders/bracket")
    assert len(recorder.requests) == 1


async def test_the_bracket_endpoint_refuses_with_a_400(anyio_backend: str) -> None:
    answer = rb.detail(400, "Could not find contract for symbol ZZZZ")
    recorder = bridge({("POST", "/orders/bracket"): answer})
    async with recorder.client() as broker:
        with pytest.raises(BrokerRejected) as refused:
            await broker.place(MKT_BRACKET)
    assert refused.value.detail == "Could not find contract for symbol ZZZZ"
    assert len(recorder.requests) == 1


async def test_a_503_not_connected_on_a_post_is_ambiguous(anyio_backend: str) -> None:
    """(CONTRACT v3) The bridge answers 503 "not connected" before asking IB, but a proxy in
    front may answer the same after forwarding: the order is located, never taken as unsent."""
    recorder = bridge({("POST", "/orders"): rb.detail(503, rb.NOT_CONNECTED)})
    async with recorder.client() as broker:
        with pytest.raises(AmbiguousSubmission) as lost:
            await broker.place(LMT)
    assert lost.value.detail == rb.NOT_CONNECTED
    assert lost.value.status == 503
    assert len(recorder.requests) == 1


# ---- bridges from before March 2026 ----------------------------------------------------------

LEGACY = {
    ("GET", "/health"): rb.json_answer(200, rb.HEALTH_BEFORE_MARCH_2026),
    ("GET", "/orders"): rb.method_not_allowed("POST"),
    ("POST", "/orders/bracket"): rb.method_not_allowed("GET"),
    ("DELETE", "/orders/5"): rb.method_not_allowed("GET"),
}


async def test_a_legacy_bridge_has_no_order_list(anyio_backend: str) -> None:
    recorder = bridge(LEGACY)
    async with recorder.client(read_retries=3) as broker:
        with pytest.raises(EndpointMissing) as missing:
            await broker.orders()
    assert missing.value.status == 405
    assert "this bridge has no GET /orders" in str(missing.value)
    assert len(recorder.requests) == 1  # a missing route is not retried


async def test_a_legacy_bridge_refuses_a_bracket_definitely(anyio_backend: str) -> None:
    recorder = bridge(LEGACY)
    async with recorder.client() as broker:
        with pytest.raises(EndpointMissing) as missing:
            await broker.place(MKT_BRACKET)
    assert isinstance(missing.value, BrokerRejected)  # the executor's "definite refusal" path
    assert "POST /orders/bracket" in missing.value.detail
    assert len(recorder.requests) == 1


async def test_a_legacy_bridge_cannot_cancel(anyio_backend: str) -> None:
    async with bridge(LEGACY).client() as broker:
        with pytest.raises(EndpointMissing):
            await broker.cancel_order(5)


async def test_a_legacy_health_does_not_say_paper(anyio_backend: str) -> None:
    async with bridge(LEGACY).client() as broker:
        health = await broker.health()
    assert health.paper_trading is None


@pytest.mark.parametrize("paper", [True, False])
async def test_health_says_paper_or_live(anyio_backend: str, paper: bool) -> None:
    answer = rb.json_answer(200, {**rb.HEALTH, "paper_trading": paper})
    async with bridge({("GET", "/health"): answer}).client() as broker:
        health = await broker.health()
    assert health.paper_trading is paper
    assert health.extra["market_data_mode"] == "delayed"


# ---- positions: close and protect ------------------------------------------------------------


async def test_close_sends_the_documented_body_once(anyio_backend: str) -> None:
    answer = rb.json_answer(
        200, {"success": True, "order_id": 10, "message": "Close order submitted for AAPL"}
    )
    recorder = bridge({("POST", "/positions/AAPL/close"): answer})
    async with recorder.client() as broker:
        placed = await broker.close_position(" aapl ")
        partial = await broker.close_position("AAPL", quantity=3)
    assert (placed.order_id, partial.order_id) == (10, 10)
    first, second = recorder.requests
    assert first.content == b'{"order_type":"MKT"}'
    assert second.content == b'{"quantity":3,"order_type":"MKT"}'


async def test_close_without_a_position_is_refused(anyio_backend: str) -> None:
    answer = rb.detail(400, "No open position found for MSFT")
    async with bridge({("POST", "/positions/MSFT/close"): answer}).client() as broker:
        with pytest.raises(BrokerRejected) as refused:
            await broker.close_position("MSFT")
    assert refused.value.detail == "No open position found for MSFT"
    assert refused.value.endpoint == "POST /positions/{symbol}/close"


async def test_a_close_that_fails_after_sending_is_ambiguous_and_not_resent(
    anyio_backend: str,
) -> None:
    recorder = bridge({("POST", "/positions/AAPL/close"): rb.detail(500, "socket broke")})
    async with recorder.client() as broker:
        with pytest.raises(AmbiguousSubmission) as lost:
            await broker.close_position("AAPL")
    assert lost.value.detail == "socket broke"
    assert len(recorder.requests) == 1


async def test_a_symbol_is_one_escaped_path_segment(anyio_backend: str) -> None:
    recorder = bridge({})
    async with recorder.client() as broker:
        with pytest.raises(EndpointMissing):
            await broker.close_position("BRK/B")
    assert recorder.requests[0].url.raw_path == b"/positions/BRK%2FB/close"


async def test_protect_sends_the_documented_body_and_reads_both_id_lists(
    anyio_backend: str,
) -> None:
    answer = rb.json_answer(
        200,
        {
            "success": True,
            "order_ids": [11, 12],
            "cancelled_order_ids": [5, 6],
            "message": "Submitted protection for AAPL",
        },
    )
    recorder = bridge({("POST", "/positions/AAPL/protect"): answer})
    async with recorder.client() as broker:
        placed = await broker.protect_position(
            "AAPL", stop_loss=Decimal("140.004"), take_profit=Decimal(170), quantity=4
        )
    assert (placed.order_ids, placed.cancelled_order_ids) == ((11, 12), (5, 6))
    assert recorder.requests[0].content == (
        b'{"stop_loss":140.00,"take_profit":170.00,"quantity":4,"replace_existing":true}'
    )


async def test_protect_without_take_profit_omits_it(anyio_backend: str) -> None:
    answer = rb.json_answer(
        200, {"success": True, "order_ids": [13], "cancelled_order_ids": [], "message": "ok"}
    )
    recorder = bridge({("POST", "/positions/AAPL/protect"): answer})
    async with recorder.client() as broker:
        placed = await broker.protect_position(
            "AAPL", stop_loss=Decimal(140), replace_existing=False
        )
    assert placed.order_ids == (13,) and placed.cancelled_order_ids == ()
    assert recorder.requests[0].content == b'{"stop_loss":140.00,"replace_existing":false}'


# ---- timeout ---------------------------------------------------------------------------------


async def test_the_default_timeout_covers_the_bridges_slowest_order(anyio_backend: str) -> None:
    async with BrokerClient("http://bridge.test") as broker:
        timeout = broker._t.http.timeout
    assert DEFAULT_TIMEOUT == 15.0
    assert (timeout.connect, timeout.read, timeout.write) == (15.0, 15.0, 15.0)
