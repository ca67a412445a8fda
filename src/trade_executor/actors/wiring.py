"""`build_actors`: the one place where the active instance's actors are created and connected.

The service, the tests and the demo all call it, so none of them can wire the actors differently
(a listener left without notifications, a poller reporting nowhere). The executor's mailbox is
created first and its send side handed to every sender: pollers, listener and the HTTP API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from anyio.abc import TaskGroup

from trade_executor.actors.execution.deadlines import SCAN_INTERVAL, StateBounds
from trade_executor.actors.execution.shared import Clock, utcnow
from trade_executor.actors.executor import Executor, Mailbox, create_mailbox
from trade_executor.actors.following import PollerPool
from trade_executor.actors.listener import ApprovalListener
from trade_executor.actors.supervisor import Supervisor
from trade_executor.broker.protocol import Broker
from trade_executor.config import Settings
from trade_executor.metrics import Metrics
from trade_executor.store.notifications import NotificationSource
from trade_executor.store.protocol import Store


@dataclass(frozen=True, eq=False)
class Actors:
    mailbox: Mailbox
    executor: Executor
    pollers: PollerPool
    listener: ApprovalListener

    async def start(self, tg: TaskGroup, supervisor: Supervisor) -> None:
        """Start each actor under `supervisor`, in the order recovery needs: the pollers (so
        recovered orders can be followed), the executor (recovery), the listener (LISTEN, then
        the first catch-up). Returns once all three have started."""
        await tg.start(supervisor.supervise, "pollers", self.pollers.run)
        await tg.start(supervisor.supervise, "executor", self.executor.run)
        await tg.start(supervisor.supervise, "listener", self.listener.run)


def build_actors(
    settings: Settings,
    store: Store,
    broker: Broker,
    metrics: Metrics,
    notifications: Callable[[], Awaitable[NotificationSource]],
    *,
    poll_broker: Broker | None = None,
    clock: Clock = utcnow,
    order_list: bool | None = None,
    bounds: StateBounds | None = None,
    scan_interval: float = SCAN_INTERVAL,
) -> Actors:
    """The actors of an active instance. `poll_broker` (default `broker`) serves the pollers,
    so thousands of polls never queue the executor's account reads and orders. `order_list`
    False (from `broker.capabilities()`) says the bridge has no `GET /orders`; None lets the
    pollers find out from its first answer. `bounds` and `scan_interval` (default: from
    `settings`, every 5 s) drive the executor's deadline scan."""
    mailbox, inbox = create_mailbox()
    pollers = PollerPool(
        settings,
        store,
        poll_broker or broker,
        metrics,
        mailbox.send_nowait,
        clock=clock,
        report_lost=mailbox.send_nowait,
        order_list=order_list,
    )
    executor = Executor(
        settings,
        store,
        broker,
        metrics,
        inbox,
        pollers.follow,
        clock=clock,
        bounds=bounds,
        scan_interval=scan_interval,
    )
    listener = ApprovalListener(settings, store, notifications, mailbox.send_nowait)
    return Actors(mailbox, executor, pollers, listener)


__all__ = ["Actors", "build_actors"]
