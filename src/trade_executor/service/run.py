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
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup

from trade_executor import __version__
from trade_executor.actors.backoff import Backoff
from trade_executor.actors.execution.deadlines import SCAN_INTERVAL
from trade_executor.actors.exits.flatten import instance_rules_from
from trade_executor.actors.exits.reprotect import SessionHours
from trade_executor.actors.reconciler import CONFIRM_DELAY
from trade_executor.actors.supervisor import Supervisor, describe
from trade_executor.broker.capabilities import BridgeCapabilities
from trade_executor.broker.client import BrokerClient
from trade_executor.clock import Clock, utcnow
from trade_executor.config.session_calendar import trading_session
from trade_executor.config.sources import EX_CONFIG, Settings
from trade_executor.domain.mode import MODE_BANNERS, AccountKind, operating_mode
from trade_executor.domain.riskbook import RiskBook
from trade_executor.observability.logging import clear_repeated, get_logger, log_repeated
from trade_executor.observability.metrics import Metrics
from trade_executor.service.bridge_watch import CHECK_INTERVAL as BRIDGE_CHECK_INTERVAL
from trade_executor.service.bridge_watch import BridgeWatch
from trade_executor.service.effective_limits import effective_limits
from trade_executor.service.gateway import ServiceGateway
from trade_executor.service.gauges import GaugeKeeper, GaugeReading
from trade_executor.service.startup import check_capabilities, migrate_translated, refusal_in
from trade_executor.service.systemd import (
    Role,
    ServiceStatus,
    SystemdNotifier,
    status_line,
    watchdog_interval,
)
from trade_executor.service.wiring import Actors, build_actors
from trade_executor.store.errors import StoreError, StoreUnavailable
from trade_executor.store.failures import explain
from trade_executor.store.identity import application_name, instance_id
from trade_executor.store.leadership import LeadershipLost, PgLeaderLock
from trade_executor.store.notifications import connect_notifications
from trade_executor.store.operator import read_control
from trade_executor.store.postgres import PgStore, create_pool
from trade_executor.store.server import DatabaseServer, database_server, durability

log = get_logger("trade_executor.service")

STARTUP_DATABASE_DEADLINE = 60.0
# The order client's pool is sized for what the pacer can have in flight: the real bridge holds a
# bracket's connection 0.7 s, and 5.7 s for a symbol it sees the first time, so a paced burst
# keeps well over 50 POSTs open, and the account reads a decision needs would queue behind them
# (measured: bench/ANALYSIS.md, target 5: 1.40x -> 1.07x of the pacing limit's time with 200).
ORDER_CLIENT_CONNECTIONS = 200
# Seconds between refreshes of the state gauges (halted, needing an operator, today's risk).
GAUGE_INTERVAL = 5.0
# Signals that stop the service cleanly (CONTRACT section 10): never a silent death.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# The leader's heartbeat (and silent-network check) runs at most this far apart.
LEADER_HEARTBEAT_INTERVAL = 2.0
T = TypeVar("T")


# Tries of the durability check (a pooled connection may have died with the old primary).
DURABILITY_CHECK_ATTEMPTS = 3


class Service:
    """The supervisor of one instance. Its `role` is starting, standby, active or stopping."""

    def __init__(
        self,
        settings: Settings,
        *,
        notifier: SystemdNotifier | None = None,
        with_api: bool = True,
        clock: Clock = utcnow,
        gauge_interval: float = GAUGE_INTERVAL,
        database_deadline: float = STARTUP_DATABASE_DEADLINE,
        bridge_check_interval: float = BRIDGE_CHECK_INTERVAL,
        scan_interval: float = SCAN_INTERVAL,
        session: SessionHours | None = None,
        confirm_delay: float = CONFIRM_DELAY,
    ) -> None:
        self.settings = settings
        # The actors' intervals (tests shorten them): the deadline scan, a break's confirmation.
        self._scan_interval = scan_interval
        self._confirm_delay = confirm_delay
        self._database_deadline = database_deadline
        self.notifier = notifier or SystemdNotifier.from_env()
        self.role = "starting"
        self.supervisor = Supervisor()
        self.metrics = Metrics(settings)  # the limits are exported from the start
        # Set when `run` ended on an error an operator can act on: one sentence (`failures`).
        self.failure: str | None = None
        self.account: AccountKind | None = None  # what the bridge said at start: paper or live
        self._clock = clock
        self._session = session  # None: TRADING_SESSION's calendar (tests inject a table)
        self._gauge_interval = gauge_interval
        self._reading: GaugeReading | None = None
        self._status_sent: str | None = None
        self._leader: str | None = None  # the active instance, as it published itself
        self._database_server: DatabaseServer | None = None  # the server last checked
        self.store: PgStore | None = None
        self.broker: BrokerClient | None = None
        self.actors: Actors | None = None
        self.http_port: int | None = None
        # What the bridge said it can do at start (None: it could not be asked then).
        self.capabilities: BridgeCapabilities | None = None
        # Why the service refused to start (exit 78), as one sentence for stderr.
        self.refusal: str | None = None
        self.bridge_watch = BridgeWatch(
            settings.ib_bridge_url,
            self.metrics,
            interval=bridge_check_interval,
            on_mode=self._account_mode_seen,
        )
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
            refused = refusal_in(error)
            if refused is not None:
                self.refusal = str(refused)
                log.critical("supervisor.refused", error=self.refusal)
                self.notifier.notify("STATUS=refused: " + self.refusal[:200])
                return EX_CONFIG
            settings = self.settings
            sentence = explain(
                error,
                dsn=settings.dsn() if settings.database_url is not None else None,
                http=(settings.http_host, settings.http_port),
            )
            if sentence is not None:  # a known cause: the sentence says it all
                log.critical("supervisor.failed", error=sentence)
            else:
                log.critical("supervisor.failed", error=describe(error), exc_info=error)
            self.failure = sentence or describe(error)
            self.notifier.notify("STATUS=failed: " + self.failure[:200])
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
        self.metrics.set_role(None)
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
        self._log_configuration()
        self.broker = BrokerClient(
            settings.ib_bridge_url,
            settings.ib_bridge_timeout,
            on_request=self.metrics.observe_bridge,
            max_connections=ORDER_CLIENT_CONNECTIONS,
        )
        # Before touching the database: a bridge that cannot serve this configuration refuses
        # the start (exit 78) whatever the database's state.
        self.capabilities = await check_capabilities(self.broker, settings)
        await self._with_database_retry("migrate", lambda: migrate_translated(dsn))
        pool = await self._with_database_retry(
            "connect", lambda: create_pool(dsn, application_name=application_name())
        )
        self.store = PgStore(pool)
        server = await self._with_database_retry("connect", lambda: database_server(pool))
        log.info(
            "supervisor.database",
            database=str(server),
            hosts=settings.database_url_parsed().hosts_text(),
        )
        self._database_server = server
        await self._check_durability()
        # The pollers get a client of their own, as small as their concurrency: thousands of
        # polls never queue the executor's account reads and orders, and httpcore's per-request
        # pool scan stays short.
        self._poll_broker = BrokerClient(
            settings.ib_bridge_url,
            settings.ib_bridge_timeout,
            on_request=self.metrics.observe_bridge,
            max_connections=settings.order_poll_concurrency,
        )
        await self._announce_mode()
        async with anyio.create_task_group() as tg:
            if self._with_api:
                from trade_executor.api.server import serve_api

                self.http_port = await tg.start(serve_api, settings, ServiceGateway(self))
            tg.start_soon(self._pet_watchdog)
            tg.start_soon(self._keep_gauges)
            tg.start_soon(self.bridge_watch.run)
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
                self.metrics.set_role("standby")
                self._send_status()
                await anyio.sleep(2 * settings.standby_retry_interval)

    async def _lead(self, lock: PgLeaderLock) -> None:
        """Run the actors while this instance holds the leader lock; return when it is lost
        (the actors are then cancelled, even while they are still starting)."""
        settings = self.settings
        async with anyio.create_task_group() as active:
            active.start_soon(self._hold_leadership, lock, active.cancel_scope)
            assert self.store is not None and self.broker is not None
            dsn = settings.dsn()
            # The exits' trading session: exchange-calendars and pandas take seconds to import
            # and build it, in a worker thread rather than on the event loop (it is cached).
            await anyio.to_thread.run_sync(
                trading_session, settings.trading_session, settings.trading_day_timezone
            )
            self.actors = build_actors(
                settings,
                self.store,
                self.broker,
                self.metrics,
                lambda: connect_notifications(dsn),
                poll_broker=self._poll_broker,
                clock=self._clock,
                order_list=self.capabilities.order_list if self.capabilities else None,
                scan_interval=self._scan_interval,
                instance_rules=(
                    instance_rules_from(self.store.instance_flatten_times)
                    if settings.instance_guardrails != "off"
                    else None
                ),
                session=self._session,
                confirm_delay=self._confirm_delay,
                **self._daily_summary(),
            )
            await self.actors.start(active, self.supervisor)
            self.role = "active"
            self.metrics.set_role("active")
            if not self._announced_ready:
                self.notifier.ready(self._status_text())
                self._announced_ready = True
            else:
                self._send_status()
            log.info(
                "supervisor.ready",
                role="active",
                version=__version__,
                execution_enabled=settings.execution_enabled,
                epoch=lock.epoch,
            )
            await anyio.sleep_forever()

    def _daily_summary(self) -> dict[str, Any]:
        """The notifier's daily summary at the session close, built from the report."""
        if not self.settings.notify_target_urls() or self.store is None:
            return {}
        from trade_executor.notify.summary import daily_summary, next_session_close

        store, settings = PgStore(self.store.pool), self.settings  # an unfenced reader
        return {
            "summary": lambda day: daily_summary(store, settings, day),
            "next_close": lambda now: next_session_close(settings, now),
        }

    async def _with_database_retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """The database may still be starting (boot order): retry for a while."""
        backoff = Backoff(base=0.5, cap=5.0)
        last: StoreUnavailable | None = None
        with anyio.move_on_after(self._database_deadline):
            while True:
                try:
                    return await call()
                except StoreUnavailable as error:  # e.g. PostgreSQL answering "starting up"
                    last = error
                    log.warning("supervisor.database_unavailable", step=what, error=str(error))
                    await anyio.sleep(backoff.next())
        # Out of time: one sentence (failures.explain) naming the database and the last error,
        # never a bare TimeoutError with a traceback.
        why = f": {last}" if last is not None else ""
        raise StoreUnavailable(
            f"no answer within {self._database_deadline:g} s, step {what}{why}"
        ) from last

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
                self.metrics.set_role("standby")
                if not self._announced_ready:
                    self.notifier.ready(self._status_text())
                    self._announced_ready = True
                else:
                    self._send_status()
                log.info("supervisor.standby")
                announced = True
            await anyio.sleep(self.settings.standby_retry_interval)
        assert self.store is not None and lock.epoch is not None
        # From here on a claim or intent of this instance commits only while its epoch leads.
        self.store.fence(lock.epoch, on_fenced=lambda error: lock.lose(str(error)))
        server = str(lock.server) if lock.server is not None else None
        if lock.server is not None and lock.server != self._database_server:
            # Another server than at start: a promotion. Its settings may differ.
            self._database_server = lock.server
            await self._check_durability()
        if announced:
            log.warning(
                "supervisor.took_over", epoch=lock.epoch, leader_id=lock.leader_id, database=server
            )
        log.info(
            "supervisor.leader_epoch", epoch=lock.epoch, leader_id=lock.leader_id, database=server
        )

    async def _check_durability(self) -> None:
        """Warn (a log line, the `database_commit_durable` gauge) when the server's settings
        cannot make a commit survive a standby's promotion (docs/RELIABILITY.md)."""
        assert self.store is not None
        for attempt in range(DURABILITY_CHECK_ATTEMPTS):
            try:
                found = await durability(self.store.pool)
                break
            except StoreUnavailable as error:  # after a promotion: a pooled connection died
                if attempt + 1 == DURABILITY_CHECK_ATTEMPTS:  # checked again next leadership
                    self.metrics.set_commit_durable(False)
                    log.warning("supervisor.durability_unknown", error=str(error))
                    return
        problem = found.problem()
        self.metrics.set_commit_durable(problem is None)
        if problem is not None:
            log.warning("supervisor.durability_at_risk", reason=problem)

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

    # -- what the service tells about itself: start-up lines, gauges, STATUS= --------------------

    def _log_configuration(self) -> None:
        """The effective configuration, secrets redacted, as the first line of a start."""
        settings = self.settings
        log.info(
            "supervisor.starting",
            version=__version__,
            instance=instance_id(),
            config=settings.redacted(),
            limits_off=list(settings.limits_off()),
        )
        # The same sentences check-config prints, at warning: `journalctl -p warning` shows them.
        for warning in settings.warnings():
            log.warning("supervisor.config_warning", warning=warning)

    async def _announce_mode(self) -> None:
        """LIVE, PAPER or DRY RUN, prominently: a line of its own (warning for a live account,
        so `journalctl -p warning` shows it). The account type is what the bridge's /health
        says; a bridge that does not answer yet leaves it unknown (said so, never assumed)."""
        settings = self.settings
        if settings.execution_enabled and self.broker is not None:
            with anyio.move_on_after(min(3.0, settings.ib_bridge_timeout)):
                try:
                    health = await self.broker.health()
                except Exception:  # any failure only leaves the account unknown
                    health = None
                if health is not None and health.paper_trading is not None:
                    self.account = "paper" if health.paper_trading else "live"
        self._log_mode()

    @property
    def live_trading_refused(self) -> bool:
        """The bridge's account is live and ALLOW_LIVE_TRADING is false: every approval is
        rejected, whatever else the service says of itself."""
        settings = self.settings
        return (
            settings.execution_enabled
            and self.account == "live"
            and not settings.allow_live_trading
        )

    def _log_mode(self) -> None:
        settings = self.settings
        mode = operating_mode(settings.execution_enabled, self.account, settings.allow_live_trading)
        self.metrics.set_live_trading_refused(self.live_trading_refused)
        level = "warning" if mode.startswith("LIVE") and mode != "LIVE?" else "info"
        getattr(log, level)(
            "supervisor.mode",
            mode=mode,
            banner=MODE_BANNERS[mode],
            execution_enabled=settings.execution_enabled,
            account=self.account,
            allow_live_trading=settings.allow_live_trading,
        )

    def _account_mode_seen(self, paper_trading: bool | None) -> None:
        """The bridge watcher read the account's mode (at every change): the mode line, the
        gauge, STATUS= and the executor follow within one watch interval."""
        account: AccountKind | None = (
            None if paper_trading is None else "paper" if paper_trading else "live"
        )
        if self.actors is not None:
            self.actors.executor.note_account_mode(paper_trading)
        if account is None or account == self.account:
            return
        self.account = account
        self._log_mode()
        self._send_status()

    async def _keep_gauges(self) -> None:
        """Restore the state gauges at once, then keep them (and STATUS=) current; a day that
        turns resets today's risk at the next refresh."""
        assert self.store is not None
        keeper = GaugeKeeper(
            self.settings, self.store, self.metrics, self._clock, self._live_riskbook
        )
        while True:
            try:
                self._reading = await keeper.refresh()
                if self.role == "standby":  # STATUS= names the active instance, when published
                    self._leader = (await read_control(self.store.pool)).leader_id
                clear_repeated("gauges", "supervisor.gauges_restored")
            except StoreError as error:
                log_repeated("gauges", "supervisor.gauges_failed", error=str(error))
            self._send_status()
            await anyio.sleep(self._gauge_interval)

    def _live_riskbook(self) -> RiskBook | None:
        actors = self.actors
        if self.role != "active" or actors is None:
            return None
        return actors.executor.riskbook

    def _status_text(self) -> str:
        reading = self._reading
        control = reading.control if reading is not None else None
        actors = self.actors
        # The switch as last read from the database (the executor applies the same within a
        # second): reason and who always come with it, never a halt without its reason.
        if control is not None:
            halted = control.halted
        else:
            halted = self.role == "active" and actors is not None and actors.executor.halted
        role: Role = "starting"
        if self.role == "active":
            role = "active"
        elif self.role == "standby":
            role = "standby"
        return status_line(
            ServiceStatus(
                role=role,
                execution_enabled=self.settings.execution_enabled,
                account=self.account,
                allow_live_trading=self.settings.allow_live_trading,
                halted=halted,
                halt_reason=control.reason if control is not None and halted else None,
                halted_by=control.changed_by if control is not None and halted else None,
                leader=self._leader if role == "standby" else None,
            )
        )

    def _send_status(self) -> None:
        """STATUS= when what it says changed (role, halt, mode); systemd shows the last one."""
        if self.role not in ("active", "standby"):
            return
        text = self._status_text()
        if text != self._status_sent:
            self._status_sent = text
            self.notifier.status(text)

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
