"""Helpers shared by the integration tests: a paper bridge in its own thread, signal factories."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import anyio
import anyio.from_thread
import asyncpg
import httpx

from trade_executor.broker.jsonnum import dumps, loads
from trade_executor.config.sources import (
    CREDENTIALS_DIRECTORY_VARIABLE,
    ENV_FILE_VARIABLE,
    Settings,
    load_settings,
)
from trade_executor.service.run import Service
from trade_executor.service.systemd import SystemdNotifier
from trade_executor_dev.paper import Faults, PaperConfig, serve

# Every variable a setting is read from, and the two that point at more settings (an env file,
# systemd's credentials): what `clean_environment` removes and a child process must not inherit.
ENV_VARIABLES = [name.upper() for name in Settings.model_fields] + [
    ENV_FILE_VARIABLE,
    CREDENTIALS_DIRECTORY_VARIABLE,
]


@dataclass
class ThreadedBridge:
    """A paper bridge on its own event loop in a thread: a separate server, as in production."""

    url: str

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        content = None if body is None else dumps(body).encode()
        response = httpx.request(method, self.url + path, content=content, timeout=10)
        assert response.status_code == 200, response.text
        return loads(response.content)

    def orders(self, *, sent_refs: bool = False) -> list[dict[str, Any]]:
        """Every order the bridge holds (`/admin/orders`). With `sent_refs`, each parent order's
        `order_ref` is the one its POST was SENT with (see `with_sent_refs`): the jax profile,
        like the real bridge, stamps its own ("manual-entry") and keeps nothing of the client's."""
        orders = list(self.admin("GET", "/admin/orders")["orders"])
        return with_sent_refs(orders, self.requests_checked()) if sent_refs else orders

    def parent_orders(self, *, sent_refs: bool = False) -> list[dict[str, Any]]:
        return [o for o in self.orders(sent_refs=sent_refs) if o.get("parent_id") in (None, 0)]

    def requests_checked(self) -> list[dict[str, Any]]:
        """The whole request log; refuses one that dropped entries (it could no longer tell
        which POST placed which order)."""
        log = self.admin("GET", "/admin/requests")
        assert log["dropped"] == 0, f"the bridge's request log dropped {log['dropped']} entries"
        return list(log["requests"])

    def set_faults(self, **changes: Any) -> None:
        self.admin("POST", "/admin/faults", changes)

    def set_price(self, symbol: str, price: str) -> Any:
        return self.admin("POST", "/admin/price", {"symbol": symbol, "price": Decimal(price)})

    def requests(self) -> list[dict[str, Any]]:
        """The request log (`/admin/requests`): every IB API request, stamped on arrival."""
        return list(self.admin("GET", "/admin/requests")["requests"])

    def order_posts(self) -> list[dict[str, Any]]:
        """The order POSTs the bridge received (`/orders`, `/orders/bracket`), without the
        capability probes (a JSON array the bridge must refuse: see broker/capabilities.py)."""
        return [
            r
            for r in self.requests()
            if r["method"] == "POST"
            and r["path"] in ("/orders", "/orders/bracket")
            and isinstance(r["body"], dict)
        ]


ORDER_POSTS = ("/orders", "/orders/bracket")


def _order_key(symbol: Any, action: Any, quantity: Any) -> tuple[str, str, str]:
    # The bridge upper-cases and strips the symbol and side; quantities compare as text so a
    # malformed body (a string, a float) can never match a placed order by accident.
    return (str(symbol).upper().strip(), str(action).upper().strip(), str(quantity))


def with_sent_refs(
    orders: list[dict[str, Any]], requests: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`orders` (from `/admin/orders`) with each parent order's `order_ref` replaced by the
    `order_ref` of the order POST that placed it, found in the request log; the bridge's own is
    kept as `bridge_order_ref`. A parent no POST explains gets `order_ref` None.

    The POST that placed an order is one to `/orders` or `/orders/bracket` with the same
    symbol, action and quantity that was in progress when the bridge took the order (it arrived
    before, and was not answered before); among several, the earliest not yet used, orders taken
    in the order the bridge took them. Each POST places at most one parent order, so two orders
    from one POST can never both be credited to it."""
    posts = [
        r
        for r in requests
        if r["method"] == "POST" and r["path"] in ORDER_POSTS and isinstance(r["body"], dict)
    ]
    used: set[int] = set()
    out: list[dict[str, Any]] = []
    placed: dict[int, str | None] = {}
    parents = [o for o in orders if o.get("parent_id") in (None, 0)]
    for order in sorted(parents, key=lambda o: float(o["received_at"])):
        key = _order_key(order["symbol"], order["action"], order["quantity"])
        taken = float(order["received_at"])
        placed[order["order_id"]] = None
        for index, post in enumerate(posts):
            body = post["body"]
            answered = post["answered_at"]
            if (
                index not in used
                and _order_key(body.get("symbol"), body.get("action"), body.get("quantity")) == key
                and float(post["received_at"]) <= taken
                and (answered is None or float(answered) >= taken)
            ):
                used.add(index)
                ref = body.get("order_ref")
                placed[order["order_id"]] = ref if isinstance(ref, str) else None
                break
    for order in orders:
        if order["order_id"] in placed:
            order = {
                **order,
                "bridge_order_ref": order.get("order_ref"),
                "order_ref": placed[order["order_id"]],
            }
        out.append(order)
    return out


# The real bridge's own waits (0.5 s per order, 0.7 s per bracket, up to 5 s to identify a new
# symbol), scaled down for the integration and chaos suites; the slow suite may pass 1.0.
JAX_LATENCY_SCALE = 0.01


@contextmanager
def threaded_bridge(*, port: int = 0, **overrides: Any) -> Iterator[ThreadedBridge]:
    """A paper bridge in its own thread, on `port` (0: an ephemeral one). By default it behaves
    like the real jax-trading-assistant bridge (`profile="jax"`: no order_ref kept, unset
    prices, 500s, DAY orders, ...) with its waits scaled by JAX_LATENCY_SCALE; pass
    `profile="ideal"` for the polite one. Otherwise `paper_config(**overrides)`."""
    settings: dict[str, Any] = {
        "profile": "jax",
        "faults": Faults(latency_scale=JAX_LATENCY_SCALE),
        **overrides,
    }
    config = paper_config(**settings)
    ports: list[int] = []
    started = threading.Event()
    stop = threading.Event()

    async def until_stopped() -> None:
        while not stop.is_set():
            await anyio.sleep(0.02)

    def ready(port: int) -> None:
        ports.append(port)
        started.set()

    def run() -> None:
        anyio.run(
            partial(serve, config, "127.0.0.1", port, ready=ready, shutdown_trigger=until_stopped)
        )

    thread = threading.Thread(target=run, name="paper-bridge", daemon=True)
    thread.start()
    if not started.wait(15):
        raise RuntimeError("the paper bridge did not start")
    try:
        yield ThreadedBridge(f"http://127.0.0.1:{ports[0]}")
    finally:
        stop.set()
        thread.join(10)


@dataclass
class PaperServer:
    """A paper bridge served in the test's own event loop (either backend), with admin helpers."""

    url: str
    admin: httpx.AsyncClient
    requests: list[tuple[str, str]] = field(default_factory=list)

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        content = None if body is None else dumps(body).encode()
        response = await self.admin.request(method, path, content=content)
        assert response.status_code == 200, response.text
        return loads(response.content)

    async def recorded_orders(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/admin/orders"))["orders"])

    async def parent_orders(self) -> list[dict[str, Any]]:
        return [o for o in await self.recorded_orders() if o.get("parent_id") in (None, 0)]

    async def order(self, order_id: int) -> dict[str, Any]:
        [found] = [o for o in await self.recorded_orders() if o["order_id"] == order_id]
        return dict(found)

    async def set_price(self, symbol: str, price: str) -> list[int]:
        body = {"symbol": symbol, "price": Decimal(price)}
        return list((await self.call("POST", "/admin/price", body))["filled"])

    async def set_faults(self, **changes: Any) -> None:
        await self.call("POST", "/admin/faults", changes)


@asynccontextmanager
async def paper_in_this_loop(config: PaperConfig) -> AsyncIterator[PaperServer]:
    """Serve the paper bridge on an ephemeral loopback port until the block ends."""
    ports: list[int] = []
    started = anyio.Event()
    stop = anyio.Event()

    def ready(port: int) -> None:
        ports.append(port)
        started.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(
            partial(
                serve,
                config,
                "127.0.0.1",
                0,
                ready=ready,
                shutdown_trigger=stop.wait,
                graceful_timeout=0.2,
            )
        )
        with anyio.fail_after(10):
            await started.wait()
        url = f"http://127.0.0.1:{ports[0]}"
        try:
            async with httpx.AsyncClient(base_url=url, timeout=5) as admin:
                yield PaperServer(url=url, admin=admin)
        finally:
            stop.set()


INSERT_SIGNAL = """
INSERT INTO strategy_signals (id, symbol, strategy_id, signal_type, confidence, entry_price,
                              stop_loss, take_profit, reasoning, expires_at)
VALUES ($1, $2, 'test-strategy', $3, 0.8, $4::numeric, $5::numeric, $6::numeric, 'test', $7)
"""
INSERT_APPROVAL = """
INSERT INTO trade_approvals (id, signal_id, approved, approved_at, approved_by)
VALUES ($1, $2, $3, now(), 'tester')
"""


async def insert_signal(
    conn: asyncpg.Connection,
    symbol: str,
    side: str = "BUY",
    entry: str = "150",
    stop: str = "145",
    target: str = "160",
    *,
    expires_in: timedelta = timedelta(hours=1),
) -> uuid.UUID:
    signal_id = uuid.uuid4()
    await conn.execute(
        INSERT_SIGNAL,
        signal_id,
        symbol,
        side,
        Decimal(entry),
        Decimal(stop),
        Decimal(target),
        datetime.now(UTC) + expires_in,
    )
    return signal_id


async def approve(
    conn: asyncpg.Connection, signal_id: uuid.UUID, approved: bool = True
) -> uuid.UUID:
    approval_id = uuid.uuid4()
    await conn.execute(INSERT_APPROVAL, approval_id, signal_id, approved)
    return approval_id


async def wait_for(
    conn: asyncpg.Connection, query: str, *args: Any, expect: Any = True, timeout: float = 15
) -> Any:
    """Poll a query until it returns `expect` (or a truthy value when expect is True)."""
    with anyio.fail_after(timeout):
        while True:
            value = await conn.fetchval(query, *args)
            if (expect is True and value) or value == expect:
                return value
            await anyio.sleep(0.02)


def make_settings(db_url: str, bridge: ThreadedBridge, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "ib_bridge_url": bridge.url,
        "execution_enabled": True,
        "http_port": 0,
        "order_poll_interval": 0.2,
        "order_poll_timeout": 30,
        "sweep_interval": 1,
        "listener_health_interval": 0.5,
        "standby_retry_interval": 0.5,
        "shutdown_grace": 5,
        "cancelled_recheck_delay": 0.1,
        "api_token": "test-token",
        # The suite runs at any hour; the session's own tests ask for `reject`.
        "outside_session": "send",
    }
    values.update(overrides)
    return load_settings(**values)


@asynccontextmanager
async def running_service(
    settings: Settings, role: str = "active", **options: Any
) -> AsyncIterator[Service]:
    """The real service in this loop, once it has reached `role` ("active", or "standby" for a
    second instance); stopped (as by SIGTERM) when the block ends. `options` go to `Service`
    (intervals a test shortens)."""
    service = Service(settings, notifier=SystemdNotifier(None), **options)
    exit_codes: list[int] = []

    async def run() -> None:
        exit_codes.append(await service.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(20):
            while service.role != role:
                if exit_codes:
                    raise RuntimeError(f"the service exited with {exit_codes[0]}")
                await anyio.sleep(0.01)
        try:
            yield service
        finally:
            service.request_stop()
    assert exit_codes == [0]


def paper_config(**overrides: Any) -> PaperConfig:
    """The deterministic paper bridge of the tests: no background ticker (prices move only when
    a test says), a fixed seed, no faults."""
    settings: dict[str, Any] = {"seed": 7, "tick_interval": 0.0, "faults": Faults()}
    settings.update(overrides)
    return PaperConfig(**settings)
