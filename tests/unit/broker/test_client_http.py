"""The client against the paper bridge over real HTTP (Hypercorn on an ephemeral port)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import anyio
import pytest

from tests.support import PaperServer, paper_config
from trade_executor.broker import (
    AmbiguousSubmission,
    BrokerClient,
    BrokerRejected,
    BrokerUnavailable,
    MalformedResponse,
    match_order,
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


def lmt(symbol: str, action: Action, qty: int, price: str, ref: str | None = None) -> OrderRequest:
    return OrderRequest(
        symbol, action, qty, OrderType.LMT, limit_price=Decimal(price), order_ref=ref
    )


async def test_health_and_account(client: BrokerClient) -> None:
    health = await client.health()
    assert health.connected is True
    assert health.status == "healthy"
    assert health.extra["paper_trading"] is True

    account = await client.account()
    assert account.net_liquidation == Decimal("100000.00")
    assert account.buying_power == Decimal("100000.00")
    assert isinstance(account.total_cash, Decimal)
    assert account.currency == "USD"


async def test_market_order_fills_and_moves_cash_and_positions(
    client: BrokerClient, paper: PaperServer
) -> None:
    await paper.set_price("AAPL", "150.25")
    placed = await client.place(
        OrderRequest("AAPL", Action.BUY, 10, OrderType.MKT, order_ref="exec-mkt")
    )
    assert placed.child_order_ids == ()

    status = await client.order_status(placed.order_id)
    assert status.status is BrokerStatus.FILLED
    assert status.filled_qty == 10
    assert status.avg_fill_price == Decimal("150.25")
    assert status.last_update is not None and status.last_update.tzinfo is not None

    [position] = await client.positions()
    assert (position.symbol, position.quantity) == ("AAPL", 10)
    assert position.avg_cost == Decimal("150.25")
    account = await client.account()
    assert account.total_cash == Decimal("100000") - 10 * Decimal("150.25")
    assert account.net_liquidation == Decimal("100000.00")


async def test_limit_order_works_until_the_price_reaches_it(
    client: BrokerClient, paper: PaperServer
) -> None:
    await paper.set_price("MSFT", "101.00")
    placed = await client.place_order(lmt("MSFT", Action.BUY, 5, "100.00"))
    assert (await client.order_status(placed.order_id)).status is BrokerStatus.SUBMITTED

    assert await paper.set_price("MSFT", "100.01") == []
    assert (await client.order_status(placed.order_id)).filled_qty == 0

    assert await paper.set_price("MSFT", "99.90") == [placed.order_id]
    status = await client.order_status(placed.order_id)
    assert status.status is BrokerStatus.FILLED
    assert status.avg_fill_price == Decimal("99.90")


async def test_stop_order_triggers_when_the_price_falls_to_it(
    client: BrokerClient, paper: PaperServer
) -> None:
    await paper.set_price("IBM", "50.00")
    await client.place(OrderRequest("IBM", Action.BUY, 3, OrderType.MKT))
    stop = await client.place(
        OrderRequest("IBM", Action.SELL, 3, OrderType.STP, stop_price=Decimal("48.00"))
    )
    assert await paper.set_price("IBM", "48.50") == []
    assert await paper.set_price("IBM", "47.95") == [stop.order_id]
    assert await client.positions() == []


async def test_bracket_children_wait_for_the_entry_then_one_cancels_the_other(
    client: BrokerClient, paper: PaperServer
) -> None:
    await paper.set_price("NVDA", "152.00")
    placed = await client.place(
        BracketOrderRequest(
            "NVDA",
            Action.BUY,
            7,
            OrderType.LMT,
            stop_loss=Decimal("145"),
            take_profit=Decimal("160"),
            entry_limit_price=Decimal("150"),
            order_ref="exec-bracket",
        )
    )
    take_profit, stop_loss = placed.child_order_ids
    orders = {o.order_id: o for o in await client.orders()}
    assert orders[placed.order_id].status is BrokerStatus.SUBMITTED
    assert orders[take_profit].status is BrokerStatus.PRE_SUBMITTED
    assert orders[stop_loss].status is BrokerStatus.PRE_SUBMITTED
    assert orders[take_profit].parent_id == placed.order_id
    assert orders[take_profit].limit_price == Decimal("160.00")
    assert orders[stop_loss].stop_price == Decimal("145.00")
    assert orders[stop_loss].action is Action.SELL

    assert await paper.set_price("NVDA", "150.00") == [placed.order_id]
    assert (await client.order_status(take_profit)).status is BrokerStatus.SUBMITTED
    assert (await client.order_status(stop_loss)).status is BrokerStatus.SUBMITTED

    assert await paper.set_price("NVDA", "160.50") == [take_profit]
    assert (await client.order_status(stop_loss)).status is BrokerStatus.CANCELLED
    assert await client.positions() == []


async def test_market_bracket_entry_fills_at_once(client: BrokerClient) -> None:
    placed = await client.place_bracket(
        BracketOrderRequest(
            "AMD", Action.SELL, 2, OrderType.MKT, stop_loss=Decimal(110), take_profit=Decimal(90)
        )
    )
    entry = await client.order_status(placed.order_id)
    assert entry.status is BrokerStatus.FILLED
    assert entry.avg_fill_price == Decimal("100.00")  # a new symbol starts between the exits
    [position] = await client.positions()
    assert position.quantity == -2


async def test_orders_list_round_trips_order_ref_and_stamps_creation(
    client: BrokerClient,
) -> None:
    before = datetime.now(UTC)
    placed = await client.place(lmt("TSLA", Action.SELL, 4, "250.5", ref="exec-42"))
    [order] = [o for o in await client.orders() if o.order_id == placed.order_id]
    assert order.order_ref == "exec-42"
    assert (order.symbol, order.action, order.quantity) == ("TSLA", Action.SELL, 4)
    assert order.order_type == "LMT"
    assert order.limit_price == Decimal("250.50")
    assert order.remaining_qty == 4
    assert order.avg_fill_price is None
    assert order.created_at is not None and order.created_at >= before - timedelta(seconds=1)


async def test_cancel_a_working_order_then_cancelling_again_is_refused(
    client: BrokerClient, paper: PaperServer
) -> None:
    await paper.set_price("ORCL", "120")
    placed = await client.place(lmt("ORCL", Action.BUY, 1, "100"))
    result = await client.cancel_order(placed.order_id)
    assert result.success is True
    assert result.order_id == placed.order_id
    assert result.status is BrokerStatus.CANCELLED
    with pytest.raises(BrokerRejected) as refused:
        await client.cancel_order(placed.order_id)
    assert "not cancellable" in refused.value.detail
    assert refused.value.status == 400


async def test_an_unknown_order_is_reported_unknown_with_no_fills(client: BrokerClient) -> None:
    status = await client.order_status(424242)
    assert status.status is BrokerStatus.UNKNOWN
    assert not status.status.is_final
    assert (status.filled_qty, status.avg_fill_price) == (0, None)


async def test_the_bridge_refusal_reaches_the_caller_with_its_detail(client: BrokerClient) -> None:
    with pytest.raises(BrokerRejected) as refused:
        await client.place(OrderRequest("NOT A SYMBOL", Action.BUY, 1, OrderType.MKT))
    assert refused.value.status == 422
    assert "symbol" in refused.value.detail


async def test_find_order_by_reference_over_http(client: BrokerClient) -> None:
    placed_after = datetime.now(UTC) - timedelta(seconds=5)
    placed = await client.place(lmt("META", Action.BUY, 9, "300", ref="exec-find"))
    found = match_order(
        await client.orders(),
        "exec-find",
        symbol="META",
        action=Action.BUY,
        quantity=9,
        price=Decimal(300),
        placed_after=placed_after,
    )
    assert found.found is not None and found.found.order_id == placed.order_id
    assert found.matched_by == "order_ref"


# ---- faults over the wire ------------------------------------------------------------------


async def test_accept_then_drop_is_ambiguous_and_the_order_exists(
    client: BrokerClient, paper: PaperServer
) -> None:
    await paper.set_faults(drop_after_accept=1.0)
    with pytest.raises(AmbiguousSubmission) as lost:
        await client.place(lmt("AAPL", Action.BUY, 2, "10", ref="exec-dropped"))
    assert lost.value.order_ref == "exec-dropped"
    assert lost.value.endpoint == "POST /orders"
    [recorded] = await paper.recorded_orders()
    assert recorded["order_ref"] == "exec-dropped"
    assert isinstance(recorded["received_at"], Decimal)

    await paper.set_faults(drop_after_accept=0.0)
    found = match_order(
        await client.orders(),
        "exec-dropped",
        symbol="AAPL",
        action=Action.BUY,
        quantity=2,
        price=Decimal(10),
        placed_after=datetime.now(UTC) - timedelta(minutes=1),
    )
    assert found.found is not None and found.found.order_id == recorded["order_id"]


async def test_a_dropped_bracket_is_ambiguous_too(client: BrokerClient, paper: PaperServer) -> None:
    await paper.set_faults(drop_after_accept=1.0)
    with pytest.raises(AmbiguousSubmission):
        await client.place(
            BracketOrderRequest(
                "AAPL", Action.BUY, 1, OrderType.MKT, stop_loss=Decimal(9), take_profit=Decimal(11)
            )
        )
    assert len(await paper.recorded_orders()) == 3


async def test_not_connected_orders_are_ambiguous_and_reads_retry(
    client: BrokerClient, paper: PaperServer
) -> None:
    """(CONTRACT v3) A 503 on a POST is located through the list, never read as "not placed"."""
    await paper.set_faults(unavailable_rate=1.0)
    with pytest.raises(AmbiguousSubmission) as lost:
        await client.place(lmt("AAPL", Action.BUY, 1, "10", ref="exec-503"))
    assert lost.value.status == 503
    assert await paper.recorded_orders() == []
    with pytest.raises(BrokerUnavailable):
        await client.account()
    attempts = [r for r in paper.requests if r[0] == "GET /account"]
    assert attempts == [("GET /account", "error")] * 3  # 1 + read_retries
    health = await client.health()  # like the real bridge: up, but not connected
    assert health.connected is False


async def test_internal_errors_make_orders_ambiguous(
    client: BrokerClient, paper: PaperServer
) -> None:
    await paper.set_faults(error_rate=1.0)
    with pytest.raises(AmbiguousSubmission):
        await client.place(lmt("AAPL", Action.BUY, 1, "10", ref="exec-500"))
    assert [r for r in paper.requests if r[0] == "POST /orders"] == [("POST /orders", "error")]


async def test_html_answers_are_malformed_reads_and_ambiguous_orders(
    client: BrokerClient, paper: PaperServer
) -> None:
    await paper.set_faults(html=1.0)
    with pytest.raises(MalformedResponse) as bad:
        await client.positions()
    assert "<!DOCTYPE html>" in bad.value.excerpt
    assert "GET /positions" in str(bad.value)
    with pytest.raises(AmbiguousSubmission):
        await client.place(lmt("AAPL", Action.BUY, 1, "10", ref="exec-html"))
    assert len(await paper.recorded_orders()) == 1  # it was placed behind the HTML


async def test_a_timeout_after_sending_is_ambiguous(paper: PaperServer) -> None:
    await paper.set_faults(latency=0.5)
    async with BrokerClient(paper.url, timeout=0.1) as impatient:
        with pytest.raises(AmbiguousSubmission) as lost:
            await impatient.place(lmt("AAPL", Action.BUY, 1, "10", ref="exec-slow"))
    assert lost.value.order_ref == "exec-slow"
    await paper.set_faults(latency=0.0)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_nothing_listening_is_unavailable_for_reads_and_orders(anyio_backend: str) -> None:
    outcomes: list[str] = []
    async with BrokerClient(
        f"http://127.0.0.1:{_closed_port()}",
        timeout=1,
        read_retries=1,
        backoff_base=0,
        on_request=lambda e, o, s: outcomes.append(o),
    ) as broker:
        with pytest.raises(BrokerUnavailable):
            await broker.orders()
        with pytest.raises(BrokerUnavailable) as refused:
            await broker.place(lmt("AAPL", Action.BUY, 1, "10", ref="exec-nobody"))
    assert "not sent" in str(refused.value)
    assert outcomes == ["connect_error"] * 3


@pytest.mark.parametrize("paper_settings", [paper_config(tick_interval=0.005)])
async def test_the_ticker_moves_prices_while_serving(
    client: BrokerClient, paper: PaperServer
) -> None:
    await paper.set_price("AAPL", "100")
    with anyio.fail_after(10):  # a bound against hanging, not a timing assertion
        while (await paper.call("GET", "/admin/prices"))["AAPL"] == Decimal(100):
            await anyio.sleep(0.01)


async def test_concurrent_orders_get_distinct_ids(client: BrokerClient, paper: PaperServer) -> None:
    await paper.set_price("AAPL", "120")
    ids: list[int] = []

    async def place(n: int) -> None:
        placed = await client.place(lmt("AAPL", Action.BUY, 1, "100", ref=f"exec-c{n}"))
        ids.append(placed.order_id)

    async with anyio.create_task_group() as tasks:
        for n in range(20):
            tasks.start_soon(place, n)
    assert len(set(ids)) == 20
    refs = {o.order_ref for o in await client.orders()}
    assert refs == {f"exec-c{n}" for n in range(20)}


# ---- capabilities over the wire --------------------------------------------------------------


async def test_capabilities_of_the_paper_bridge_are_probed_without_placing(
    client: BrokerClient, paper: PaperServer
) -> None:
    found = await client.capabilities()
    assert (found.connected, found.paper_trading) == (True, True)
    assert found.detected_by == "probes"  # the paper bridge serves no OpenAPI document
    assert (found.bracket_orders, found.order_list, found.cancel) == (True, True, True)
    assert await paper.recorded_orders() == []


async def test_order_index_over_http_follows_a_bracket(client: BrokerClient) -> None:
    placed = await client.place(
        BracketOrderRequest(
            "NVDA",
            Action.BUY,
            2,
            OrderType.LMT,
            stop_loss=Decimal(90),
            take_profit=Decimal(120),
            entry_limit_price=Decimal(1),
        )
    )
    index = await order_index(client)
    assert index.children_of(placed.order_id) == placed.child_order_ids
    parent = index.get(placed.order_id)
    assert parent is not None and parent.limit_price == Decimal(1) and parent.stop_price is None
