"""The actor tests touch asyncpg (through the real service), so they run on asyncio only, except
the modules that override `anyio_backend` again (MemoryStore, no asyncpg)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"
