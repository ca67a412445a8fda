"""Fixtures for the broker tests: both anyio backends, and the paper bridge over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support import PaperServer, paper_in_this_loop
from trade_executor.broker import BrokerClient
from trade_executor.broker.paper import Faults, PaperConfig


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every anyio test in this directory on both backends."""
    return str(request.param)


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
    async with paper_in_this_loop(paper_settings) as server:
        yield server


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
