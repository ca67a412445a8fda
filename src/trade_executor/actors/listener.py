"""The approval listener: hears approvals at once, and never misses one.

Two approval sources share the `trade_approvals` channel (CONTRACT section 4): a
`trade_approvals` row (`{"approval_id", "signal_id"}`) and a status approval from the original's
UI (`{"signal_id", "source": "signal_status"}`); APPROVAL_SOURCES selects which are honoured, in
notifications and sweeps alike. Both may name one signal: the executor's claim (unique
`signal_id`) makes that one execution.

LISTEN first, then catch up from the tables, then sweep every SWEEP_INTERVAL: a notification
sent while the connection was down is lost, so the tables are the truth and notifications are
only hints. A dead connection is detected by the termination callback (server-side close) and by
a periodic `SELECT 1` under a timeout (a network that died without a FIN). Payloads are
untrusted: anything malformed is logged and answered by an immediate sweep. The listener never
executes anything itself; it forwards approval ids to the executor's mailbox.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import anyio
from anyio.abc import TaskStatus

from trade_executor.actors.backoff import Backoff
from trade_executor.actors.messages import (
    ApprovalSeen,
    CloseRequested,
    ControlChanged,
    ExecutionChanged,
    Message,
)
from trade_executor.actors.supervisor import describe
from trade_executor.config.sources import Settings
from trade_executor.observability.logging import get_logger
from trade_executor.store.control_payloads import (
    CLOSE,
    EXECUTION_CHANGED,
    KILL_SWITCH,
    ClosePayload,
    ControlPayload,
    ExecutionChangedPayload,
    KillSwitchChanged,
    Malformed,
    UnknownKind,
    parse_control_payload,
)
from trade_executor.store.notifications import (
    APPROVALS_CHANNEL,
    CONTROL_CHANNEL,
    Notification,
    NotificationSource,
)
from trade_executor.store.protocol import ListenerStore

log = get_logger("trade_executor.listener")

SWEEP_LIMIT = 5000
PAYLOAD_EXCERPT = 200


class ListenerDisconnected(Exception):
    """The LISTEN connection is gone; the listener reconnects."""


@dataclass
class ListenerHealth:
    connected: bool = False
    reconnects: int = 0
    bad_payloads: int = 0


def parse_approval_payload(payload: str) -> UUID | None:
    """The approval id of a `trade_approvals` notification, or None if the payload is not the
    documented `{"approval_id": uuid, "signal_id": uuid}`."""
    if len(payload) > 8000:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested thousands deep
        return None
    if not isinstance(data, dict) or not isinstance(data.get("approval_id"), str):
        return None
    try:
        return UUID(data["approval_id"])
    except ValueError:
        return None


def parse_status_payload(payload: str) -> UUID | None:
    """The signal id of a status approval's notification (migration 0003's trigger:
    `{"signal_id": uuid, "source": "signal_status"}`), else None."""
    if len(payload) > 8000:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("source") != "signal_status":
        return None
    if not isinstance(data.get("signal_id"), str):
        return None
    try:
        return UUID(data["signal_id"])
    except ValueError:
        return None


class ApprovalListener:
    def __init__(
        self,
        settings: Settings,
        store: ListenerStore,
        connect: Callable[[], Awaitable[NotificationSource]],
        forward: Callable[[Message], None],
    ) -> None:
        self._settings = settings
        self._store = store
        self._connect = connect
        self._forward = forward
        self._sweep_now = anyio.Event()
        self._legacy_seen = False  # a control payload without `kind` was logged
        self.health = ListenerHealth()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled. `started` once the first LISTEN and catch-up are done."""
        backoff = Backoff(base=0.2, cap=5.0)
        started = False
        while True:
            source: NotificationSource | None = None
            try:
                source = await self._connect()
                await self._catch_up("connect")
                if started:
                    self.health.reconnects += 1
                    log.warning("listener.reconnected", reconnects=self.health.reconnects)
                else:
                    log.info("listener.started")
                    started = True
                    task_status.started()
                self.health.connected = True
                backoff.reset()
                await self._serve(source)
            except Exception as error:
                # asyncpg, OSError and timeouts all mean the same here: reconnect.
                log.warning("listener.disconnected", error=describe(error))
            finally:
                self.health.connected = False
                if source is not None:
                    with anyio.CancelScope(shield=True):
                        await source.aclose()
            await anyio.sleep(backoff.next())

    async def _serve(self, source: NotificationSource) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch, source)
            tg.start_soon(self._sweep_forever)
            async for notification in source.notifications:
                self._on_notification(notification)
                if source.overflowed:
                    source.overflowed = False
                    self._sweep_now.set()
            raise ListenerDisconnected("the notification stream ended")

    async def _watch(self, source: NotificationSource) -> None:
        interval = self._settings.listener_health_interval
        while True:
            with anyio.move_on_after(interval):
                await source.closed.wait()
                raise ListenerDisconnected("the server closed the connection")
            try:
                await source.ping(timeout=max(1.0, interval))
            except Exception as error:
                raise ListenerDisconnected(f"health check failed: {error}") from error

    async def _sweep_forever(self) -> None:
        while True:
            with anyio.move_on_after(self._settings.sweep_interval):
                await self._sweep_now.wait()
            self._sweep_now = anyio.Event()
            await self._catch_up("sweep")

    async def _catch_up(self, source: str) -> None:
        """Forward every approved signal that has no execution yet, and the kill switch."""
        control = await self._store.control()
        self._forward(
            ControlChanged(control.halted, control.reason, control.changed_by, control.changed_at)
        )
        sources = self._settings.approval_sources
        pending = await self._store.pending_approvals(SWEEP_LIMIT, sources)
        now = anyio.current_time()
        for approval in pending:
            signal_id = approval.signal_id if approval.approval_id is None else None
            self._forward(ApprovalSeen(approval.approval_id, source, now, signal_id=signal_id))
        if pending:
            log.info("listener.caught_up", source=source, approvals=len(pending))

    def _on_notification(self, notification: Notification) -> None:
        if notification.channel == CONTROL_CHANNEL:
            self._on_control(notification.payload)
            return
        if notification.channel != APPROVALS_CHANNEL:
            return
        status_signal = parse_status_payload(notification.payload)
        if status_signal is not None:
            # APPROVAL_SOURCES decides which source is honoured; the other is not an error.
            if "signal_status" in self._settings.approval_sources:
                hint = ApprovalSeen(None, "notify", anyio.current_time(), signal_id=status_signal)
                self._forward(hint)
            return
        approval_id = parse_approval_payload(notification.payload)
        if approval_id is not None and "trade_approvals" not in self._settings.approval_sources:
            return
        if approval_id is None:
            self.health.bad_payloads += 1
            log.warning(
                "listener.bad_payload",
                payload=notification.payload[:PAYLOAD_EXCERPT],
                length=len(notification.payload),
            )
            self._sweep_now.set()
            return
        self._forward(ApprovalSeen(approval_id, "notify", anyio.current_time()))

    def _on_control(self, payload: str) -> None:
        """A control notification, by its `kind` (`store.control_payloads`)."""
        parsed = parse_control_payload(payload)
        if parsed.legacy and not self._legacy_seen:
            # An older instance (or the trigger before 0008) during a switch-over: read by the
            # old rule; said once, the rest alike.
            self._legacy_seen = True
            log.info(
                "listener.legacy_control_payload",
                payload=payload[:PAYLOAD_EXCERPT],
                read_as=_kind_of(parsed.payload),
            )
        match parsed.payload:
            case ClosePayload() as close:  # `close` from another shell: for the exits
                self._forward(CloseRequested(close.symbol, close.reason, close.requested_by))
            case ExecutionChangedPayload(execution_id=execution_id):
                self._forward(ExecutionChanged(execution_id))
            case KillSwitchChanged():  # a hint: re-read the switch from the table
                self._sweep_now.set()
            case UnknownKind(kind=kind):
                # A newer writer: nothing this version can act on. The sweep re-reads the
                # kill switch and the approvals, so nothing this version knows is missed.
                log.warning(
                    "listener.unknown_control_kind", kind=kind, payload=payload[:PAYLOAD_EXCERPT]
                )
                self._sweep_now.set()
            case Malformed(kind=kind, problem=problem):
                self.health.bad_payloads += 1
                log.warning(
                    "listener.bad_payload",
                    channel=CONTROL_CHANNEL,
                    kind=kind,
                    problem=problem,
                    payload=payload[:PAYLOAD_EXCERPT],
                    length=len(payload),
                )
                self._sweep_now.set()


def _kind_of(payload: ControlPayload) -> str:
    match payload:
        case ClosePayload():
            return CLOSE
        case ExecutionChangedPayload():
            return EXECUTION_CHANGED
        case _:
            return KILL_SWITCH
