"""Fixtures of the chaos suite (helpers are in `tests.support.chaos`). Every test gets its own
migrated database (`db_url`), so the daily risk budget and the open positions are the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ThreadedBridge, threaded_bridge
from tests.support.chaos import Harness


@pytest.fixture
def bridge() -> Iterator[ThreadedBridge]:
    """The real bridge's behaviour (the `jax` profile, its waits scaled by JAX_LATENCY_SCALE):
    no order_ref kept (the invariants tie orders to executions by the order_ref each POST was
    sent with, from the bridge's request log), unset prices, 500s, DAY orders."""
    with threaded_bridge() as running:
        yield running


@pytest.fixture
def harness(db_url: str, bridge: ThreadedBridge, tmp_path: Path) -> Iterator[Harness]:
    running = Harness(db_url, bridge.url, tmp_path)
    try:
        yield running
    finally:
        running.shutdown()
