"""Test scaffolding shipped beside the service, as `procrastinate.testing` is: an in-memory store
and LISTEN/NOTIFY hub for running the actors on both anyio backends (`memory_store`,
`notifications`), and the crash points of the chaos suite (`faults`).

The production path imports only `faults.fault_point`, which is inert unless the environment
names a crash point; the names below are loaded lazily so that import costs nothing more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trade_executor_dev.testing.memory_store import MemoryEvent, MemoryStore
    from trade_executor_dev.testing.notifications import (
        MemoryNotifications,
        MemoryNotificationSource,
    )

__all__ = ["MemoryEvent", "MemoryNotificationSource", "MemoryNotifications", "MemoryStore"]


def __getattr__(name: str) -> Any:
    if name in ("MemoryEvent", "MemoryStore"):
        from trade_executor_dev.testing import memory_store

        return getattr(memory_store, name)
    if name in ("MemoryNotifications", "MemoryNotificationSource"):
        from trade_executor_dev.testing import notifications

        return getattr(notifications, name)
    raise AttributeError(name)
