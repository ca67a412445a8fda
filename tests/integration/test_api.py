"""The HTTP API (CONTRACT section 6) against the real service: PostgreSQL, the listener, the
executor, the pollers and a paper bridge over HTTP. Every status code is provoked for real."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    ThreadedBridge,
    insert_signal,
    make_settings,
    running_service,
    threaded_bridge,
)
from trade_executor.broker.jsonnum import loads
from trade_executor.service.run import Service
from trade_executor.store.migrate import migrate
from trade_executor_dev.devdb.server import embedded_postgres, find_bindir

# The service never blocks the event loop (blockbuster: tests/conftest.py).
pytestmark = [pytest.mark.anyio, pytest.mark.no_blocking]

TOKEN = "test-token"
WAIT = 30.0  # deadline for an outcome to appear, never a measured duration
# The bridge watch's interval where a test waits for it to see the bridge go and come back
# (CHECK_INTERVAL, 5 s, in production).
WATCH = 0.1


@asynccontextmanager
async def api(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the service's API. `Connection: close`: no keep-alive connection is left open
    when the service stops (see test_stopping_with_a_keep_alive_connection_open_exits_0)."""
    base = f"http://127.0.0.1:{service.http_port}"
    headers = {"Connection": "close"}
    # The client outwaits the API's own 30 s wait for an outcome.
    async with httpx.AsyncClient(base_url=base, timeout=2 * WAIT, headers=headers) as client:
        yield client


async def execute(
    client: httpx.AsyncClient, body: Any, token: str | None = TOKEN, **kwargs: Any
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if isinstance(body, bytes | str):
        return await client.post("/api/v1/execute", content=body, headers=headers, **kwargs)
    return await client.post("/api/v1/execute", json=body, headers=headers, **kwargs)


def parse(response: httpx.Response) -> Any:
    """JSON numbers as Decimal (money must not go through float)."""
    return loads(response.content)


async def health(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/health")
    return response.status_code, response.json()


async def until_health(client: httpx.AsyncClient, code: int) -> dict[str, Any]:
    with anyio.fail_after(WAIT):
        while True:
            status, body = await health(client)
            if status == code:
                return body
            await anyio.sleep(0.1)


# -- POST /api/v1/execute ---------------------------------------------------------------------


async def test_execute_success_has_the_contract_shape_and_numbers(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    signal_id = await insert_signal(conn, "AAPL", "BUY", "150", "145", "160")
    async with running_service(make_settings(db_url, bridge)) as service, api(service) as client:
        response = await execute(client, {"signal_id": str(signal_id), "approved_by": "alice"})
        assert response.status_code == 200, response.text
        body = parse(response)

        assert body["success"] is True
        assert set(body) == {"success", "trade_id", "order_id", "trade", "duration"}
        assert isinstance(body["duration"], Decimal) and body["duration"] >= 0
        trade = body["trade"]
        assert set(trade) == {
            "trade_id", "signal_id", "order_id", "symbol", "direction", "quantity",
            "entry_price", "stop_loss", "take_profit", "strategy_id", "status", "filled_qty",
            "avg_fill_price", "risk_amount", "risk_percent", "position_value", "submitted_at",
        }  # fmt: skip
        assert trade["trade_id"] == body["trade_id"]
        assert str(trade["order_id"]) == str(body["order_id"])
        assert trade["signal_id"] == str(signal_id)
        assert (trade["symbol"], trade["direction"]) == ("AAPL", "BUY")
        assert trade["quantity"] == 133
        assert trade["entry_price"] == Decimal("150")
        assert trade["stop_loss"] == Decimal("145")
        assert trade["take_profit"] == Decimal("160")
        assert trade["risk_amount"] == Decimal("665.00")
        assert trade["risk_percent"] == Decimal("0.00665")
        assert trade["position_value"] == Decimal("19950.00")
        assert trade["strategy_id"] == "test-strategy"
        assert trade["submitted_at"]

        # The order really is at the bridge, and the approval row was written by the API.
        [order] = bridge.parent_orders()
        assert str(order["order_id"]) == str(body["order_id"])
        assert order["quantity"] == 133
        approval = await conn.fetchrow(
            "SELECT approved, approved_by, order_id FROM trade_approvals WHERE signal_id = $1",
            signal_id,
        )
        assert approval is not None
        assert approval["approved"] and approval["approved_by"] == "alice"

        # 409: already executed, with the existing trade; no second order.
        again = await execute(client, {"signal_id": str(signal_id), "approved_by": "bob"})
        assert again.status_code == 409, again.text
        conflict = parse(again)
        assert conflict["error"] and conflict["trade"]["trade_id"] == body["trade_id"]
        assert len(bridge.parent_orders()) == 1


async def test_execute_rejected_is_422_with_the_reason(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    wrong_side = await insert_signal(conn, "MSFT", "BUY", "400", "410", "420")
    async with running_service(make_settings(db_url, bridge)) as service, api(service) as client:
        response = await execute(client, {"signal_id": str(wrong_side), "approved_by": "alice"})
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"].startswith("invalid_signal:")
        assert body["state"] == "rejected"
        # A risk gate, also 422: a signal for a symbol that is already in flight or open.
        first = await insert_signal(conn, "AAPL")
        assert (await execute(client, {"signal_id": str(first), "approved_by": "a"})).is_success
        duplicate = await insert_signal(conn, "AAPL")
        response = await execute(client, {"signal_id": str(duplicate), "approved_by": "a"})
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "risk: duplicate_symbol"
    assert len(bridge.parent_orders()) == 1


MALFORMED: list[tuple[Any, str]] = [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    ({"approved_by": "alice"}, "signal_id"),
    ({"signal_id": 42, "approved_by": "alice"}, "signal_id"),
    ({"signal_id": "not-a-uuid", "approved_by": "alice"}, "UUID"),
    ({"signal_id": str(uuid.UUID(int=1)), "approved_by": ""}, "approved_by"),
    ({"signal_id": str(uuid.UUID(int=1))}, "approved_by"),
    ({"signal_id": str(uuid.UUID(int=1)), "approved_by": "x" * 5000}, "approved_by"),
    ({"signal_id": str(uuid.UUID(int=1)), "approved_by": "a\x00b"}, "approved_by"),
]


async def test_malformed_bodies_are_400(db_url: str, bridge: ThreadedBridge) -> None:
    async with running_service(make_settings(db_url, bridge)) as service, api(service) as client:
        for body, needle in MALFORMED:
            response = await execute(client, body)
            assert response.status_code == 400, (body, response.text)
            assert needle in response.json()["error"], body
        response = await execute(client, b'{"signal_id": "' + b"a" * 20000 + b'"}')
        assert response.status_code == 413, response.text  # too large: Payload Too Large
        assert "too large" in response.json()["error"]


async def test_tokens_unknown_signals_and_disabled_posts(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    signal_id = await insert_signal(conn, "AAPL")
    body = {"signal_id": str(signal_id), "approved_by": "mallory"}
    async with running_service(make_settings(db_url, bridge)) as service, api(service) as client:
        for token in (None, "wrong-token", TOKEN + "x", TOKEN[:-1]):
            response = await execute(client, body, token=token)
            assert response.status_code == 401, (token, response.text)
            assert "token" in response.json()["error"]
        for header in (f"Basic {TOKEN}", "Bearer", TOKEN):
            response = await client.post(
                "/api/v1/execute", json=body, headers={"Authorization": header}
            )
            assert response.status_code == 401, header

        unknown = await execute(client, {"signal_id": str(uuid.uuid4()), "approved_by": "a"})
        assert unknown.status_code == 404, unknown.text
        assert "not found" in unknown.json()["error"]
    # None of these approved or executed anything.
    assert await conn.fetchval("SELECT count(*) FROM trade_approvals") == 0
    assert await conn.fetchval("SELECT count(*) FROM executions") == 0

    settings = make_settings(db_url, bridge, api_token=None)
    async with running_service(settings) as service, api(service) as client:
        response = await execute(client, body)
        assert response.status_code == 403, response.text
        assert "API_TOKEN" in response.json()["error"]
    assert await conn.fetchval("SELECT count(*) FROM executions") == 0
    assert bridge.parent_orders() == []


async def test_a_standby_answers_503(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    signal_id = await insert_signal(conn, "AAPL")
    settings = make_settings(db_url, bridge)
    async with (
        running_service(settings),
        running_service(settings, role="standby") as standby,
        api(standby) as client,
    ):
        response = await execute(client, {"signal_id": str(signal_id), "approved_by": "a"})
        assert response.status_code == 503, response.text
        assert "standby" in response.json()["error"]
        status, body = await health(client)
        assert (status, body["status"]) == (503, "standby")
    assert await conn.fetchval("SELECT count(*) FROM executions") == 0


# -- GET /health ---------------------------------------------------------------------------------


@contextmanager
def bridge_on_port(port: int) -> Iterator[str]:
    """A paper bridge on a given port, in its own thread, so that it can be stopped and started
    again at the same address."""
    with threaded_bridge(port=port) as running:
        yield running.url


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_health_flips_when_the_bridge_goes_away_and_back(db_url: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(db_url, ThreadedBridge(url))
    bridge = bridge_on_port(port)
    bridge.__enter__()
    try:
        async with (
            running_service(settings, bridge_check_interval=WATCH) as service,
            api(service) as client,
        ):
            body = await until_health(client, 200)
            assert body["status"] == "ok"
            assert (body["database"], body["bridge"], body["listener"]) == ("ok", "ok", "ok")
            assert body["halted"] is False and body["execution_enabled"] is True
            assert body["version"]
            await anyio.to_thread.run_sync(bridge.__exit__, None, None, None)
            body = await until_health(client, 503)
            assert (body["status"], body["bridge"], body["database"]) == (
                "degraded",
                "unavailable",
                "ok",
            )
            bridge = bridge_on_port(port)
            await anyio.to_thread.run_sync(bridge.__enter__)
            body = await until_health(client, 200)
            assert (body["status"], body["bridge"]) == ("ok", "ok")
    finally:
        bridge.__exit__(None, None, None)


@pytest.mark.skipif(find_bindir() is None, reason="no PostgreSQL server binaries to run")
async def test_health_flips_when_postgresql_goes_away_and_back(bridge: ThreadedBridge) -> None:
    with embedded_postgres() as server:
        await migrate(server.url)
        settings = make_settings(server.url, bridge)
        async with running_service(settings) as service, api(service) as client:
            assert (await until_health(client, 200))["database"] == "ok"
            before = service.actors.executor if service.actors else None
            await anyio.to_thread.run_sync(server.stop)
            body = await until_health(client, 503)
            # Without its database the instance cannot hold the leader lock: it stands by
            # (fencing), or reports itself degraded until it notices.
            assert body["status"] in ("degraded", "standby")
            assert body["database"] == "unavailable"
            await anyio.to_thread.run_sync(server.start)
            # The leader lock's session died with the server: the service notices at its next
            # lock check, stands by, takes the lock again and starts fresh actors.
            with anyio.fail_after(WAIT):
                while (
                    service.actors.executor if service.actors else None
                ) is before or service.role != "active":
                    await anyio.sleep(0.05)
            body = await until_health(client, 200)
            assert (body["database"], body["listener"]) == ("ok", "ok")
            # and it executes again: the listener is back on the new server
            conn = await asyncpg.connect(server.url)
            try:
                signal_id = await insert_signal(conn, "AAPL")
                response = await execute(client, {"signal_id": str(signal_id), "approved_by": "a"})
                assert response.status_code == 200, response.text
            finally:
                await conn.close()


async def test_health_is_degraded_when_the_bridge_is_not_connected_to_ib(
    db_url: str, bridge: ThreadedBridge
) -> None:
    settings = make_settings(db_url, bridge)
    async with (
        running_service(settings, bridge_check_interval=WATCH) as service,
        api(service) as client,
    ):
        assert (await until_health(client, 200))["status"] == "ok"
        bridge.set_faults(unavailable_rate=1.0)
        # Checked in the background: within one check interval, not at the probe.
        body = await until_health(client, 503)
        assert body["bridge"] == "unavailable"
        assert service.metrics.bridge_up._value.get() == 0


# -- GET /metrics ---------------------------------------------------------------------------------


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_parse_and_move_with_executions(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with running_service(make_settings(db_url, bridge)) as service, api(service) as client:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        before = scrape(response.text)
        names = {name for name, _ in before}
        for expected in (
            "trade_executor_approvals_received_total",
            "trade_executor_orders_submitted_total",
            "trade_executor_open_pollers",
            "trade_executor_daily_risk_used",
            "trade_executor_approval_to_submit_seconds_count",
        ):
            assert expected in names, expected

        placed = await insert_signal(conn, "AAPL")
        ok = await execute(client, {"signal_id": str(placed), "approved_by": "a"})
        assert ok.status_code == 200, ok.text
        gated = await insert_signal(conn, "AAPL")  # same symbol: risk: duplicate_symbol
        assert (
            await execute(client, {"signal_id": str(gated), "approved_by": "a"})
        ).status_code == 422
        after = scrape((await client.get("/metrics")).text)

        def delta(name: str, **labels: str) -> float:
            key = (name, tuple(sorted(labels.items())))
            return after.get(key, 0.0) - before.get(key, 0.0)

        assert delta("trade_executor_approvals_received_total") == 2
        assert delta("trade_executor_orders_submitted_total") == 1
        assert delta("trade_executor_risk_rejections_total", gate="duplicate_symbol") == 1
        assert delta("trade_executor_executions_total", state="rejected") == 1
        assert delta("trade_executor_approval_to_submit_seconds_count") == 1
        assert after[("trade_executor_daily_risk_used", ())] == pytest.approx(665.0)
        bridge_requests = sum(
            value
            for (name, _), value in after.items()
            if name == "trade_executor_bridge_request_seconds_count"
        )
        assert bridge_requests >= 1


# -- shutdown with clients connected -------------------------------------------------------------


async def test_stopping_with_a_keep_alive_connection_open_exits_0(
    db_url: str, bridge: ThreadedBridge
) -> None:
    async with (
        httpx.AsyncClient(timeout=WAIT) as client,  # keep-alive, as scrapers do
        running_service(make_settings(db_url, bridge)) as service,
    ):
        port = service.http_port
        assert (await client.get(f"http://127.0.0.1:{port}/metrics")).status_code == 200
        # running_service asserts the exit code 0 when the block ends


async def test_the_execute_command_goes_through_the_running_service(
    db_url: str,
    bridge: ThreadedBridge,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trade_executor.cli.main import main

    signal_id = await insert_signal(conn, "CLIX")
    monkeypatch.setenv("API_TOKEN", TOKEN)
    async with running_service(make_settings(db_url, bridge)) as service:
        url = f"http://127.0.0.1:{service.http_port}"
        argv = ["execute", str(signal_id), "--approved-by", "cli-user", "--url", url]
        code = await anyio.to_thread.run_sync(main, argv)
    assert code == 0
    out = capsys.readouterr().out
    # The answer is one line; the in-process service's log lines may surround it.
    answer = loads(next(line for line in out.splitlines() if line.startswith('{"success"')))
    assert answer["success"] is True and answer["trade"]["quantity"] == 133
    assert (
        await conn.fetchval(
            "SELECT approved_by FROM trade_approvals WHERE signal_id = $1", signal_id
        )
        == "cli-user"
    )
    assert [o["symbol"] for o in bridge.parent_orders()] == ["CLIX"]
