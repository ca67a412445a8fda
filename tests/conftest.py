"""The suite's layout: `unit/` (pure, or in-memory and in-loop: both anyio backends),
`integration/` (PostgreSQL, real processes: asyncio only, asyncpg does not run on trio),
`chaos/` (faults, crashes, bad input, load). Fixtures live in `tests.support.fixtures`, helpers
in `tests.support`; tests import from those, never from a conftest."""

from __future__ import annotations

import os

import pytest

# The suite runs at any hour: entries are sent outside the trading session unless a test asks
# for the session (tests/unit/domain/test_session.py, tests/integration/gates/). Set in the
# environment so that every Settings, and every service process a test starts, sees it.
os.environ.setdefault("OUTSIDE_SESSION", "send")

pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """By default every anyio test runs on both backends; `integration/` and `chaos/` pin
    asyncio in their conftest."""
    return str(request.param)
