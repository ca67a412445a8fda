"""The notifier: an actor of its own that tells people what happened (CONTRACT section 3).

Guarantees:
- **Never in the way of an order.** Events arrive through the log tap (`observability.tap`): the
  executor's log call appends a copy of the event to a bounded intake and returns. Everything
  else (building the message, sending it, retrying, waiting for a slow target) happens in this
  actor's own tasks. Nothing it does is awaited by another actor.
- **Bounded.** The intake and each target's outbox hold at most `queue_size` items; when one is
  full the *oldest* item is dropped and counted (`trade_executor_notifications_total
  {outcome="dropped"}`): the newest news matters most.
- **One target cannot hold up another**: each NOTIFY_URLS target has its own outbox and worker.
- **Bounded retries**: `len(retry_delays) + 1` attempts per message and target, each under
  `send_timeout`; then the message counts as failed. Failures are logged rate-limited
  (`notify.failed`: once when a target starts failing, then at most once a minute with
  `repeated`), and `notify.recovered` once it answers again.
- **A reconcile break is told once**: the same break (kind, symbol, execution, order) seen on
  later passes is not repeated until it has not been seen for `break_memory` seconds.
- **The daily summary** is sent at the session's close (`notify.summary.next_close`), built from
  the report (`ops.report`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskStatus

from trade_executor.clock import Clock, utcnow
from trade_executor.config.settings import NotifyEvent, Settings
from trade_executor.notify.messages import TAPPED_EVENTS, Note, break_key, note_for
from trade_executor.notify.sender import SEND_THREADS, SEND_TIMEOUT, BadTarget, Target
from trade_executor.observability import tap
from trade_executor.observability.logging import RepeatLimiter, get_logger
from trade_executor.observability.metrics import Metrics

log = get_logger("trade_executor.notify")

QUEUE_SIZE = 100
RETRY_DELAYS = (1.0, 5.0)
# A break not seen again for this long is told again when it comes back.
BREAK_MEMORY = 600.0

Summary = Callable[[date], Awaitable[Note | None]]
NextClose = Callable[[datetime], datetime]


class DropOldest:
    """A bounded queue over an anyio memory stream: `put` never blocks; when full, the oldest
    item is taken out (and `on_drop` called) to make room."""

    def __init__(self, size: int, on_drop: Callable[[Any], None]) -> None:
        send: ObjectSendStream[Any]
        receive: ObjectReceiveStream[Any]
        send, receive = anyio.create_memory_object_stream[Any](size)
        self._send, self.receive, self._on_drop = send, receive, on_drop

    def put(self, item: Any) -> None:
        try:
            self._send.send_nowait(item)
        except anyio.WouldBlock:
            self._on_drop(self.receive.receive_nowait())
            self._send.send_nowait(item)


class Notifier:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        targets: list[Target] | None = None,
        summary: Summary | None = None,
        next_close: NextClose | None = None,
        clock: Clock = utcnow,
        queue_size: int = QUEUE_SIZE,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        send_timeout: float = SEND_TIMEOUT,
        break_memory: float = BREAK_MEMORY,
    ) -> None:
        """`targets` default: NOTIFY_URLS (a target Apprise cannot use is logged and left out;
        `check-config` refuses it). `summary` builds the daily summary for a trading day and
        `next_close` says when the next one is due (both None: no daily summary)."""
        self._settings = settings
        self._metrics = metrics
        self._enabled: frozenset[NotifyEvent] = settings.notify_events
        self._targets = targets if targets is not None else self._configured_targets()
        self._summary = summary
        self._next_close = next_close
        self._clock = clock
        self._queue_size = queue_size
        self._retry_delays = retry_delays
        self._send_timeout = send_timeout
        self._break_memory = break_memory
        self._breaks: dict[tuple[Any, ...], float] = {}
        self._failures = RepeatLimiter(logger=log)
        self._thread: int | None = None
        self._intake: DropOldest | None = None
        self._outboxes: list[tuple[Target, DropOldest]] = []

    def _configured_targets(self) -> list[Target]:
        targets = []
        for number, url in enumerate(self._settings.notify_target_urls(), 1):
            try:
                targets.append(Target(number, url))
            except BadTarget as error:
                log.error("notify.bad_target", error=str(error))
        return targets

    @property
    def targets(self) -> list[Target]:
        return list(self._targets)

    # -- intake (called from the log tap, in the event loop's thread) ------------------------------

    def offer(self, event: Mapping[str, Any]) -> None:
        """The tap's sink: keep the event if its kind is enabled; never blocks, never raises."""
        if self._intake is None or threading.get_ident() != self._thread:
            return  # not running, or a line logged from a worker thread
        kind = TAPPED_EVENTS.get(str(event.get("event")))
        if kind is None or kind not in self._enabled:
            return
        self._intake.put(event)

    def send_note(self, note: Note) -> None:
        """Queue `note` for every target (the daily summary; tests)."""
        for _, outbox in self._outboxes:
            outbox.put(note)

    def _dropped(self, item: Any) -> None:
        kind = item.kind if isinstance(item, Note) else TAPPED_EVENTS.get(str(item.get("event")))
        self._metrics.notification(str(kind), "dropped")

    # -- the actor --------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        limiter = anyio.CapacityLimiter(SEND_THREADS)
        self._intake = DropOldest(self._queue_size, self._dropped)
        self._outboxes = [
            (target, DropOldest(self._queue_size, self._dropped)) for target in self._targets
        ]
        self._thread = threading.get_ident()
        tap.add_sink(self.offer, TAPPED_EVENTS)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._dispatch)
                for target, outbox in self._outboxes:
                    tg.start_soon(self._deliver, target, outbox, limiter)
                if (
                    self._summary is not None
                    and self._next_close is not None
                    and "daily_summary" in self._enabled
                ):
                    tg.start_soon(self._daily)
                log.info(
                    "notify.started",
                    targets=[t.name for t in self._targets],
                    events=sorted(self._enabled),
                )
                task_status.started()
        finally:
            tap.remove_sink(self.offer)
            self._intake = None

    async def _dispatch(self) -> None:
        """Events to notes, fanned out to each target's outbox (no I/O here)."""
        assert self._intake is not None
        async for event in self._intake.receive:
            note = self._note(event)
            if note is not None:
                self.send_note(note)

    def _note(self, event: Mapping[str, Any]) -> Note | None:
        if event.get("event") == "reconcile.break":
            now = time.monotonic()
            key = break_key(event)
            seen = self._breaks.get(key)
            self._breaks[key] = now
            for old in [k for k, at in self._breaks.items() if now - at > self._break_memory]:
                del self._breaks[old]
            if seen is not None and now - seen <= self._break_memory:
                return None
        try:
            return note_for(event)
        except Exception as error:  # a message that cannot be built is a bug, never a crash
            log.error("notify.message_failed", error=f"{type(error).__name__}: {error}")
            return None

    async def _deliver(self, target: Target, outbox: DropOldest, limiter: Any) -> None:
        async for note in outbox.receive:
            await self._deliver_one(target, note, limiter)

    async def _deliver_one(self, target: Target, note: Note, limiter: Any) -> bool:
        attempts = len(self._retry_delays) + 1
        for attempt in range(attempts):
            if await target.send(note, limiter, self._send_timeout):
                self._metrics.notification(note.kind, "sent")
                self._failures.clear(target.number, "notify.recovered", target=target.name)
                return True
            if attempt < len(self._retry_delays):
                await anyio.sleep(self._retry_delays[attempt])
        self._metrics.notification(note.kind, "failed")
        self._failures.log(
            target.number,
            "notify.failed",
            target=target.name,
            kind=note.kind,
            attempts=attempts,
        )
        return False

    async def _daily(self) -> None:
        """At each session close, the day's summary."""
        assert self._summary is not None and self._next_close is not None
        while True:
            now = self._clock()
            due = self._next_close(now)
            await anyio.sleep(max(0.0, (due - now).total_seconds()))
            try:
                note = await self._summary(due.astimezone(self._settings.timezone).date())
            except Exception as error:  # the database away, say: skip today's, say so
                log.warning("notify.summary_failed", error=f"{type(error).__name__}: {error}")
                note = None
            if note is not None:
                self.send_note(note)
            # Past the close just served, whatever the clock says.
            await anyio.sleep(max(1.0, (due - self._clock()).total_seconds() + 1.0))


__all__ = ["BREAK_MEMORY", "QUEUE_SIZE", "RETRY_DELAYS", "DropOldest", "Notifier"]
