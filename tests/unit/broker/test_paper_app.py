"""The paper bridge's HTTP surface in-process (httpx.ASGITransport): validation, admin, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support import paper_config
from trade_executor.broker.jsonnum import dumps, loads
from trade_executor_dev.paper import create_app
from trade_executor_dev.paper.cli import build_parser, config_from_args, main

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(paper_config())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://paper"
    ) as client:
        yield client


async def send(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    content = body if isinstance(body, bytes) else None if body is None else dumps(body).encode()
    response = await http.request(method, path, content=content)
    return response.status_code, loads(response.content)


MKT = {"symbol": "AAPL", "action": "BUY", "quantity": 1, "order_type": "MKT"}


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/orders", b"{not json", 400, "Malformed JSON"),
        ("/orders", b"", 400, "Malformed JSON"),
        ("/orders", b'{"quantity": NaN}', 400, "Malformed JSON"),
        ("/orders", [1, 2], 422, "dictionary"),
        ("/orders", {**MKT, "quantity": -5}, 422, "quantity"),
        ("/orders", {**MKT, "quantity": 0}, 422, "quantity"),
        ("/orders", {**MKT, "quantity": 1.5}, 422, "quantity"),
        ("/orders", {**MKT, "order_type": "TRAIL"}, 422, "unknown OrderType"),
        ("/orders", {**MKT, "action": "HOLD"}, 422, "unknown Action"),
        ("/orders", {**MKT, "symbol": ""}, 422, "symbol"),
        ("/orders", {**MKT, "order_type": "LMT"}, 422, "Limit price required"),
        ("/orders", {**MKT, "order_type": "STP"}, 422, "Stop price required"),
        ("/orders", {**MKT, "order_type": "LMT", "limit_price": "10"}, 422, "limit_price"),
        ("/orders", {**MKT, "order_type": "LMT", "limit_price": -1}, 422, "limit_price"),
        (
            "/orders/bracket",
            {"symbol": "A", "action": "BUY", "quantity": 1, "entry_order_type": "MKT"},
            422,
            "at least a stop loss or take profit",
        ),
        (
            "/orders/bracket",
            {"symbol": "A", "action": "BUY", "quantity": 1, "entry_order_type": "STP"},
            422,
            "MKT or LMT",
        ),
    ],
)
async def test_bad_orders_get_a_detail_and_change_nothing(
    http: httpx.AsyncClient, path: str, body: Any, status: int, needle: str
) -> None:
    code, answer = await send(http, "POST", path, body)
    assert code == status
    assert needle in answer["detail"]
    assert (await send(http, "GET", "/orders"))[1] == {"orders": [], "count": 0}


async def test_lowercase_sides_and_types_are_accepted(http: httpx.AsyncClient) -> None:
    code, answer = await send(
        http, "POST", "/orders", {**MKT, "action": "buy", "order_type": "mkt"}
    )
    assert (code, answer["success"]) == (200, True)


async def test_unknown_routes_and_ids_answer_json(http: httpx.AsyncClient) -> None:
    assert await send(http, "GET", "/nowhere") == (404, {"detail": "Not Found"})
    code, answer = await send(http, "GET", "/orders/abc")
    assert code == 422 and "order_id" in answer["detail"]
    code, answer = await send(http, "DELETE", "/orders/5")
    assert (code, answer) == (400, {"detail": "Order 5 not found"})
    code, answer = await send(http, "GET", "/orders/5")
    assert (code, answer["status"], answer["filled_qty"]) == (200, "Unknown", 0)


async def test_admin_faults_round_trip_and_validate(http: httpx.AsyncClient) -> None:
    code, faults = await send(http, "GET", "/admin/faults")
    assert code == 200 and faults["error_rate"] == 0 and faults["fill_mode"] == "normal"
    code, faults = await send(
        http, "POST", "/admin/faults", {"latency": 0, "error_rate": 0.5, "fill_mode": "never"}
    )
    assert code == 200 and faults["error_rate"] == Decimal("0.5")
    code, answer = await send(http, "POST", "/admin/faults", {"error_rate": 2})
    assert code == 422 and "error_rate" in answer["detail"]
    code, answer = await send(http, "POST", "/admin/faults", {"bogus": 1})
    assert code == 422
    await send(http, "POST", "/admin/reset")
    assert (await send(http, "GET", "/admin/faults"))[1]["error_rate"] == 0


async def test_fill_mode_never_keeps_market_orders_working(http: httpx.AsyncClient) -> None:
    await send(http, "POST", "/admin/faults", {"fill_mode": "never"})
    _, placed = await send(http, "POST", "/orders", MKT)
    _, status = await send(http, "GET", f"/orders/{placed['order_id']}")
    assert status["status"] == "Submitted"


async def test_admin_price_step_account_and_listing(http: httpx.AsyncClient) -> None:
    code, moved = await send(http, "POST", "/admin/price", {"symbol": "aapl", "price": 99.5})
    assert (code, moved["symbol"], moved["price"]) == (200, "AAPL", Decimal("99.50"))
    await send(http, "POST", "/orders", {**MKT, "order_ref": "exec-9"})
    code, stepped = await send(http, "POST", "/admin/step", {"ticks": 3})
    assert code == 200 and stepped["filled"] == []
    _, prices = await send(http, "GET", "/admin/prices")
    assert set(prices) == {"AAPL"}
    code, account = await send(
        http, "POST", "/admin/account", {"net_liquidation": 50000, "buying_power": 25000}
    )
    assert (account["net_liquidation"], account["buying_power"]) == (50000, 25000)
    _, listing = await send(http, "GET", "/admin/orders")
    [recorded] = listing["orders"]
    assert recorded["order_ref"] == "exec-9"
    assert recorded["created_at"].endswith("Z") and "." in recorded["created_at"]
    assert recorded["received_at"] > 0
    code, refused = await send(http, "POST", "/admin/price", {"symbol": "AAPL", "price": 0})
    assert code == 422 and "price" in refused["detail"]


async def test_reset_forgets_everything(http: httpx.AsyncClient) -> None:
    await send(http, "POST", "/orders", MKT)
    await send(http, "POST", "/admin/reset")
    assert (await send(http, "GET", "/orders"))[1]["count"] == 0
    assert (await send(http, "GET", "/positions"))[1] == {"positions": [], "count": 0}
    assert (await send(http, "GET", "/account"))[1]["net_liquidation"] == 100000


# ---- the command line ------------------------------------------------------------------------


def test_flags_become_the_config() -> None:
    args = build_parser().parse_args(
        [
            "--seed=3",
            "--net-liquidation=250000.50",
            "--buying-power=1000",
            "--latency=0.2",
            "--error-rate=0.1",
            "--unavailable-rate=0.05",
            "--drop-after-accept",
            "--html=0.25",
            "--tick-interval=0",
            "--volatility=0.01",
        ]
    )
    config = config_from_args(args)
    assert config.seed == 3
    assert config.net_liquidation == Decimal("250000.50")
    assert config.buying_power == Decimal(1000)
    assert (config.tick_interval, config.volatility) == (0, Decimal("0.01"))
    faults = config.faults
    assert (faults.latency, faults.error_rate, faults.unavailable_rate) == (0.2, 0.1, 0.05)
    assert (faults.drop_after_accept, faults.html) == (1.0, 0.25)


def test_an_impossible_rate_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--error-rate", "1.5", "--port", "0"]) == 2
    assert "error_rate" in capsys.readouterr().err


def test_the_command_serves_until_sigterm() -> None:
    code = "import sys; from trade_executor_dev.paper import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--profile=ideal", "--port", "0", "--tick-interval", "0.01"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.split()[-1]
        with httpx.Client(base_url=url, timeout=5) as client:
            assert client.get("/health").json()["connected"] is True
            placed = client.post("/orders", content=dumps({**MKT, "order_ref": "cli"})).json()
            assert client.get(f"/orders/{placed['order_id']}").json()["status"] == "Filled"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
