"""Sending one notification to one Apprise target (Telegram, Slack, ntfy, e-mail, webhooks...).

Apprise's senders block (they use `requests`), and its own `async_notify` is asyncio-only, so a
send runs in a worker thread through `anyio.to_thread` (both backends), under a limiter of the
notifier's own (never the process's default one) and a deadline: past it the thread is abandoned
(it ends at Apprise's own socket timeouts) and the attempt counts as failed. One `Apprise`
object per target, so each target's answer is known apart.

Apprise's own log is silenced: its lines can carry a target's URL, which holds the token. What
went wrong is logged by the notifier, naming the target by its number and scheme only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

import anyio
import apprise

from trade_executor.config.settings import notify_target_name
from trade_executor.notify.messages import Note

# Seconds one attempt may take before it counts as failed (Apprise's own socket timeouts are
# 4 s to connect and 4 s to read, by default).
SEND_TIMEOUT = 15.0
# Worker threads for sending, shared by every target of one notifier.
SEND_THREADS = 4

logging.getLogger("apprise").setLevel(logging.CRITICAL + 10)
logging.getLogger("apprise").propagate = False


class BadTarget(ValueError):
    """A NOTIFY_URLS entry Apprise does not understand (no plugin for its scheme, say)."""


@dataclass(eq=False)
class Target:
    """One NOTIFY_URLS entry: `number` (1-based, in the order written) and a `name` that is safe
    to show (`tgram://***`)."""

    number: int
    url: str = field(repr=False)
    name: str = ""
    _apprise: apprise.Apprise | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = f"target {self.number} ({notify_target_name(self.url)})"
        instance = apprise.Apprise()
        if not instance.add(self.url):
            raise BadTarget(f"NOTIFY_URLS {self.name}: Apprise does not understand this URL")
        self._apprise = instance

    def _send_blocking(self, note: Note) -> bool:
        assert self._apprise is not None
        result = self._apprise.notify(
            body=note.body, title=note.title, notify_type=apprise.NotifyType(note.severity)
        )
        return bool(result)

    async def send(
        self, note: Note, limiter: anyio.CapacityLimiter, timeout: float = SEND_TIMEOUT
    ) -> bool:
        """True if the target accepted `note` within `timeout` seconds."""
        with anyio.move_on_after(timeout):
            try:
                return await anyio.to_thread.run_sync(
                    partial(self._send_blocking, note), abandon_on_cancel=True, limiter=limiter
                )
            except Exception:  # a plugin's crash is a failed attempt, nothing more
                return False
        return False


def targets_from(urls: list[str]) -> list[Target]:
    """One Target per URL; raises BadTarget (naming only the number and scheme) for a URL that
    Apprise cannot use."""
    return [Target(number, url) for number, url in enumerate(urls, 1)]


__all__ = ["SEND_THREADS", "SEND_TIMEOUT", "BadTarget", "Target", "targets_from"]
