"""`paper-bridge --profile jax`: each behaviour of the real jax-trading-assistant bridge
(CONTRACT section 7), one test each, in-process (httpx.ASGITransport) with its waits scaled to 0.

Latencies and lost answers, which need a socket, are in test_paper_jax_http.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

import anyio
import httpx
import pytest

from tests.support import paper_config
from trade_executor.broker.jsonnum import dumps, loads
from trade_executor_dev.paper import Faults, create_app

pytestmark = pytest.mark.anyio

UNSET = Decimal("1.7976931348623157e+308")
UNSET_TEXT = "1.7976931348623157e+308"
ROW_FIELDS = {
    "order_id",
    "symbol",
    "action",
    "order_type",
    "quantity",
    "limit_price",
    "stop_price",
    "status",
    "filled_qty",
    "remaining_qty",
    "avg_fill_price",
    "source",
    "can_cancel",
    "parent_id",
    "order_ref",
    "created_at",
    "updated_at",
}


def jax_app(**faults: Any) -> Any:
    config = paper_config(
        profile="jax",
        faults=Faults(latency_scale=0, **faults),
        unknown_symbols=frozenset({"NOSUCH"}),
    )
    return create_app(config)


@pytest.fixture
async def http(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    app = jax_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://paper"
    ) as client:
        yield client


async def send(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    content = body if isinstance(body, bytes) else None if body is None else dumps(body).encode()
    response = await http.request(method, path, content=content)
    return response.status_code, loads(response.content)


async def ok(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    code, answer = await send(http, method, path, body)
    assert code == 200, answer
    return answer


async def rows(http: httpx.AsyncClient) -> dict[int, dict[str, Any]]:
    listing = await ok(http, "GET", "/orders")
    assert listing["count"] == len(listing["orders"])
    return {row["order_id"]: row for row in listing["orders"]}


def order(symbol: str = "AAPL", **fields: Any) -> dict[str, Any]:
    return {"symbol": symbol, "action": "BUY", "quantity": 10, "order_type": "MKT", **fields}


def bracket(symbol: str = "MSFT", **fields: Any) -> dict[str, Any]:
    body = {
        "symbol": symbol,
        "action": "BUY",
        "quantity": 5,
        "entry_order_type": "LMT",
        "entry_limit_price": 100,
        "stop_loss": 95,
        "take_profit": 110,
    }
    return {**body, **fields}


async def test_order_ref_is_not_honoured_every_order_is_stamped_by_the_bridge(
    http: httpx.AsyncClient,
) -> None:
    placed = await ok(http, "POST", "/orders", order(order_ref="exec-1"))
    parent = await ok(http, "POST", "/orders/bracket", bracket(order_ref="exec-2"))
    listed = await rows(http)
    assert listed[placed["order_id"]]["order_ref"] == "manual-entry"
    assert listed[parent["parent_order_id"]]["order_ref"] == "manual-entry"
    assert {listed[c]["order_ref"] for c in parent["child_order_ids"]} == {"manual-bracket-child"}


async def test_prices_ib_leaves_unset_are_listed_as_its_unset_double(
    http: httpx.AsyncClient,
) -> None:
    mkt = await ok(http, "POST", "/orders", order())
    lmt = await ok(http, "POST", "/orders", order(order_type="LMT", limit_price=90))
    stp = await ok(http, "POST", "/orders", order(order_type="STP", stop_price=120))
    brk = await ok(http, "POST", "/orders/bracket", bracket())
    take_profit, stop_loss = brk["child_order_ids"]
    listed = await rows(http)
    prices = {oid: (listed[oid]["limit_price"], listed[oid]["stop_price"]) for oid in listed}
    assert prices[mkt["order_id"]] == (UNSET, UNSET)
    assert prices[lmt["order_id"]] == (Decimal("90.0"), UNSET)
    assert prices[stp["order_id"]] == (UNSET, Decimal("120.0"))
    assert prices[brk["parent_order_id"]] == (Decimal("100.0"), UNSET)
    assert prices[take_profit] == (Decimal("110.0"), UNSET)
    assert prices[stop_loss] == (UNSET, Decimal("95.0"))
    raw = (await http.get("/orders")).text
    assert raw.count(UNSET_TEXT) == 7  # the exact text a float's repr gives


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (order("NOSUCH"), "Could not find contract for symbol NOSUCH"),
        (order(" aapl "), "Could not find contract for symbol  aapl "),
        (order(order_type="LMT"), "Limit price required for limit orders"),
        (order(order_type="STP"), "Stop price required for stop orders"),
        (order(order_type="TRAIL"), "Unsupported order type: TRAIL"),
    ],
)
async def test_a_refused_post_orders_answers_500_with_its_detail_and_places_nothing(
    http: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    assert await send(http, "POST", "/orders", body) == (500, {"detail": detail})
    assert await rows(http) == {}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (bracket("NOSUCH"), "Could not find contract for symbol NOSUCH"),
        (
            bracket(stop_loss=None, take_profit=None),
            "Bracket orders require at least a stop loss or take profit",
        ),
        (bracket(entry_limit_price=None), "Limit price required for limit orders"),
        (bracket(entry_order_type="STP"), "Stop price required for stop orders"),
    ],
)
async def test_a_refused_bracket_answers_400_with_its_detail_and_places_nothing(
    http: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    assert await send(http, "POST", "/orders/bracket", body) == (400, {"detail": detail})
    assert await rows(http) == {}


async def test_invalid_requests_are_refused_with_fastapis_422_shape(
    http: httpx.AsyncClient,
) -> None:
    code, answer = await send(http, "POST", "/orders", order(quantity=0))
    assert code == 422
    assert answer["detail"] == [
        {
            "type": "greater_than",
            "loc": ["body", "quantity"],
            "msg": "Input should be greater than 0",
            "input": 0,
            "ctx": {"gt": 0},
        }
    ]
    code, answer = await send(http, "POST", "/orders", {"action": "BUY", "quantity": 1})
    assert code == 422 and answer["detail"][0]["loc"] == ["body", "symbol"]
    assert answer["detail"][0]["type"] == "missing"
    code, answer = await send(http, "POST", "/orders", b"{oops")
    assert code == 422 and answer["detail"][0]["type"] == "json_invalid"
    code, answer = await send(http, "POST", "/orders", b"")
    assert code == 422 and answer["detail"][0]["loc"] == ["body"]
    code, answer = await send(http, "GET", "/orders/abc")
    assert code == 422 and answer["detail"][0]["loc"] == ["path", "order_id"]
    code, answer = await send(http, "POST", "/orders/bracket", bracket(stop_loss=-1))
    assert code == 422 and answer["detail"][0]["loc"] == ["body", "stop_loss"]
    assert await rows(http) == {}


async def test_an_order_ib_refuses_after_placing_is_answered_then_cancelled(
    http: httpx.AsyncClient,
) -> None:
    # The bridge passes the side and a limit price <= 0 to IB unchecked; IB refuses the placed
    # order and ib_insync marks it Cancelled. The POST itself succeeded.
    side = await ok(http, "POST", "/orders", order(action="hold"))
    price = await ok(http, "POST", "/orders", order(order_type="LMT", limit_price=-5))
    listed = await rows(http)
    assert listed[side["order_id"]]["status"] == "Cancelled"
    assert listed[side["order_id"]]["action"] == "HOLD"
    assert listed[price["order_id"]]["status"] == "Cancelled"
    assert listed[price["order_id"]]["limit_price"] is None  # _optional_price drops a price <= 0
    assert (await ok(http, "GET", "/positions"))["count"] == 0


async def test_order_ids_are_integers_and_a_status_read_has_the_real_shape(
    http: httpx.AsyncClient,
) -> None:
    placed = await ok(http, "POST", "/orders", order(action=" buy ", order_type="mkt"))
    assert placed == {"success": True, "order_id": 1, "message": "Order placed successfully"}
    response = await http.get("/orders/1")
    status = loads(response.content)
    assert set(status) == {"order_id", "status", "filled_qty", "avg_fill_price", "last_update"}
    assert (status["order_id"], status["status"], status["filled_qty"]) == (1, "Filled", 10)
    assert '"avg_fill_price":100.0' in response.text  # a float, as FastAPI writes it
    assert datetime.fromisoformat(status["last_update"]).tzinfo is None  # utcnow().isoformat()
    unknown = await ok(http, "GET", "/orders/77")
    assert (unknown["order_id"], unknown["status"], unknown["filled_qty"]) == (77, "Unknown", 0)
    assert '"avg_fill_price":0.0' in (await http.get("/orders/77")).text


async def test_the_list_has_every_order_finished_and_children_newest_first(
    http: httpx.AsyncClient,
) -> None:
    filled = await ok(http, "POST", "/orders", order())
    working = await ok(http, "POST", "/orders", order(order_type="LMT", limit_price=50))
    brk = await ok(http, "POST", "/orders/bracket", bracket())
    await ok(http, "DELETE", f"/orders/{working['order_id']}")
    listing = (await ok(http, "GET", "/orders"))["orders"]
    assert all(set(row) == ROW_FIELDS for row in listing)
    by_id = {row["order_id"]: row for row in listing}
    assert by_id[filled["order_id"]]["status"] == "Filled"
    assert by_id[working["order_id"]]["status"] == "Cancelled"
    assert by_id[brk["parent_order_id"]]["parent_id"] is None
    for child in brk["child_order_ids"]:
        assert by_id[child]["parent_id"] == brk["parent_order_id"]
        assert by_id[child]["status"] == "PreSubmitted"
    assert all(row["source"] == "broker" for row in listing)
    assert [row["can_cancel"] for row in listing] == [
        row["status"] in {"PreSubmitted", "Submitted"} for row in listing
    ]
    assert all(row["created_at"].endswith("+00:00") for row in listing)
    updated = [row["updated_at"] for row in listing]
    assert updated == sorted(updated, reverse=True)
    # A cancelled order reports what was left unfilled; a filled one nothing.
    assert by_id[working["order_id"]]["remaining_qty"] == 10
    assert by_id[filled["order_id"]]["remaining_qty"] == 0


async def test_delete_answers_the_real_shapes(http: httpx.AsyncClient) -> None:
    working = await ok(http, "POST", "/orders", order(order_type="LMT", limit_price=50))
    oid = working["order_id"]
    assert await ok(http, "DELETE", f"/orders/{oid}") == {
        "success": True,
        "order_id": oid,
        "status": "Cancelled",
        "message": f"Cancel requested for order {oid}",
    }
    assert await send(http, "DELETE", f"/orders/{oid}") == (
        400,
        {"detail": f"Order {oid} is not cancellable from status Cancelled"},
    )
    assert await send(http, "DELETE", "/orders/404") == (400, {"detail": "Order 404 not found"})


async def test_health_reports_paper_trading_and_the_admin_switch_flips_it(
    http: httpx.AsyncClient,
) -> None:
    assert await ok(http, "GET", "/health") == {
        "status": "healthy",
        "connected": True,
        "version": "1.0.0",
        "market_data_mode": "delayed",
        "paper_trading": True,
    }
    await ok(http, "POST", "/admin/account", {"paper_trading": False, "account_id": "U1234567"})
    assert (await ok(http, "GET", "/health"))["paper_trading"] is False
    assert (await ok(http, "GET", "/account"))["account_id"] == "U1234567"
    await ok(http, "POST", "/admin/faults", {"unavailable_rate": 1})
    assert await ok(http, "GET", "/health") == {
        "status": "degraded",
        "connected": False,
        "version": "1.0.0",
        "market_data_mode": "delayed",
        "paper_trading": False,
    }
    assert await send(http, "GET", "/orders") == (503, {"detail": "Not connected to IB Gateway"})


async def test_amounts_are_floats_as_the_real_bridge_writes_them(http: httpx.AsyncClient) -> None:
    await ok(http, "POST", "/orders", order())
    account = (await http.get("/account")).text
    assert '"net_liquidation":100000.0' in account and '"total_cash":99000.0' in account
    positions = (await http.get("/positions")).text
    assert '"avg_cost":100.0' in positions and '"market_value":1000.0' in positions


async def test_close_position_sends_a_market_order_for_the_position(
    http: httpx.AsyncClient,
) -> None:
    await ok(http, "POST", "/orders", order(quantity=10))
    closed = await ok(http, "POST", "/positions/aapl/close", {"quantity": 4})
    assert closed == {
        "success": True,
        "order_id": 2,
        "message": "Close order submitted for AAPL",
    }
    row = (await rows(http))[2]
    assert (row["action"], row["quantity"], row["order_ref"]) == ("SELL", 4, "manual-close")
    [position] = (await ok(http, "GET", "/positions"))["positions"]
    assert position["quantity"] == 6
    assert await send(http, "POST", "/positions/AAPL/close", {"quantity": 7}) == (
        400,
        {"detail": "Close quantity must be between 1 and 6"},
    )
    assert await send(http, "POST", "/positions/zzz/close", {}) == (
        400,
        {"detail": "No open position found for zzz"},
    )
    await ok(http, "POST", "/positions/AAPL/close", {})
    assert (await ok(http, "GET", "/positions"))["count"] == 0


async def test_protect_replaces_the_open_exits_with_one_oca_pair(
    http: httpx.AsyncClient,
) -> None:
    await ok(http, "POST", "/admin/price", {"symbol": "MSFT", "price": 100})
    brk = await ok(http, "POST", "/orders/bracket", bracket(entry_order_type="MKT"))
    assert (await rows(http))[brk["parent_order_id"]]["status"] == "Filled"
    protected = await ok(
        http, "POST", "/positions/MSFT/protect", {"stop_loss": 90, "take_profit": 130}
    )
    stop, take = protected["order_ids"]
    assert protected == {
        "success": True,
        "order_ids": [stop, take],
        "cancelled_order_ids": brk["child_order_ids"],
        "message": "Submitted protection for MSFT",
    }
    listed = await rows(http)
    assert {listed[c]["status"] for c in brk["child_order_ids"]} == {"Cancelled"}
    assert (listed[stop]["order_type"], listed[stop]["stop_price"]) == ("STP", Decimal("90.0"))
    assert (listed[take]["order_type"], listed[take]["limit_price"]) == ("LMT", Decimal("130.0"))
    assert {listed[stop]["order_ref"], listed[take]["order_ref"]} == {"manual-protect"}
    await ok(http, "POST", "/admin/price", {"symbol": "MSFT", "price": 89})
    listed = await rows(http)
    assert (listed[stop]["status"], listed[take]["status"]) == ("Filled", "Cancelled")
    assert (await ok(http, "GET", "/positions"))["count"] == 0


async def test_protect_needs_a_stop_and_a_position(http: httpx.AsyncClient) -> None:
    code, answer = await send(http, "POST", "/positions/AAPL/protect", {"take_profit": 5})
    assert code == 422 and answer["detail"][0]["loc"] == ["body", "stop_loss"]
    assert await send(http, "POST", "/positions/AAPL/protect", {"stop_loss": 5}) == (
        400,
        {"detail": "No open position found for AAPL"},
    )


async def test_after_a_restart_the_previous_sessions_orders_are_forgotten(
    http: httpx.AsyncClient,
) -> None:
    filled = (await ok(http, "POST", "/orders", order()))["order_id"]
    working = (await ok(http, "POST", "/orders", order(order_type="LMT", limit_price=50)))[
        "order_id"
    ]
    await ok(http, "POST", "/admin/restart", {"client_id_changed": True})
    for oid in (filled, working):
        status = await ok(http, "GET", f"/orders/{oid}")
        assert (status["status"], status["filled_qty"]) == ("Unknown", 0)
        assert await send(http, "DELETE", f"/orders/{oid}") == (
            400,
            {"detail": f"Order {oid} not found"},
        )
    [restored] = (await ok(http, "GET", "/orders"))["orders"]
    assert (restored["order_id"], restored["status"], restored["filled_qty"]) == (0, "Filled", 0)
    assert restored["order_ref"] == "manual-entry"
    assert (await ok(http, "GET", "/orders/0"))["status"] == "Filled"  # the first orderId 0
    [position] = (await ok(http, "GET", "/positions"))["positions"]
    assert position["quantity"] == 10
    fresh = await ok(http, "POST", "/orders", order())
    assert fresh["order_id"] > working  # IB's ids go on from where they were
    # The forgotten order still works at IB: the price reaching it fills it.
    await ok(http, "POST", "/admin/price", {"symbol": "AAPL", "price": 49})
    assert (await ok(http, "GET", "/positions"))["positions"][0]["quantity"] == 30


async def test_a_restart_with_the_same_client_id_relists_working_orders(
    http: httpx.AsyncClient,
) -> None:
    working = (await ok(http, "POST", "/orders", order(order_type="LMT", limit_price=50)))[
        "order_id"
    ]
    await ok(http, "POST", "/admin/restart", {"relist_working": True})
    assert (await ok(http, "GET", f"/orders/{working}"))["status"] == "Submitted"
    assert (await ok(http, "DELETE", f"/orders/{working}"))["status"] == "Cancelled"


async def test_ib_can_report_cancelled_for_an_order_that_then_shows_filled(
    anyio_backend: str,
) -> None:
    app = jax_app(cancelled_before_fill=1.0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://paper"
    ) as http:
        oid = (await ok(http, "POST", "/orders", order()))["order_id"]
        first = await ok(http, "GET", f"/orders/{oid}")
        assert (first["status"], first["filled_qty"]) == ("Cancelled", 0)
        second = await ok(http, "GET", f"/orders/{oid}")
        assert (second["status"], second["filled_qty"]) == ("Filled", 10)
        # Meanwhile the fill was real: the position was there all along.
        assert (await ok(http, "GET", "/positions"))["positions"][0]["quantity"] == 10
        # The list is a read too.
        other = (await ok(http, "POST", "/orders", order()))["order_id"]
        assert (await rows(http))[other]["status"] == "Cancelled"
        assert (await ok(http, "GET", f"/orders/{other}"))["status"] == "Filled"


async def test_partial_fills_report_progress_until_the_whole_quantity_filled(
    anyio_backend: str,
) -> None:
    app = jax_app(partial_fill_qty=4)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://paper"
    ) as http:
        await ok(http, "POST", "/admin/price", {"symbol": "AAPL", "price": 100})
        oid = (await ok(http, "POST", "/orders", order()))["order_id"]
        row = (await rows(http))[oid]
        assert (row["status"], row["filled_qty"], row["remaining_qty"]) == ("Submitted", 4, 6)
        await ok(http, "POST", "/admin/price", {"symbol": "AAPL", "price": 110})
        status = await ok(http, "GET", f"/orders/{oid}")
        assert (status["status"], status["filled_qty"]) == ("Submitted", 8)
        assert status["avg_fill_price"] == Decimal(105)  # (4 x 100 + 4 x 110) / 8
        await ok(http, "POST", "/admin/step", {"ticks": 1})
        status = await ok(http, "GET", f"/orders/{oid}")
        assert (status["status"], status["filled_qty"]) == ("Filled", 10)
        assert (await ok(http, "GET", "/positions"))["positions"][0]["quantity"] == 10


async def test_bracket_children_are_day_orders_that_expire_at_the_close(
    http: httpx.AsyncClient,
) -> None:
    await ok(http, "POST", "/admin/price", {"symbol": "MSFT", "price": 100})
    brk = await ok(http, "POST", "/orders/bracket", bracket(entry_order_type="MKT"))
    children = brk["child_order_ids"]
    assert {(await rows(http))[c]["status"] for c in children} == {"Submitted"}
    expired = await ok(http, "POST", "/admin/session-close")
    assert sorted(expired["expired"]) == sorted(children)
    assert {(await rows(http))[c]["status"] for c in children} == {"Cancelled"}
    [position] = (await ok(http, "GET", "/positions"))["positions"]
    assert position["quantity"] == 5  # held overnight, unprotected


async def test_ideal_orders_do_not_expire_at_the_close(anyio_backend: str) -> None:
    app = create_app(paper_config())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://paper"
    ) as http:
        await ok(http, "POST", "/orders", order(order_type="LMT", limit_price=1))
        assert await ok(http, "POST", "/admin/session-close") == {"expired": []}


async def test_the_request_log_records_every_ib_request_and_no_admin_one(
    http: httpx.AsyncClient,
) -> None:
    await ok(http, "POST", "/orders", order(order_ref="r-1"))
    await send(http, "POST", "/orders", order("NOSUCH"))
    await ok(http, "GET", "/orders")
    await send(http, "GET", "/nowhere")
    log = await ok(http, "GET", "/admin/requests")
    entries = log["requests"]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/orders", 200),
        ("POST", "/orders", 500),
        ("GET", "/orders", 200),
        ("GET", "/nowhere", 404),
    ]
    assert entries[0]["body"]["order_ref"] == "r-1"
    assert entries[2]["body"] is None
    arrivals = [e["received_at"] for e in entries]
    assert arrivals == sorted(arrivals)
    assert all(e["answered_at"] >= e["received_at"] for e in entries)
    assert all(e["received_wall"].endswith("Z") for e in entries)
    await ok(http, "DELETE", "/admin/requests")
    assert (await ok(http, "GET", "/admin/requests"))["count"] == 0


async def test_the_bridge_waits_as_the_real_one_scaled(anyio_backend: str) -> None:
    """The waits each endpoint asks for (recorded instead of slept): identification of a new
    symbol (cut at 5 s), 0.5 s per order, 0.2 + 0.5 s per bracket, 0.25 s per cancel."""
    config = paper_config(profile="jax", faults=Faults(latency_scale=2, qualify_seconds=9))
    app = create_app(config)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds * app.state.bridge.faults.latency_scale)

    app.state.bridge.ib_sleep = record
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://paper"
    ) as http:
        await ok(http, "POST", "/admin/price", {"symbol": "AAPL", "price": 100})
        await ok(http, "POST", "/orders", order(order_type="LMT", limit_price=1))
        assert waits == [10.0, 1.0]  # 5 s (the timeout, not 9) and 0.5 s, times 2
        waits.clear()
        await ok(http, "POST", "/orders", order(order_type="LMT", limit_price=1))
        assert waits == [1.0]  # the symbol is known now
        waits.clear()
        await ok(http, "POST", "/orders/bracket", bracket())
        assert waits == [10.0, 0.4, 1.0]
        waits.clear()
        await ok(http, "DELETE", "/orders/1")
        assert waits == [0.5]
        waits.clear()
        await ok(http, "GET", "/orders")
        await ok(http, "GET", "/orders/1")
        assert waits == []  # reads come from memory


async def test_a_bracket_entry_waits_untransmitted_while_the_bridge_sleeps(
    anyio_backend: str,
) -> None:
    """The parent is placed (listed, PendingSubmit, nothing filled or remaining) 0.2 s before its
    children, and only then transmitted: a read in between sees it alone."""
    app = jax_app()
    bridge = app.state.bridge
    in_window, release = anyio.Event(), anyio.Event()

    async def gated(seconds: float) -> None:
        if seconds == 0.2:
            in_window.set()
            await release.wait()

    bridge.ib_sleep = gated
    await ok_direct(app, "POST", "/admin/price", {"symbol": "MSFT", "price": 100})
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://paper") as http,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(partial(ok, http, "POST", "/orders/bracket", bracket()))
        await in_window.wait()
        [parent] = (await ok(http, "GET", "/orders"))["orders"]
        assert (parent["status"], parent["remaining_qty"], parent["parent_id"]) == (
            "PendingSubmit",
            0,
            None,
        )
        assert parent["can_cancel"] is True
        release.set()
    listed = await ok_direct(app, "GET", "/orders")
    assert listed["count"] == 3


async def ok_direct(app: Any, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://paper"
    ) as http:
        return await ok(http, method, path, body)


async def test_routes_resolve_as_fastapi_resolves_them(http: httpx.AsyncClient) -> None:
    # /orders/bracket answers only POST; other methods reach /orders/{order_id} (an int).
    code, answer = await send(http, "GET", "/orders/bracket")
    assert code == 422 and answer["detail"][0]["type"] == "int_parsing"
    assert await send(http, "PUT", "/orders") == (405, {"detail": "Method Not Allowed"})
    assert await send(http, "GET", "/quotes") == (404, {"detail": "Not Found"})


# ---- legacy ----------------------------------------------------------------------------------


@pytest.fixture
async def legacy(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    config = paper_config(profile="legacy", faults=Faults(latency_scale=0))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(config)), base_url="http://paper"
    ) as client:
        yield client


async def test_a_legacy_bridge_has_no_bracket_no_list_and_no_delete(
    legacy: httpx.AsyncClient,
) -> None:
    # Each path matches a route that exists for another method: 405, as FastAPI answers.
    method_not_allowed = (405, {"detail": "Method Not Allowed"})
    assert await send(legacy, "POST", "/orders/bracket", bracket()) == method_not_allowed
    assert await send(legacy, "GET", "/orders") == method_not_allowed
    assert await send(legacy, "DELETE", "/orders/1") == method_not_allowed
    assert (await legacy.delete("/orders/1")).headers["allow"] == "GET"
    not_found = (404, {"detail": "Not Found"})
    assert await send(legacy, "POST", "/positions/AAPL/close", {}) == not_found
    assert await send(legacy, "POST", "/positions/AAPL/protect", {"stop_loss": 1}) == not_found


async def test_a_legacy_bridge_places_and_reads_orders(legacy: httpx.AsyncClient) -> None:
    assert await ok(legacy, "GET", "/health") == {
        "status": "healthy",
        "connected": True,
        "version": "1.0.0",
    }
    placed = await ok(legacy, "POST", "/orders", order(order_ref="ignored"))
    status = await ok(legacy, "GET", f"/orders/{placed['order_id']}")
    assert (status["status"], status["filled_qty"]) == ("Filled", 10)
    # It compared the order type as sent, upper case only.
    assert await send(legacy, "POST", "/orders", order(order_type="mkt")) == (
        500,
        {"detail": "Unsupported order type: mkt"},
    )
