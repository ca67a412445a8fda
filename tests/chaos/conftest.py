"""Fixtures of the chaos suite (helpers are in `tests.support.chaos`). Every test gets its own
migrated database (`db_url`), so the daily risk budget and the open positions are the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ThreadedBridge
from tests.support.chaos import Harness


@pytest.fixture
def harness(db_url: str, bridge: ThreadedBridge, tmp_path: Path) -> Iterator[Harness]:
    running = Harness(db_url, bridge.url, tmp_path)
    try:
        yield running
    finally:
        running.shutdown()
