"""`trade-executor run`: the wiring of the supervisor and its actors.

Start-up order (READY=1 only at the end): schema migrated, database pool, HTTP API, leader lock
(or standby), then the pollers, the executor (which recovers from the ledger) and the listener
(LISTEN and the first catch-up). SIGTERM/SIGINT/SIGHUP: STOPPING=1, the listener stops,
submissions in flight get SHUTDOWN_GRACE seconds to end, then everything is cancelled and the
process exits 0.

Leadership (CONTRACT section 5, "Fencing", "Two instances"): each takeover takes the advisory
lock and a new epoch (`store.leadership`), and fences the store with it, so a deposed leader's
claims and intent writes change nothing. A lost lock (its connection closed, a failed
heartbeat, a fenced write) cancels the actors at once; the instance then pauses for a couple of
standby intervals, so a live standby takes over first, and stands by itself.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

import anyio
from anyio.abc import TaskGroup

from trade_executor import __version__
from trade_executor.actors.backoff import Backoff
from trade_executor.actors.execution.shared import OutcomeBoard
from trade_executor.actors.messages import ApprovalSeen
from trade_executor.actors.supervisor import Supervisor, describe
from trade_executor.actors.wiring import Actors, build_actors
from trade_executor.api.gateway import HealthFacts
from trade_executor.broker.client import BrokerClient
from trade_executor.config import Settings
from trade_executor.effective_limits import effective_limits
from trade_executor.logging import get_logger
from trade_executor.metrics import Metrics
from trade_executor.store.errors import StoreUnavailable
from trade_executor.store.leadership import LeadershipLost, PgLeaderLock
from trade_executor.store.migrate import migrate
from trade_executor.store.notifications import connect_notifications
from trade_executor.store.pgerrors import translated
from trade_executor.store.postgres import PgStore, create_pool
from trade_executor.store.protocol import Store
from trade_executor.systemd import SystemdNotifier, watchdog_interval

log = get_logger("trade_executor.service")

STARTUP_DATABASE_DEADLINE = 60.0
# Signals that stop the service cleanly (CONTRACT section 10): never a silent death.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# The leader's heartbeat (and silent-network check) runs at most this far apart.
LEADER_HEARTBEAT_INTERVAL = 2.0
T = TypeVar("T")


class Service:
    """The supervisor of one instance. Its `role` is starting, standby, active or stopping."""

    def __init__(
        self,
        settings: Settings,
        *,
        notifier: SystemdNotifier | None = None,
        with_api: bool = True,
    ) -> None:
        self.settings = settings
        self.notifier = notifier or SystemdNotifier.from_env()
        self.role = "starting"
        self.supervisor = Supervisor()
        self.metrics = Metrics()
        self.store: PgStore | None = None
        self.broker: BrokerClient | None = None
        self.actors: Actors | None = None
        self.http_port: int | None = None
        self._poll_broker: BrokerClient | None = None
        self._with_api = with_api
        self._stop = anyio.Event()
        self._announced_ready = False

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (exit 0) or until a child gives up (exit 1)."""
        try:
            async with anyio.create_task_group() as root:
                root.start_soon(self._watch_signals)
                root.start_soon(self._body)
                await self._stop.wait()
                await self._shutdown(root)
        except Exception as error:
            log.critical("supervisor.failed", error=describe(error), exc_info=error)
            self.notifier.notify("STATUS=failed: " + describe(error)[:200])
            return 1
        log.info("supervisor.stopped")
        return 0

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async for signum in signals:
                log.info("supervisor.signal", signal=signal.Signals(signum).name)
                self.request_stop()
                return

    async def _shutdown(self, root: TaskGroup) -> None:
        self.role = "stopping"
        self.notifier.stopping()
        log.info("supervisor.stopping", grace=self.settings.shutdown_grace)
        with anyio.CancelScope(shield=True):
            if self.actors is not None:
                drained = await self.actors.executor.drain(self.settings.shutdown_grace)
                if not drained:
                    log.warning("supervisor.drain_timeout")
        root.cancel_scope.cancel()

    async def _body(self) -> None:
        try:
            await self._serve()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close()

    async def _serve(self) -> None:
        settings = self.settings
        dsn = settings.dsn()
        await self._with_database_retry("migrate", lambda: _migrate(dsn))
        pool = await self._with_database_retry("connect", lambda: create_pool(dsn))
        self.store = PgStore(pool)
        self.broker = BrokerClient(
            settings.ib_bridge_url,
            settings.ib_bridge_timeout,
            on_request=self.metrics.observe_bridge,
        )
        # The pollers get a client of their own, as small as their concurrency: thousands of
        # polls never queue the executor's account reads and orders, and httpcore's per-request
        # pool scan stays short.
        self._poll_broker = BrokerClient(
            settings.ib_bridge_url,
            settings.ib_bridge_timeout,
            on_request=self.metrics.observe_bridge,
            max_connections=settings.order_poll_concurrency,
        )
        async with anyio.create_task_group() as tg:
            if self._with_api:
                from trade_executor.api.server import serve_api

                self.http_port = await tg.start(serve_api, settings, _ServiceGateway(self))
            tg.start_soon(self._pet_watchdog)
            lock = PgLeaderLock(dsn, limits=effective_limits(settings))
            while True:
                await self._become_leader(lock)
                try:
                    await self._lead(lock)
                finally:
                    with anyio.CancelScope(shield=True):
                        await lock.release()
                # Leadership lost: everything active was cancelled; another instance may be
                # leading now. Stand by; give a live standby the first go at the lock.
                self.role = "standby"
                self.actors = None
                self.notifier.status("standby: leadership lost, waiting for the lock")
                await anyio.sleep(2 * settings.standby_retry_interval)

    async def _lead(self, lock: PgLeaderLock) -> None:
        """Run the actors while this instance holds the leader lock; return when it is lost
        (the actors are then cancelled, even while they are still starting)."""
        settings = self.settings
        async with anyio.create_task_group() as active:
            active.start_soon(self._hold_leadership, lock, active.cancel_scope)
            assert self.store is not None and self.broker is not None
            dsn = settings.dsn()
            self.actors = build_actors(
                settings,
                self.store,
                self.broker,
                self.metrics,
                lambda: connect_notifications(dsn),
                poll_broker=self._poll_broker,
            )
            await self.actors.start(active, self.supervisor)
            self.role = "active"
            if not self._announced_ready:
                self.notifier.ready("active: executing approvals")
                self._announced_ready = True
            else:
                self.notifier.status("active: executing approvals")
            log.info(
                "supervisor.ready",
                role="active",
                version=__version__,
                execution_enabled=settings.execution_enabled,
                epoch=lock.epoch,
            )
            await anyio.sleep_forever()

    async def _with_database_retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """The database may still be starting (boot order): retry for a while."""
        backoff = Backoff(base=0.5, cap=5.0)
        with anyio.fail_after(STARTUP_DATABASE_DEADLINE):
            while True:
                try:
                    return await call()
                except StoreUnavailable as error:  # e.g. PostgreSQL answering "starting up"
                    log.warning("supervisor.database_unavailable", step=what, error=str(error))
                    await anyio.sleep(backoff.next())

    async def _become_leader(self, lock: PgLeaderLock) -> None:
        """Take the leader lock, or wait as a standby until it frees (or the database is back)."""
        announced = False
        while True:
            try:
                if await lock.try_acquire():
                    break
            except StoreUnavailable as error:
                log.warning("supervisor.database_unavailable", step="leader_lock", error=str(error))
            if not announced:
                self.role = "standby"
                if not self._announced_ready:
                    self.notifier.ready("standby: waiting for the leader lock")
                    self._announced_ready = True
                log.info("supervisor.standby")
                announced = True
            await anyio.sleep(self.settings.standby_retry_interval)
        assert self.store is not None and lock.epoch is not None
        # From here on a claim or intent of this instance commits only while its epoch leads.
        self.store.fence(lock.epoch, on_fenced=lambda error: lock.lose(str(error)))
        if announced:
            log.warning("supervisor.took_over", epoch=lock.epoch, leader_id=lock.leader_id)
        log.info("supervisor.leader_epoch", epoch=lock.epoch, leader_id=lock.leader_id)

    async def _hold_leadership(self, lock: PgLeaderLock, active: anyio.CancelScope) -> None:
        """Heartbeat; as soon as the leadership is lost, cancel `active` (the actors): the
        lock's connection closed (noticed within moments), a heartbeat failed or timed out (a
        silent network), or a write was fenced."""
        interval = min(self.settings.standby_retry_interval, LEADER_HEARTBEAT_INTERVAL)
        try:
            await lock.hold(interval, timeout=max(2.0, interval))
        except LeadershipLost as error:
            active.cancel()  # first: nothing more is claimed or sent by this instance
            log.critical("supervisor.leadership_lost", error=str(error), epoch=lock.epoch)

    async def _pet_watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        while True:
            role = self.role
            if role == "standby" or (role == "active" and self.supervisor.healthy()):
                self.notifier.watchdog()
            await anyio.sleep(interval)

    async def _close(self) -> None:
        for client in (self.broker, self._poll_broker):
            if client is not None:
                await client.aclose()
        if self.store is not None:
            with anyio.move_on_after(5):
                await self.store.pool.close()


async def _migrate(dsn: str) -> None:
    with translated():  # the store's own errors, so a server still starting is waited out
        await migrate(dsn)


class _ServiceGateway:
    """The HTTP API's narrow view of the service (`api.gateway.Gateway`)."""

    def __init__(self, service: Service) -> None:
        self._service = service

    @property
    def store(self) -> Store | None:
        return self._service.store

    @property
    def outcomes(self) -> OutcomeBoard | None:
        actors = self._service.actors
        if self._service.role != "active" or actors is None:
            return None
        return actors.executor.outcomes

    def approval_seen(self, approval_id: UUID) -> None:
        actors = self._service.actors
        if actors is not None:
            actors.mailbox.send_nowait(ApprovalSeen(approval_id, "api", anyio.current_time()))

    def facts(self) -> HealthFacts:
        service, actors = self._service, self._service.actors
        return HealthFacts(
            role=service.role,
            listener_connected=actors is not None and actors.listener.health.connected,
            halted=actors.executor.halted if actors is not None else None,
            children={name: child.state for name, child in service.supervisor.children.items()},
            open_pollers=actors.pollers.active if actors is not None else 0,
        )

    async def check_bridge(self) -> None:
        broker = self._service.broker
        if broker is None:
            raise ConnectionError("the bridge client is not set up yet")
        health = await broker.health()
        if not health.connected:  # orders would fail
            raise ConnectionError("the bridge is not connected to IB")

    def render_metrics(self) -> bytes:
        return self._service.metrics.render()
