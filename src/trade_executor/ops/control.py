"""`halt` and `resume`: the kill switch (CONTRACT section 5).

Halting needs only the database: the switch is written in `executor_control`, whose trigger
notifies the running service. The command then says whether the running service acknowledged it
(its executor answers on `trade_executor_control_ack` once the new state is applied); it listens
before writing, so an acknowledgement cannot be missed. Without `--wait` it waits
ACK_GLANCE seconds and says what it saw; with `--wait` it returns once the service applied the
change, or fails (exit 1) after `--timeout` seconds, the switch staying written either way.

A second `halt` while halted with another reason is refused (exit 1, naming the current halt)
unless `--force`; then the new reason replaces it, and the service logs both (`executor.halted`
with `previous_reason`). The same halt again changes nothing and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trade_executor.ops.common import Context
from trade_executor.store import operator
from trade_executor.store.operator import Acknowledgement, SwitchChange
from trade_executor.store.postgres import PgStore

# The running service applies a change within a second (CONTRACT section 5).
ACK_GLANCE = 2.0
DEFAULT_WAIT = 30.0


def _since(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "an unknown time"


@dataclass(frozen=True, slots=True)
class SwitchOutcome:
    """What a halt or resume did, in one sentence; `ok` False: the CLI exits 1 with it."""

    ok: bool
    message: str
    acknowledged_by: str | None = None  # the running instance that applied it


async def change_switch(
    store: PgStore,
    dsn: str,
    halted: bool,
    reason: str | None,
    by: str,
    force: bool,
    wait: float,
) -> tuple[SwitchChange, Acknowledgement | None]:
    """Write the switch, then wait up to `wait` s for the running service's acknowledgement
    (listening before the write, so it cannot be missed)."""
    async with operator.listening_for_acks(dsn) as acks:
        change = await operator.change_switch(store.pool, halted, reason, by, replace_reason=force)
        if change.changed_at is None:
            return change, None
        return change, await acks.wait_for(change.changed_at, wait)


def _report_ack(
    what: str, ack: Acknowledgement | None, waited: float, wait_requested: bool
) -> SwitchOutcome:
    if ack is not None:
        return SwitchOutcome(
            True, f"{what}; the running service ({ack.instance}) applied it", ack.instance
        )
    if wait_requested:
        return SwitchOutcome(
            False,
            f"{what} in the database, but no running service acknowledged it within "
            f"{waited:g} s (is one running? trade-executor status)",
        )
    return SwitchOutcome(
        True,
        f"{what}; no running service acknowledged it within {waited:g} s "
        "(a service that starts later applies it)",
    )


def halt_outcome(
    change: SwitchChange,
    ack: Acknowledgement | None,
    reason: str,
    by: str,
    waited: float,
    wait_requested: bool,
) -> SwitchOutcome:
    """What a halt did (`change_switch` with halted=True), as `halt` says it."""
    before = change.before
    if change.changed_at is None:
        if before.reason == reason:
            return SwitchOutcome(
                True,
                f"already halted: {before.reason} (by {before.changed_by}, "
                f"since {_since(before.changed_at)}); nothing changed",
            )
        return SwitchOutcome(
            False,
            f"already halted by {before.changed_by} since {_since(before.changed_at)}: "
            f"{before.reason!r}; use --force to replace the reason with {reason!r}",
        )
    what = f"halted: {reason} (by {by})"
    if before.halted:
        what += f", replacing {before.reason!r} (by {before.changed_by})"
    return _report_ack(what, ack, waited, wait_requested)


def resume_outcome(
    change: SwitchChange,
    ack: Acknowledgement | None,
    by: str,
    waited: float,
    wait_requested: bool,
) -> SwitchOutcome:
    """What a resume did (`change_switch` with halted=False), as `resume` says it."""
    if change.changed_at is None:
        return SwitchOutcome(True, "not halted; nothing changed")
    before = change.before
    return _report_ack(
        f"resumed (by {by}; the halt was: {before.reason})", ack, waited, wait_requested
    )


def _pg(ctx: Context) -> PgStore:
    """The kill switch is written under a row lock, on PostgreSQL only (`store.operator`)."""
    if not isinstance(ctx.store, PgStore):
        raise TypeError("the kill switch is written through the PostgreSQL store")
    return ctx.store


async def halt(
    ctx: Context, reason: str, *, by: str, force: bool = False, wait: float | None = None
) -> SwitchOutcome:
    """Write the kill switch halted with `reason` (refused when already halted with another
    reason, unless `force`), then wait for the running service's acknowledgement: up to
    `wait` s (`ok` False when none came), or ACK_GLANCE s without `wait` (`ok` either way)."""
    waited = wait if wait is not None else ACK_GLANCE
    change, ack = await change_switch(_pg(ctx), ctx.settings.dsn(), True, reason, by, force, waited)
    return halt_outcome(change, ack, reason, by, waited, wait is not None)


async def resume(ctx: Context, *, by: str, wait: float | None = None) -> SwitchOutcome:
    """Clear the kill switch, then wait for the acknowledgement as `halt` does."""
    waited = wait if wait is not None else ACK_GLANCE
    change, ack = await change_switch(_pg(ctx), ctx.settings.dsn(), False, None, by, False, waited)
    return resume_outcome(change, ack, by, waited, wait is not None)


__all__ = [
    "ACK_GLANCE",
    "DEFAULT_WAIT",
    "SwitchOutcome",
    "change_switch",
    "halt",
    "halt_outcome",
    "resume",
    "resume_outcome",
]
