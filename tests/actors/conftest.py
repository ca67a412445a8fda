"""Fixtures for the actor tests: a migrated database per test, a paper bridge in a thread, and
the real `Service` (supervisor, listener, executor, pollers, HTTP API) in the test's loop.
These touch asyncpg, so they run on asyncio only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import asyncpg
import pytest

from tests.support import ThreadedBridge, threaded_bridge
from trade_executor.config import Settings, load_settings
from trade_executor.service import Service
from trade_executor.store.migrate import migrate
from trade_executor.systemd import SystemdNotifier


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_url(fresh_database_url: str) -> str:
    asyncio.run(migrate(fresh_database_url))
    return fresh_database_url


@pytest.fixture
def bridge() -> Iterator[ThreadedBridge]:
    with threaded_bridge() as running:
        yield running


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_url)
    try:
        yield connection
    finally:
        await connection.close()


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
    }
    values.update(overrides)
    return load_settings(**values)


@asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[Service]:
    """The real service in this loop; stopped (as by SIGTERM) when the block ends."""
    service = Service(settings, notifier=SystemdNotifier(None))
    exit_codes: list[int] = []

    async def run() -> None:
        exit_codes.append(await service.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(20):
            while service.state.role != "active":
                if exit_codes:
                    raise RuntimeError(f"the service exited with {exit_codes[0]}")
                await anyio.sleep(0.01)
        try:
            yield service
        finally:
            service.request_stop()
    assert exit_codes == [0]
