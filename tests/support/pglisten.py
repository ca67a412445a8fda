"""Listening to one PostgreSQL channel in a test: the payloads that arrived before a sentinel
(notifications arrive in commit order, so no clock is involved)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg


class Listener:
    """Collects the payloads of one channel; `until_sentinel()` returns those before a sentinel."""

    def __init__(self, conn: asyncpg.Connection, channel: str) -> None:
        self.conn = conn
        self.channel = channel
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.queue.put_nowait(str(payload))

    async def start(self) -> None:
        await self.conn.add_listener(self.channel, self._on_notify)

    async def until_sentinel(self, writer: asyncpg.Connection) -> list[str]:
        sentinel = f"sentinel-{uuid.uuid4()}"
        await writer.execute("SELECT pg_notify($1, $2)", self.channel, sentinel)
        received: list[str] = []
        while True:
            # The timeout only guards against a hang; it asserts nothing about speed.
            payload = await asyncio.wait_for(self.queue.get(), timeout=30)
            if payload == sentinel:
                return received
            received.append(payload)
