"""A dedicated LISTEN connection (a pooled one would run `UNLISTEN *` when released).

asyncpg delivers notifications through synchronous callbacks; they are pushed, unparsed, into a
memory stream that the listener actor reads, so nothing is done on asyncpg's callback path.
A server-side close fires the termination callback (`closed` is set); a silently dead network
is only detected by `ping()` under a timeout, which the listener runs periodically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
import asyncpg
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from trade_executor.store.queries.operator import PING

APPROVALS_CHANNEL = "trade_approvals"
CONTROL_CHANNEL = "trade_executor_control"
# The running service's acknowledgement of a kill-switch change (`halt --wait` listens to it).
CONTROL_ACK_CHANNEL = "trade_executor_control_ack"


@dataclass(frozen=True, slots=True)
class Notification:
    channel: str
    payload: str


class NotificationSource(Protocol):
    """One live LISTEN session; make a new one to reconnect."""

    notifications: MemoryObjectReceiveStream[Notification]
    closed: anyio.Event
    overflowed: bool  # a notification was dropped: the listener must sweep

    async def ping(self, timeout: float) -> None: ...

    async def aclose(self) -> None: ...


class PgNotificationSource:
    def __init__(self, conn: asyncpg.Connection, buffer: int) -> None:
        self._conn = conn
        send, receive = anyio.create_memory_object_stream[Notification](buffer)
        self._send: MemoryObjectSendStream[Notification] = send
        self.notifications = receive
        self.closed = anyio.Event()
        self.overflowed = False

    @classmethod
    async def connect(
        cls, dsn: str, channels: Sequence[str], *, timeout: float = 10, buffer: int = 100_000
    ) -> PgNotificationSource:
        conn = await asyncpg.connect(
            dsn, timeout=timeout, server_settings={"application_name": "trade-executor listener"}
        )
        source = cls(conn, buffer)
        conn.add_termination_listener(source._on_terminated)
        for channel in channels:
            await conn.add_listener(channel, source._on_notification)
        return source

    def _on_notification(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        try:
            self._send.send_nowait(Notification(channel, str(payload)))
        except anyio.WouldBlock:
            self.overflowed = True
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    def _on_terminated(self, _conn: object) -> None:
        self.closed.set()

    async def ping(self, timeout: float) -> None:
        with anyio.fail_after(timeout):
            await self._conn.fetchval(PING)

    async def aclose(self) -> None:
        self.closed.set()
        self._send.close()
        try:
            with anyio.move_on_after(2):
                await self._conn.close()
        finally:
            if not self._conn.is_closed():
                self._conn.terminate()


async def connect_notifications(dsn: str) -> NotificationSource:
    return await PgNotificationSource.connect(dsn, [APPROVALS_CHANNEL, CONTROL_CHANNEL])
