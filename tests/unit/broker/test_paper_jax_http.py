"""`--profile jax` over real HTTP: what needs a socket (lost and late answers, waits, the command).

The waits run at a small `latency_scale`; assertions are about order and presence, never about
how fast anything was (the only durations checked are the bridge's own minimum waits).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial
from typing import Any

import anyio
import httpx
import pytest

from tests.support import PaperServer, paper_config, paper_in_this_loop
from trade_executor.broker.jsonnum import dumps, loads
from trade_executor_dev.paper import Faults
from trade_executor_dev.paper.cli import build_parser, config_from_args

pytestmark = pytest.mark.anyio

MKT = {"symbol": "AAPL", "action": "BUY", "quantity": 3, "order_type": "MKT", "order_ref": "e-1"}


def jax(**faults: Any) -> Any:
    return paper_config(profile="jax", faults=Faults(**faults))


async def requests_to(paper: PaperServer, method: str, path: str) -> list[dict[str, Any]]:
    log = (await paper.call("GET", "/admin/requests"))["requests"]
    return [e for e in log if (e["method"], e["path"]) == (method, path)]


async def test_an_answer_lost_after_placing_leaves_the_order_listed(anyio_backend: str) -> None:
    async with paper_in_this_loop(jax(latency_scale=0, drop_after_accept=1.0)) as paper:
        async with httpx.AsyncClient(base_url=paper.url, timeout=5) as http:
            with pytest.raises(httpx.TransportError):
                await http.post("/orders", content=dumps(MKT).encode())
            [row] = loads((await http.get("/orders")).content)["orders"]
        assert (row["symbol"], row["quantity"], row["status"]) == ("AAPL", 3, "Filled")
        assert row["order_ref"] == "manual-entry"  # nothing ties it to "e-1" but the match
        assert len(await requests_to(paper, "POST", "/orders")) == 1


async def test_a_post_the_client_gave_up_on_still_places_the_order(anyio_backend: str) -> None:
    # Identifying the new symbol takes 5 s x 0.1; the client waits 0.1 s. The order is placed
    # after the client left (as with IB_BRIDGE_TIMEOUT=5 against the real bridge's 5.5 s).
    async with paper_in_this_loop(jax(latency_scale=0.1)) as paper:
        async with httpx.AsyncClient(base_url=paper.url, timeout=0.1) as impatient:
            with pytest.raises(httpx.ReadTimeout):
                await impatient.post("/orders", content=dumps(MKT).encode())
        with anyio.fail_after(10):
            while not (orders := (await paper.call("GET", "/orders"))["orders"]):
                await anyio.sleep(0.05)
        assert [o["status"] for o in orders] == ["Filled"]
        with anyio.fail_after(10):
            while (await requests_to(paper, "POST", "/orders"))[0]["status"] is None:
                await anyio.sleep(0.05)
        [post] = await requests_to(paper, "POST", "/orders")
        assert post["status"] == 200  # the bridge answered, to nobody


async def test_the_real_bridges_waits_hold_at_the_socket(anyio_backend: str) -> None:
    scale = 0.05
    async with paper_in_this_loop(jax(latency_scale=scale, qualify_seconds=2)) as paper:
        await paper.set_price("AAPL", "100")
        async with httpx.AsyncClient(base_url=paper.url, timeout=5) as http:
            await http.post(
                "/orders", content=dumps({**MKT, "order_type": "LMT", "limit_price": 1}).encode()
            )
            await http.post(
                "/orders", content=dumps({**MKT, "order_type": "LMT", "limit_price": 1}).encode()
            )
            assert (await http.delete("/orders/1")).status_code == 200
        first, second = await requests_to(paper, "POST", "/orders")
        [cancel] = await requests_to(paper, "DELETE", "/orders/1")

    def took(entry: dict[str, Any]) -> float:
        return float(entry["answered_at"] - entry["received_at"])

    tolerance = 0.99  # timers may wake a hair early
    assert took(first) >= (2 + 0.5) * scale * tolerance  # identify the symbol, then 0.5 s
    assert took(second) >= 0.5 * scale * tolerance
    assert took(cancel) >= 0.25 * scale * tolerance


async def test_the_log_stamps_requests_on_arrival_not_on_answer(anyio_backend: str) -> None:
    # What a pacing check needs: concurrent orders are logged when they reach the bridge,
    # though each answer waits.
    async with paper_in_this_loop(jax(latency_scale=0.2, qualify_seconds=0)) as paper:
        body = dumps(MKT).encode()
        async with (
            httpx.AsyncClient(base_url=paper.url, timeout=5) as http,
            anyio.create_task_group() as tasks,
        ):
            for _ in range(3):
                tasks.start_soon(partial(http.post, "/orders", content=body))
        posts = await requests_to(paper, "POST", "/orders")
        assert len(posts) == 3
        assert max(p["received_at"] for p in posts) < min(p["answered_at"] for p in posts)


# ---- the command line ------------------------------------------------------------------------


def test_the_command_defaults_to_the_jax_profile() -> None:
    config = config_from_args(build_parser().parse_args([]))
    assert (config.profile, config.faults.latency_scale, config.paper_trading) == ("jax", 1, True)
    config = config_from_args(
        build_parser().parse_args(
            [
                "--profile=legacy",
                "--latency-scale=0.5",
                "--qualify-seconds=1",
                "--partial-fill-qty=2",
                "--cancelled-before-fill",
                "--cancelled-reads=3",
                "--unknown-symbol=zzz",
                "--live",
                "--request-log=10",
            ]
        )
    )
    assert config.profile == "legacy" and config.unknown_symbols == {"ZZZ"}
    assert (config.paper_trading, config.request_log) == (False, 10)
    faults = config.faults
    assert (faults.latency_scale, faults.qualify_seconds, faults.partial_fill_qty) == (0.5, 1, 2)
    assert (faults.cancelled_before_fill, faults.cancelled_reads) == (1.0, 3)


def test_the_jax_command_serves_the_real_health_until_sigterm() -> None:
    code = "import sys; from trade_executor_dev.paper import main; sys.exit(main(sys.argv[1:]))"
    args = ["--port", "0", "--latency-scale", "0", "--live", "--unknown-symbol", "NOPE"]
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "(profile jax) listening on http://127.0.0.1:" in line
        with httpx.Client(base_url=line.split()[-1], timeout=5) as client:
            health = client.get("/health").json()
            assert (health["version"], health["paper_trading"]) == ("1.0.0", False)
            refused = client.post("/orders", json={**MKT, "symbol": "nope"})
            assert refused.status_code == 500
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
