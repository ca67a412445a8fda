"""The suite's layout: `unit/` (pure, or in-memory and in-loop), `integration/` (PostgreSQL, real
processes), `chaos/` (faults, crashes, bad input, load). Fixtures live in `tests.support.fixtures`,
helpers in `tests.support`; tests import from those, never from a conftest.

anyio tests run on asyncio (production's loop; asyncpg runs on nothing else). A test, class or
module marked `both_backends` runs on trio as well: the core's tests, whose code must run
unchanged on trio (docs/ARCHITECTURE.md, "anyio everywhere in the core")."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# The suite runs at any hour: entries are sent outside the trading session unless a test asks
# for the session (tests/unit/domain/test_session.py, tests/integration/gates/). Set in the
# environment so that every Settings, and every service process a test starts, sees it.
os.environ.setdefault("OUTSIDE_SESSION", "send")
# And the session is a fixed weekday window, not the XNYS calendar: building a calendar imports
# exchange-calendars and pandas, ~0.9 s of CPU in every service process a test starts (the chaos
# suite starts about a hundred). Tests of the calendars name theirs (TRADING_SESSION="XNYS").
os.environ.setdefault("TRADING_SESSION", "09:30-16:00")

pytest_plugins = ["tests.support.fixtures"]

BOTH_BACKENDS = ("asyncio", "trio")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "both_backends: run this anyio test on trio as well as asyncio (the core's tests)",
    )
    config.addinivalue_line(
        "markers",
        "no_blocking: the test fails if the service's code blocks the event loop (blockbuster)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """The body of a test marked `no_blocking` runs under `no_blocking_calls` (its fixtures'
    set-up and teardown do not: they create databases and bridges the blocking way)."""
    if item.get_closest_marker("no_blocking") is None:
        return (yield)
    # Imported here: tests.support.fixtures is a plugin (`pytest_plugins`), its asserts rewritten.
    from tests.support.fixtures import no_blocking_calls

    with no_blocking_calls():
        return (yield)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "anyio_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_backends"
    ):
        metafunc.parametrize("anyio_backend", BOTH_BACKENDS, scope="module")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """asyncio, unless the test is marked `both_backends` (`pytest_generate_tests` above)."""
    return "asyncio"
