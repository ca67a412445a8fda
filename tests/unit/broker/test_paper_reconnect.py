"""The paper bridge's restarts and IB disconnects, as the real bridge (ib_insync 0.9.86) shows them,
over real HTTP in the jax profile.

ib_insync's `connectAsync` re-reads open orders, completed orders and executions on every connect:
after a restart with the same client id (the common case, and the default here) working orders are
listed again under their own ids and can be cancelled, finished ones come back with order_id 0.
With another client id the new session cannot see the working orders, though IB still works them.
IB's 1100/1102 (connectivity lost, restored with data kept) is a disconnect without a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support import PaperServer, paper_config
from trade_executor.broker.jsonnum import dumps, loads
from trade_executor_dev.paper import Faults, PaperConfig
from trade_executor_dev.paper.cli import build_parser
from trade_executor_dev.paper.state import PaperBridge

pytestmark = pytest.mark.anyio


@pytest.fixture
def paper_settings() -> PaperConfig:
    return paper_config(profile="jax", faults=Faults(latency_scale=0))


@pytest.fixture
async def ib(paper: PaperServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the bridge's IB API (the admin helpers are on `paper`)."""
    async with httpx.AsyncClient(base_url=paper.url, timeout=5) as client:
        yield client


async def send(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    content = None if body is None else dumps(body).encode()
    response = await http.request(method, path, content=content)
    return response.status_code, loads(response.content)


async def admin_refusal(paper: PaperServer, path: str, body: Any) -> tuple[int, Any]:
    response = await paper.admin.post(path, content=dumps(body).encode())
    return response.status_code, loads(response.content)


async def open_bracket(paper: PaperServer, ib: httpx.AsyncClient) -> tuple[int, int, int]:
    """A filled MKT entry of 5 MSFT at 100 with a take-profit at 110 and a stop at 95."""
    await paper.set_price("MSFT", "100")
    body = {
        "symbol": "MSFT",
        "action": "BUY",
        "quantity": 5,
        "entry_order_type": "MKT",
        "stop_loss": 95,
        "take_profit": 110,
    }
    code, placed = await send(ib, "POST", "/orders/bracket", body)
    assert code == 200, placed
    take_profit, stop = placed["child_order_ids"]
    return placed["parent_order_id"], take_profit, stop


async def listed(ib: httpx.AsyncClient) -> list[dict[str, Any]]:
    code, answer = await send(ib, "GET", "/orders")
    assert code == 200, answer
    return list(answer["orders"])


async def held(ib: httpx.AsyncClient, symbol: str) -> int:
    code, answer = await send(ib, "GET", "/positions")
    assert code == 200, answer
    return sum(p["quantity"] for p in answer["positions"] if p["symbol"] == symbol)


async def test_a_restart_keeps_working_orders_under_their_ids_and_lists_finished_ones_as_0(
    paper: PaperServer, ib: httpx.AsyncClient
) -> None:
    entry, take_profit, stop = await open_bracket(paper, ib)
    answer = await paper.call("POST", "/admin/restart", {})
    assert answer["client_id_changed"] is False
    rows = await listed(ib)
    working = {r["order_id"]: r["status"] for r in rows if r["order_id"] != 0}
    assert working == {take_profit: "Submitted", stop: "Submitted"}
    [finished] = [r for r in rows if r["order_id"] == 0]
    assert (finished["status"], finished["quantity"], finished["parent_id"]) == ("Filled", 5, None)
    assert (await send(ib, "GET", f"/orders/{entry}"))[1]["status"] == "Unknown"
    code, cancelled = await send(ib, "DELETE", f"/orders/{stop}")
    assert (code, cancelled["status"]) == (200, "Cancelled")
    assert await held(ib, "MSFT") == 5


async def test_a_restart_with_another_client_id_hides_working_orders_that_ib_still_works(
    paper: PaperServer, ib: httpx.AsyncClient
) -> None:
    _, take_profit, stop = await open_bracket(paper, ib)
    await paper.call("POST", "/admin/restart", {"client_id_changed": True})
    assert {r["order_id"] for r in await listed(ib)} == {0}
    for oid in (take_profit, stop):
        assert (await send(ib, "GET", f"/orders/{oid}"))[1]["status"] == "Unknown"
        assert await send(ib, "DELETE", f"/orders/{oid}") == (
            400,
            {"detail": f"Order {oid} not found"},
        )
    filled = await paper.call("POST", "/admin/fill", {"order_id": stop})
    assert (filled["status"], filled["avg_fill_price"]) == ("Filled", Decimal("95"))
    assert await held(ib, "MSFT") == 0
    [hidden_take_profit] = [
        o for o in await paper.recorded_orders() if o["order_id"] == take_profit
    ]
    assert (hidden_take_profit["status"], hidden_take_profit["visible"]) == ("Cancelled", False)


async def test_the_earlier_flag_still_means_what_it_said(
    paper: PaperServer, ib: httpx.AsyncClient
) -> None:
    _, take_profit, _ = await open_bracket(paper, ib)
    await paper.call("POST", "/admin/restart", {"relist_working": False})
    assert (await send(ib, "GET", f"/orders/{take_profit}"))[1]["status"] == "Unknown"
    code, answer = await admin_refusal(
        paper, "/admin/restart", {"relist_working": False, "client_id_changed": False}
    )
    assert code == 422 and "contradict" in answer["detail"]


async def test_a_disconnect_answers_503_and_connected_false_until_the_reconnect(
    paper: PaperServer, ib: httpx.AsyncClient
) -> None:
    entry, _, _ = await open_bracket(paper, ib)
    state = await paper.call("POST", "/admin/disconnect", {})
    assert (state["connected"], state["back_in_seconds"]) == (False, None)
    code, health = await send(ib, "GET", "/health")
    assert (code, health["connected"], health["status"]) == (200, False, "degraded")
    for method, path in (("GET", "/orders"), ("GET", "/positions"), ("GET", "/account")):
        assert await send(ib, method, path) == (503, {"detail": "Not connected to IB Gateway"})
    order = {"symbol": "MSFT", "action": "BUY", "quantity": 1, "order_type": "MKT"}
    assert (await send(ib, "POST", "/orders", order))[0] == 503
    assert len(await paper.recorded_orders()) == 3  # nothing was placed while disconnected
    state = await paper.call("POST", "/admin/reconnect")
    assert (state["connected"], state["session"]) == (True, 1)  # 1102: the same session
    assert (await send(ib, "GET", f"/orders/{entry}"))[1]["status"] == "Filled"
    assert (await send(ib, "GET", "/health"))[1]["connected"] is True


async def test_a_child_filled_at_ib_while_the_bridge_is_down_shows_after_the_reconnect(
    paper: PaperServer, ib: httpx.AsyncClient
) -> None:
    _, take_profit, stop = await open_bracket(paper, ib)
    await paper.call("POST", "/admin/disconnect", {"seconds": 3600})
    filled = await paper.call("POST", "/admin/fill", {"order_id": stop, "price": Decimal("94.50")})
    assert (filled["filled_qty"], filled["avg_fill_price"]) == (5, Decimal("94.50"))
    await paper.call("POST", "/admin/reconnect")
    statuses = {r["order_id"]: (r["status"], r["avg_fill_price"]) for r in await listed(ib)}
    assert statuses[stop] == ("Filled", Decimal("94.5"))
    assert statuses[take_profit][0] == "Cancelled"  # the bracket's one-cancels-other
    assert await held(ib, "MSFT") == 0


async def test_a_restart_while_down_lists_what_filled_meanwhile_as_finished(
    paper: PaperServer, ib: httpx.AsyncClient
) -> None:
    _, _, stop = await open_bracket(paper, ib)
    await paper.call("POST", "/admin/disconnect", {})
    await paper.call("POST", "/admin/fill", {"order_id": stop})
    await paper.call("POST", "/admin/restart", {})
    assert (await paper.call("GET", "/admin/connection"))["connected"] is True
    rows = await listed(ib)
    assert {r["order_id"] for r in rows} == {0}  # nothing works any more: all finished
    finished = sorted((r["order_type"], r["status"]) for r in rows)
    assert finished == [("LMT", "Cancelled"), ("MKT", "Filled"), ("STP", "Filled")]
    assert await held(ib, "MSFT") == 0


async def test_a_fill_is_refused_for_an_order_that_is_not_working(
    paper: PaperServer, ib: httpx.AsyncClient
) -> None:
    entry, _, _ = await open_bracket(paper, ib)
    code, answer = await admin_refusal(paper, "/admin/fill", {"order_id": entry})
    assert code == 409 and answer["detail"] == f"order {entry} is Filled, not working"
    code, answer = await admin_refusal(paper, "/admin/fill", {"order_id": 999})
    assert (code, answer["detail"]) == (409, "no order 999")
    code, _ = await admin_refusal(paper, "/admin/fill", {"order_id": 0})
    assert code == 422


def test_a_timed_disconnect_ends_by_itself() -> None:
    now = [100.0]
    bridge = PaperBridge(paper_config(profile="jax"))
    bridge.monotonic = lambda: now[0]
    bridge.disconnect(5)
    assert (bridge.connected, bridge.disconnected_for()) == (False, 5.0)
    now[0] = 104.9
    assert not bridge.connected
    now[0] = 105.0
    assert (bridge.connected, bridge.disconnected_for()) == (True, 0.0)
    bridge.disconnect()
    now[0] = 10**9
    assert (bridge.connected, bridge.disconnected_for()) == (False, None)


def test_help_lists_every_admin_endpoint_and_the_protect_body(paper_settings: PaperConfig) -> None:
    from trade_executor_dev.paper.admin import routes

    text = build_parser().format_help()
    for route in routes(PaperBridge(paper_settings)):
        assert route.path in text, route.path
    assert "POST /positions/{symbol}/protect {stop_loss, take_profit?" in text
    assert "replace_existing" in text
