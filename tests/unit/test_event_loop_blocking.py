"""The blocking-call detector that guards the actors' and the service's tests (`no_blocking`,
tests/conftest.py; blockbuster, as anyio's own suite uses it) does fail a test: the service's
code reading a file on the event loop raises, while the same read off the loop, or code outside
the service, passes. Without this, a detector that silently stopped detecting would let every
`no_blocking` test pass."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from blockbuster import BlockingError

from trade_executor.config.envfile import read_env_file

pytestmark = [pytest.mark.anyio, pytest.mark.no_blocking]


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "te.env"
    path.write_text("LOG_LEVEL=info\n", encoding="utf-8")
    return path


async def test_the_services_code_reading_a_file_on_the_loop_fails(env_file: Path) -> None:
    with pytest.raises(BlockingError):
        read_env_file(env_file)


async def test_the_same_read_in_a_worker_thread_passes(env_file: Path) -> None:
    assignments = await anyio.to_thread.run_sync(read_env_file, env_file)
    assert "LOG_LEVEL" in assignments


async def test_a_blocking_call_outside_the_service_is_not_its_concern() -> None:
    time.sleep(0)  # noqa: ASYNC251 - the test's own code: only trade_executor is scanned
