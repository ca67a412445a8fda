"""`trade-executor run` as a real child process, with READY=1 timed over NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from common import BENCH, PROJECT_PYTHON, ROOT

# Limits raised so that every benchmark approval passes the risk gates.
BASE_ENV = {
    "EXECUTION_ENABLED": "true",
    "HTTP_PORT": "0",
    "LOG_LEVEL": "warning",
    "LOG_FORMAT": "json",
    "MAX_OPEN_POSITIONS": "1000000",
    "MAX_DAILY_LOSS": "1000000000000",
    "MAX_POSITION_VALUE_PCT": "1",
    "ORDER_POLL_INTERVAL": "5",
    "ORDER_POLL_TIMEOUT": "86400",
    "APPROVAL_MAX_AGE": "3600",
    # The most the settings allow (IB's limit): approvals timed one at a time are spaced so
    # that the pacer never holds one (scenarios.SPACING).
    "BRIDGE_MAX_MESSAGES_PER_SECOND": "50",
}


@dataclass
class ExecutorProcess:
    process: asyncio.subprocess.Process
    ready_after: float  # seconds from spawning the process to READY=1
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_events(self) -> dict[str, int]:
        """How many times each log event (warning level and above) appeared."""
        counts: dict[str, int] = {}
        if not self.log_path.exists():
            return counts
        for line in self.log_path.read_text(errors="replace").splitlines():
            start = line.find('"event": "')
            if start < 0:
                start = line.find('"event":"')
                if start < 0:
                    continue
                start += len('"event":"')
            else:
                start += len('"event": "')
            end = line.find('"', start)
            event = line[start:end]
            counts[event] = counts.get(event, 0) + 1
        return counts


def _prepare(workdir: Path) -> tuple[Path, Path, int]:
    workdir.mkdir(parents=True, exist_ok=True)
    stamp = time.monotonic_ns()
    log_path = workdir / f"executor-{stamp}.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    return workdir / f"notify-{stamp}.sock", log_path, fd


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]


@asynccontextmanager
async def executor_process(
    dsn: str,
    bridge_url: str,
    workdir: Path,
    *,
    ready_timeout: float = 120,
    unpaced: bool = False,
    entry: Path | None = None,
    prefix: list[str] | None = None,
    **env: str,
) -> AsyncIterator[ExecutorProcess]:
    """Start `python -m trade_executor run` (`unpaced`: bench/unpaced.py, the pacing bucket
    bypassed; `entry`: another bench-only wrapper script; `prefix`: a command that runs it, such
    as `py-spy record ... --`); yield once it has sent READY=1; SIGTERM at the end."""
    if unpaced:
        entry = BENCH / "unpaced.py"
    notify_path, log_path, log_fd = _prepare(workdir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.setblocking(False)
    child_env = {
        **os.environ,
        **BASE_ENV,
        "DATABASE_URL": dsn,
        "IB_BRIDGE_URL": bridge_url,
        "NOTIFY_SOCKET": str(notify_path),
        **env,
    }
    child_env.pop("WATCHDOG_USEC", None)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *(prefix or []),
            PROJECT_PYTHON,
            *([str(entry)] if entry is not None else ["-m", "trade_executor"]),
            "run",
            cwd=ROOT,
            env=child_env,
            stdout=log_fd,
            stderr=asyncio.subprocess.STDOUT,
        )
    finally:
        os.close(log_fd)
    try:
        ready_after = None
        deadline = started + ready_timeout
        while ready_after is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or process.returncode is not None:
                raise RuntimeError(
                    f"the executor never sent READY=1 (exit {process.returncode}):\n"
                    + _tail(log_path)
                )
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 4096), min(remaining, 1.0))
            except TimeoutError:
                continue
            if b"READY=1" in data.split(b"\n"):
                ready_after = time.monotonic() - started
        yield ExecutorProcess(process, ready_after, log_path)
    finally:
        sock.close()
        notify_path.unlink(missing_ok=True)
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
