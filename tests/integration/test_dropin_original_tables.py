"""The original's own tables written as it writes them (CONTRACT section 4): the order intent is
committed before the POST reaches the bridge and kept up to date, a `fills` row per fill delta,
`audit_events` for halts and rejections. Real PostgreSQL, the paper bridge over HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import asyncpg
import httpx
import pytest

from tests.integration.dropin_support import approve_by_row, build_original_database, decided
from tests.integration.dropin_support import insert_jax_signal as signal
from tests.support import ThreadedBridge, make_settings, running_service, threaded_bridge

pytestmark = pytest.mark.anyio


@pytest.fixture
def jax_url(fresh_database_url: str) -> str:
    asyncio.run(build_original_database(fresh_database_url))
    return fresh_database_url


@pytest.fixture
async def jax(jax_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(jax_url)
    try:
        yield connection
    finally:
        await connection.close()


class _Witness(BaseHTTPRequestHandler):
    """Forwards to the bridge; at each order POST, first counts (on its own connection, so only
    committed rows) the intents of the order's symbol."""

    server: _WitnessServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.command == "POST" and self.path.startswith("/orders"):
            symbol = json.loads(body)["symbol"]
            self.server.seen.append((symbol, asyncio.run(self.server.count_intents(symbol))))
        upstream = httpx.request(
            self.command,
            self.server.target + self.path,
            content=body or None,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        self.send_response(upstream.status_code)
        self.send_header("content-type", upstream.headers.get("content-type", "application/json"))
        self.send_header("content-length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    do_GET = _handle
    do_POST = _handle
    do_DELETE = _handle


class _WitnessServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, target: str, database_url: str) -> None:
        super().__init__(("127.0.0.1", 0), _Witness)
        self.target = target
        self.database_url = database_url
        self.seen: list[tuple[str, int]] = []

    async def count_intents(self, symbol: str) -> int:
        conn = await asyncpg.connect(self.database_url)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM order_intents WHERE symbol = $1"
                    " AND metadata ->> 'source' = 'trade-executor'",
                    symbol,
                )
            )
        finally:
            await conn.close()


@contextmanager
def witness(target: str, database_url: str) -> Iterator[_WitnessServer]:
    server = _WitnessServer(target, database_url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_intent_is_committed_before_the_post(
    jax_url: str, jax: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    with witness(bridge.url, jax_url) as proxy:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        settings = make_settings(jax_url, bridge, ib_bridge_url=url)
        async with running_service(settings):
            signal_id = await signal(jax, "INTN")
            await approve_by_row(jax, signal_id)
            found = await decided(jax, [signal_id])

    assert proxy.seen == [("INTN", 1)]  # the row was there when the POST arrived
    execution = found[signal_id]
    intent = await jax.fetchrow("SELECT * FROM order_intents WHERE signal_id = $1", signal_id)
    assert intent is not None
    metadata = json.loads(intent["metadata"])
    assert metadata["executionId"] == str(execution["id"])
    assert metadata["brokerOrderId"] == str(execution["order_id"])  # kept up to date
    assert (intent["symbol"], intent["side"], intent["order_type"]) == ("INTN", "BUY", "LMT")
    assert intent["quantity"] == execution["quantity"]
    assert Decimal(str(intent["limit_price"])) == Decimal("150")


async def test_one_fills_row_per_delta(jax_url: str, jax: asyncpg.Connection) -> None:
    with threaded_bridge() as bridge:
        bridge.set_faults(partial_fill_qty=50)
        # Room in the budget beside the original's trades of today (720 in the fixture).
        settings = make_settings(jax_url, bridge, max_daily_loss=100000)
        async with running_service(settings):
            signal_id = await signal(jax, "PART")
            await approve_by_row(jax, signal_id)
            execution = (await decided(jax, [signal_id]))[signal_id]
            assert execution["quantity"] == 133
            # One price event at a time, each seen by the poller before the next.
            for expected in (50, 100, 133):
                bridge.set_price("PART", "149")
                with anyio.fail_after(20):
                    while (
                        await jax.fetchval(
                            "SELECT filled_qty FROM executions WHERE id = $1", execution["id"]
                        )
                        < expected
                    ):
                        await anyio.sleep(0.05)

    fills = await jax.fetch(
        "SELECT * FROM fills WHERE trade_id = $1 ORDER BY filled_at, created_at",
        str(execution["id"]),
    )
    assert [int(f["filled_qty"]) for f in fills] == [50, 50, 33]
    assert {f["broker_order_id"] for f in fills} == {str(execution["order_id"])}
    intent_id = await jax.fetchval("SELECT id FROM order_intents WHERE signal_id = $1", signal_id)
    assert {f["intent_id"] for f in fills} == {intent_id}


async def test_halts_and_rejections_are_audited(
    jax_url: str, jax: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    async with running_service(make_settings(jax_url, bridge)) as service:
        assert service.store is not None and service.actors is not None
        await service.store.set_control(True, "breaker: 3 failures in a row", "breaker")
        with anyio.fail_after(10):
            while not service.actors.executor.halted:
                await anyio.sleep(0.02)
        blocked = await signal(jax, "HALT")
        await approve_by_row(jax, blocked)
        found = await decided(jax, [blocked])
        await service.store.set_control(False, None, "ann")

    assert found[blocked]["reason"] == "halted"
    rows = await jax.fetch(
        "SELECT action, outcome FROM audit_events WHERE metadata ->> 'source' = 'trade-executor'"
        " AND action <> 'idempotency_guard'"  # the fixture's MSFT, swept at start-up
        " ORDER BY timestamp"
    )
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("breaker", "halted"),
        ("trading_state", "halted"),
        ("resume", "resumed"),
    ]


async def test_an_intent_decided_again_after_a_crash_keeps_one_intent_row(
    jax_url: str, jax: asyncpg.Connection
) -> None:
    """(CONTRACT v3) An intent proven never sent goes back to `received` (RETRY_UNSENT) and is
    decided again: the original's `order_intents` holds one row for the execution, the new one."""
    from uuid import uuid4

    from trade_executor.domain.execution import Changes
    from trade_executor.domain.states import Transition
    from trade_executor.store.postgres import PgStore, create_pool
    from trade_executor.store.protocol import Claimed

    pool = await create_pool(jax_url, min_size=1, max_size=2)
    try:
        store = PgStore(pool)
        signal_id = await signal(jax, "AGAIN")
        approval_id = await approve_by_row(jax, signal_id)
        execution_id = uuid4()
        claim = await store.claim(approval_id, execution_id, f"te-{execution_id.hex}")
        assert isinstance(claim, Claimed)
        plan = Changes(action="BUY", order_type="LMT", quantity=133, entry_price=Decimal("150"))
        await store.apply(execution_id, Transition.BEGIN_SUBMIT, plan)
        await store.apply(execution_id, Transition.RETRY_UNSENT, Changes())
        rows = await jax.fetch("SELECT * FROM order_intents WHERE signal_id = $1", signal_id)
        assert rows == []
        await store.apply(execution_id, Transition.BEGIN_SUBMIT, replace_quantity(plan, 120))
        [intent] = await jax.fetch("SELECT * FROM order_intents WHERE signal_id = $1", signal_id)
    finally:
        await pool.close()
    assert json.loads(intent["metadata"])["executionId"] == str(execution_id)
    assert intent["quantity"] == 120


def replace_quantity(plan: Any, quantity: int) -> Any:
    from dataclasses import replace

    return replace(plan, quantity=quantity)
