"""`notify-test`: one test message to every NOTIFY_URLS target, and which answered."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from trade_executor import __version__
from trade_executor.config.sources import Settings
from trade_executor.notify.messages import Note
from trade_executor.notify.sender import SEND_THREADS, BadTarget, Target
from trade_executor.ops.common import Refusal
from trade_executor.store.identity import instance_id


async def send_test(settings: Settings) -> list[tuple[str, bool, str]]:
    """(target name, answered, sentence) for each target, in NOTIFY_URLS order."""
    note = Note(
        "test",
        "trade-executor test notification",
        f"from {instance_id()}, version {__version__}: notifications reach this target",
    )
    limiter = anyio.CapacityLimiter(SEND_THREADS)
    results: list[tuple[str, bool, str]] = []
    for number, url in enumerate(settings.notify_target_urls(), 1):
        try:
            target = Target(number, url)
        except BadTarget as error:
            results.append((f"target {number}", False, str(error)))
            continue
        ok = await target.send(note, limiter)
        results.append((target.name, ok, "answered" if ok else "did not accept it"))
    return results


@dataclass(frozen=True, slots=True)
class TargetAnswer:
    name: str
    answered: bool
    sentence: str


async def notify_test(settings: Settings) -> list[TargetAnswer] | Refusal:
    """One test message to every NOTIFY_URLS target, and which answered (in order)."""
    if not settings.notify_target_urls():
        return Refusal("NOTIFY_URLS is not set: there is no target to send to")
    return [TargetAnswer(*result) for result in await send_test(settings)]
