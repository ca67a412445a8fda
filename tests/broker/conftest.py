"""Fixtures for the broker tests: both anyio backends, and the paper bridge over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import anyio
import httpx
import pytest

from trade_executor.broker import BrokerClient
from trade_executor.broker.jsonnum import dumps, loads
from trade_executor.broker.paper import Faults, PaperConfig, serve


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every anyio test in this directory on both backends."""
    return str(request.param)


@dataclass
class PaperServer:
    """A paper bridge served by Hypercorn on an ephemeral loopback port, with admin helpers."""

    url: str
    admin: httpx.AsyncClient
    requests: list[tuple[str, str]] = field(default_factory=list)

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        content = None if body is None else dumps(body).encode()
        response = await self.admin.request(method, path, content=content)
        assert response.status_code == 200, response.text
        return loads(response.content)

    async def set_price(self, symbol: str, price: str) -> list[int]:
        answer = await self.call(
            "POST", "/admin/price", {"symbol": symbol, "price": Decimal(price)}
        )
        return list(answer["filled"])

    async def set_faults(self, **changes: Any) -> None:
        await self.call("POST", "/admin/faults", changes)

    async def recorded_orders(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/admin/orders"))["orders"])


def paper_config(**overrides: Any) -> PaperConfig:
    """Deterministic by default: no background ticker, so prices move only when a test says."""
    settings: dict[str, Any] = {"seed": 7, "tick_interval": 0.0, "faults": Faults()}
    settings.update(overrides)
    return PaperConfig(**settings)


@pytest.fixture
def paper_settings() -> PaperConfig:
    return paper_config()


@pytest.fixture
async def paper(anyio_backend: str, paper_settings: PaperConfig) -> AsyncIterator[PaperServer]:
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
                paper_settings,
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
        async with httpx.AsyncClient(base_url=url, timeout=5) as admin:
            yield PaperServer(url=url, admin=admin)
        stop.set()


@pytest.fixture
async def client(paper: PaperServer) -> AsyncIterator[BrokerClient]:
    """A client of the paper bridge that records (endpoint, outcome) of every attempt."""

    def record(endpoint: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        paper.requests.append((endpoint, outcome))

    async with BrokerClient(
        paper.url, timeout=5, read_retries=2, backoff_base=0.0, on_request=record
    ) as broker:
        yield broker
