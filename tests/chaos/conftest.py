"""Fixtures of the chaos suite (helpers are in `tests.support.chaos`). Every test gets its own
migrated database (`db_url`), so the daily risk budget and the open positions are the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ThreadedBridge, threaded_bridge
from tests.support.chaos import Harness
from trade_executor.broker.paper import Faults


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The chaos tests read the ledger with asyncpg: asyncio only."""
    return "asyncio"


@pytest.fixture
def bridge() -> Iterator[ThreadedBridge]:
    """The chaos suite's bridge stays on the polite `ideal` profile for now: `check_invariants`
    ties every order at the bridge to its execution by the `order_ref` the bridge keeps, and
    the real bridge (the `jax` profile, the default elsewhere) stamps every order
    "manual-entry" instead. Moving it to jax needs the invariants rewritten to tie orders by
    the request log's POST bodies (symbol -> order_ref sent); the lost-answer paths themselves
    run against jax in tests/integration/test_bridge_lost_answers.py."""
    with threaded_bridge(profile="ideal", faults=Faults()) as running:
        yield running


@pytest.fixture
def harness(db_url: str, bridge: ThreadedBridge, tmp_path: Path) -> Iterator[Harness]:
    running = Harness(db_url, bridge.url, tmp_path)
    try:
        yield running
    finally:
        running.shutdown()
