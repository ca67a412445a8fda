"""`build_actors`: the one place where the active instance's actors are created and connected.

The service, the tests and the demo all call it, so none of them can wire the actors differently
(a listener left without notifications, a poller reporting nowhere). The executor's mailbox is
created first and its send side handed to every sender: pollers, listener, reconciler and the
HTTP API. Every broker handed to an actor is put behind one shared `Pacer`
(BRIDGE_MAX_MESSAGES_PER_SECOND), so the executor's orders and the pollers' cancels share one
limit and no sender can bypass it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from anyio.abc import TaskGroup

from trade_executor.actors.account_snapshot import AccountSnapshot, NotingBroker, noting
from trade_executor.actors.execution.deadlines import SCAN_INTERVAL, StateBounds
from trade_executor.actors.executor import Executor, Mailbox, create_mailbox
from trade_executor.actors.exits import ExitFollower, InstanceRules
from trade_executor.actors.exits.reprotect import SessionHours
from trade_executor.actors.following import PollerPool
from trade_executor.actors.listener import ApprovalListener
from trade_executor.actors.messages import CloseRequested, ExecutionChanged, Message
from trade_executor.actors.reconciler import CONFIRM_DELAY, Reconciler
from trade_executor.actors.supervisor import Supervisor
from trade_executor.broker.pacing import Pacer, paced
from trade_executor.broker.protocol import Broker
from trade_executor.clock import Clock, utcnow
from trade_executor.config.sources import Settings
from trade_executor.notify.actor import NextClose, Notifier, Summary
from trade_executor.observability.metrics import Metrics
from trade_executor.store.notifications import NotificationSource
from trade_executor.store.protocol import Store


@dataclass(frozen=True, eq=False)
class Actors:
    mailbox: Mailbox
    executor: Executor
    pollers: PollerPool
    listener: ApprovalListener
    reconciler: Reconciler
    pacer: Pacer
    exits: ExitFollower
    account: AccountSnapshot
    notifier: Notifier | None = None

    async def start(self, tg: TaskGroup, supervisor: Supervisor) -> None:
        """Start each actor under `supervisor`, in the order recovery needs: the pollers (so
        recovered orders can be followed), the executor (recovery), the exits (open positions,
        after the executor so their realized P&L reaches a recovered RiskBook), the listener
        (LISTEN, then the first catch-up), then the reconciler (its first pass compares what
        recovery left with the broker). Returns once all five have started. The notifier
        (NOTIFY_URLS set) starts first, so what recovery finds is told too."""
        if self.notifier is not None:
            await tg.start(supervisor.supervise, "notifier", self.notifier.run)
        # Its first read starts now and overlaps recovery (the first decision needs it).
        await tg.start(supervisor.supervise, "account_snapshot", self.account.run)
        await tg.start(supervisor.supervise, "pollers", self.pollers.run)
        await tg.start(supervisor.supervise, "executor", self.executor.run)
        await tg.start(supervisor.supervise, "exits", self.exits.run)
        await tg.start(supervisor.supervise, "listener", self.listener.run)
        await tg.start(supervisor.supervise, "reconciler", self.reconciler.run)


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
    pacer: Pacer | None = None,
    instance_rules: InstanceRules | None = None,
    bounds: StateBounds | None = None,
    scan_interval: float = SCAN_INTERVAL,
    confirm_delay: float = CONFIRM_DELAY,
    summary: Summary | None = None,
    next_close: NextClose | None = None,
    session: SessionHours | None = None,
) -> Actors:
    """The actors of an active instance. `poll_broker` (default `broker`) serves the pollers
    and the reconciler, so thousands of polls never queue the executor's account reads and
    orders. `order_list` False (from `broker.capabilities()`) says the bridge has no
    `GET /orders`; None lets the pollers find out from its first answer. `pacer` (default: a
    new one at BRIDGE_MAX_MESSAGES_PER_SECOND) paces the order messages of both brokers
    together; the exits place their orders (closes, protection) through the same paced
    broker as the executor. `instance_rules` gives the strategy instances' flatten times
    (None: only FLATTEN_AT). `bounds` and `scan_interval` (default: from `settings`, every
    5 s) drive the executor's deadline scan; `confirm_delay` (default 2 s, at most half a
    reconcile pass) is the reconciler's wait before the second read that confirms a break.
    With NOTIFY_URLS set a `Notifier` is wired too; `summary` and `next_close` give it the
    daily summary (the service builds them from the report). `session` (default:
    TRADING_SESSION's calendar) says when the market is open, for REPROTECT_AT_OPEN (tests
    inject their own table)."""
    mailbox, inbox = create_mailbox()
    pacer = pacer or Pacer(
        settings.bridge_max_messages_per_second, on_wait=metrics.observe_pacing_wait
    )
    # The account snapshot decisions use (actors/account_snapshot.py): read through the order
    # client, refreshed at once after every order, close or protection sent through it (noted
    # under the pacer, so the halt wall still sees each order leave the pacing queue) and every
    # fill or exit reported to the executor.
    account = AccountSnapshot(broker, settings.account_snapshot_max_age)
    orders_broker = paced(NotingBroker(broker, account), pacer)
    reads_broker = paced(poll_broker, pacer) if poll_broker is not None else orders_broker
    to_executor = noting(account, mailbox.send_nowait)
    exits = ExitFollower(
        settings,
        store,
        orders_broker,
        metrics,
        to_executor,
        clock=clock,
        instance_rules=instance_rules,
        session=session,
    )

    def from_listener(message: Message) -> None:
        # A `close` from another shell is the exits' work; an operator's change concerns both.
        if isinstance(message, CloseRequested | ExecutionChanged):
            exits.on_message(message)
        if not isinstance(message, CloseRequested):
            mailbox.send_nowait(message)

    pollers = PollerPool(
        settings,
        store,
        reads_broker,
        metrics,
        to_executor,
        clock=clock,
        report_lost=to_executor,
        order_list=order_list,
        on_children=exits.on_children,
        on_position=exits.on_position,
        resume_at_start=False,  # the executor's recovery follows every working execution
    )
    executor = Executor(
        settings,
        store,
        orders_broker,
        metrics,
        inbox,
        pollers.follow,
        clock=clock,
        bounds=bounds,
        scan_interval=scan_interval,
        account=account,
    )
    listener = ApprovalListener(settings, store, notifications, from_listener)
    reconciler = Reconciler(
        settings,
        store,
        reads_broker,
        metrics,
        to_executor,
        clock=clock,
        # A break is confirmed by a second read a little later, never longer than half a pass.
        confirm_delay=min(confirm_delay, settings.reconcile_interval / 2),
        # A position settled from the broker: the exits re-read it (and stop following it).
        on_settled=lambda settled: exits.on_message(ExecutionChanged(settled.id)),
    )
    notifier = (
        Notifier(settings, metrics, summary=summary, next_close=next_close, clock=clock)
        if settings.notify_target_urls()
        else None
    )
    return Actors(mailbox, executor, pollers, listener, reconciler, pacer, exits, account, notifier)


__all__ = ["Actors", "build_actors"]
