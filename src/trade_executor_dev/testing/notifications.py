"""An in-memory LISTEN/NOTIFY hub: the stand-in of PostgreSQL's notifications for tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from trade_executor.store.notifications import Notification, NotificationSource


class MemoryNotificationSource:
    """One live "LISTEN session" of a `MemoryNotifications` hub (a `NotificationSource`)."""

    def __init__(self, hub: MemoryNotifications, buffer: int) -> None:
        self._hub = hub
        send, receive = anyio.create_memory_object_stream[Notification](buffer)
        self._send: MemoryObjectSendStream[Notification] = send
        self.notifications: MemoryObjectReceiveStream[Notification] = receive
        self.closed = anyio.Event()
        self.overflowed = False
        self.hung = False  # a network that died without a FIN: ping never answers

    @property
    def live(self) -> bool:
        return not self.closed.is_set() and not self.hung

    def deliver(self, notification: Notification) -> None:
        if not self.live:
            return
        try:
            self._send.send_nowait(notification)
        except anyio.WouldBlock:
            self.overflowed = True
            self._hub.dropped += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def ping(self, timeout: float) -> None:
        with anyio.fail_after(timeout):
            await anyio.lowlevel.checkpoint()
            if self.closed.is_set():
                raise ConnectionError("the connection is closed")
            if self.hung:
                await anyio.sleep_forever()

    async def aclose(self) -> None:
        self.closed.set()
        self._send.close()
        self._hub._forget(self)
        await anyio.lowlevel.checkpoint()


class MemoryNotifications:
    """A LISTEN/NOTIFY hub: `connect()` opens a session; `notify()` reaches the live ones.

    `drop_all()` is a server-side close (`pg_terminate_backend`): `closed` is set and later
    notifications are lost for those sessions. `hang_all()` is a network that died silently:
    nothing arrives and `ping` never answers. While `refuse_connections` is set, `connect()`
    raises `ConnectionRefusedError`.
    """

    def __init__(self, *, buffer: int = 10_000) -> None:
        self._buffer = buffer
        self._sources: list[MemoryNotificationSource] = []
        self.connects = 0
        self.refuse_connections = False
        self.sent: list[Notification] = []
        self.dropped = 0  # notifications lost to a full buffer (the source is `overflowed`)

    async def connect(self) -> NotificationSource:
        await anyio.lowlevel.checkpoint()
        if self.refuse_connections:
            raise ConnectionRefusedError("the memory hub refuses connections")
        source = MemoryNotificationSource(self, self._buffer)
        self._sources.append(source)
        self.connects += 1
        return source

    @property
    def live(self) -> int:
        """How many sessions would receive a notification now."""
        return sum(1 for source in self._sources if source.live)

    def notify(self, channel: str, payload: str) -> None:
        """`pg_notify(channel, payload)`: delivered to every live session, at once."""
        notification = Notification(channel, payload)
        self.sent.append(notification)
        for source in list(self._sources):
            source.deliver(notification)

    def drop_all(self) -> None:
        for source in self._sources:
            source.closed.set()
        self._sources.clear()

    def hang_all(self) -> None:
        for source in self._sources:
            source.hung = True
        self._sources.clear()

    def _forget(self, source: MemoryNotificationSource) -> None:
        if source in self._sources:
            self._sources.remove(source)


if TYPE_CHECKING:  # it implements the protocol: mypy checks it here

    def _is_a_source(source: MemoryNotificationSource) -> NotificationSource:
        return source
