"""sd_notify written for this project: one datagram per message to $NOTIFY_SOCKET.

No NOTIFY_SOCKET, no messages. An address starting with '@' is in the abstract namespace.
`status_line(ServiceStatus(...))` builds the `STATUS=` text `systemctl status` shows: the role,
live or dry run, halted and why, in one line that never claims more than the service does.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Literal

from trade_executor.domain.mode import AccountKind

Role = Literal["starting", "active", "standby"]

# systemctl shows STATUS= on one line; a halt reason is free text from an operator.
_MAX_REASON = 160


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """What the service is doing, as far as STATUS= tells it.

    `account` is what the bridge's /health last said (None: not known yet); `leader` names the
    active instance for a standby (e.g. "host-a pid 1234"); `problems` are short phrases such as
    "bridge unavailable" that make the service degraded.
    """

    role: Role
    execution_enabled: bool
    account: AccountKind | None = None
    halted: bool = False
    halt_reason: str | None = None
    halted_by: str | None = None
    leader: str | None = None
    problems: tuple[str, ...] = ()
    allow_live_trading: bool = True


def _one_line(text: str, limit: int = _MAX_REASON) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def status_line(status: ServiceStatus) -> str:
    """The STATUS= text for `status`: starts with the role, one line, no newline.

    Examples: "active: live orders, paper account; taking approvals",
    "active: DRY RUN (no orders sent); HALTED by alice: IB maintenance",
    "standby (waiting for the leader lock, active: host-a pid 1234): live orders".
    """
    if status.role == "standby":
        leader = f", active: {_one_line(status.leader, 80)}" if status.leader else ""
        head = f"standby (waiting for the leader lock{leader})"
    else:
        head = status.role
    live = status.account == "live"
    refused = status.execution_enabled and live and not status.allow_live_trading
    if not status.execution_enabled:
        mode = "DRY RUN (no orders sent)"
    elif refused:
        mode = "LIVE account without ALLOW_LIVE_TRADING: nothing is sent"
    elif status.account == "live":
        mode = "live orders, LIVE account"
    elif status.account == "paper":
        mode = "live orders, paper account"
    else:
        mode = "live orders"
    parts = [mode]
    if status.role == "active":
        if status.halted:
            by = f" by {_one_line(status.halted_by, 40)}" if status.halted_by else ""
            reason = f": {_one_line(status.halt_reason)}" if status.halt_reason else ""
            parts.append(f"HALTED{by}{reason}; approvals are rejected")
        elif (
            status.execution_enabled and status.account == "live" and not status.allow_live_trading
        ):
            parts.append("approvals are rejected live_trading_not_allowed")
        else:
            parts.append("taking approvals")
    elif status.halted:
        parts.append("halted")
    if status.problems:
        parts.append("degraded: " + ", ".join(_one_line(p, 60) for p in status.problems))
    return f"{head}: " + "; ".join(parts)


class SystemdNotifier:
    def __init__(self, address: str | None) -> None:
        self._address: str | bytes | None = None
        if address:
            self._address = "\0" + address[1:] if address.startswith("@") else address

    @classmethod
    def from_env(cls) -> SystemdNotifier:
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *lines: str) -> bool:
        """Send `KEY=value` lines as one datagram; False (never raise) if it could not be sent."""
        if self._address is None:
            return False
        message = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")


def watchdog_interval() -> float | None:
    """Half of WATCHDOG_USEC (systemd's advice), or None when no watchdog is asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.05)
    except ValueError:
        return None
