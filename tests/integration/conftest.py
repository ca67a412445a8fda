"""Integration tests touch asyncpg (directly, or through the real service): asyncio only."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"
