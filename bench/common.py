"""Shared pieces of the benchmark: statistics, a scratch database, child processes, /proc."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from trade_executor.store.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PROJECT_PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Dist:
    """A latency distribution in milliseconds."""

    samples_ms: list[float] = field(default_factory=list)

    @classmethod
    def of_seconds(cls, values: Sequence[float]) -> Dist:
        return cls([v * 1000 for v in values])

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    def p(self, q: float) -> float:
        return percentile(self.samples_ms, q)

    def summary(self) -> dict[str, float]:
        return {
            "n": self.n,
            "p50": self.p(50),
            "p95": self.p(95),
            "p99": self.p(99),
            "max": max(self.samples_ms) if self.samples_ms else float("nan"),
        }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---- the scratch database ----------------------------------------------------------------------


def with_database(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@asynccontextmanager
async def scratch_database(server_url: str, *, migrated: bool = True) -> AsyncIterator[str]:
    """CREATE DATABASE bench_<random> (with the project's schema unless `migrated` is False);
    dropped at the end."""
    name = f"bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = with_database(server_url, name)
    try:
        if migrated:
            await migrate(dsn)
        yield dsn
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# ---- /proc --------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuMeter:
    """CPU share of a process over an interval: 1.0 = one core busy."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start()

    def start(self) -> None:
        self._cpu = cpu_seconds(self.pid)
        self._wall = time.monotonic()

    def share(self) -> float:
        return (cpu_seconds(self.pid) - self._cpu) / max(time.monotonic() - self._wall, 1e-9)


# ---- the bench bridge ---------------------------------------------------------------------------


@dataclass
class Bridge:
    process: asyncio.subprocess.Process
    url: str
    client: httpx.AsyncClient

    @property
    def pid(self) -> int:
        return self.process.pid

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(self.url + path, params=params or None)
        response.raise_for_status()
        return response.json()

    async def post(self, path: str, body: Any) -> Any:
        response = await self.client.post(self.url + path, json=body)
        response.raise_for_status()
        return response.json()

    async def requests(self) -> list[dict[str, Any]]:
        """The paper bridge's own request log (`GET /admin/requests`), stamped on arrival."""
        answer = await self.get("/admin/requests")
        return list(answer["requests"])

    async def clear_requests(self) -> None:
        response = await self.client.delete(self.url + "/admin/requests")
        response.raise_for_status()

    async def wait_order(self, symbol: str, timeout: float = 30) -> dict[str, Any]:
        response = await self.client.get(
            f"{self.url}/bench/wait/{symbol}",
            params={"timeout": timeout},
            timeout=timeout + 5,
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


@asynccontextmanager
async def bench_bridge(
    fill_mode: str = "never",
    *,
    nagle: bool = False,
    profile: str = "ideal",
    latency_scale: float = 0.0,
) -> AsyncIterator[Bridge]:
    """The paper bridge in its own process (bench/bridge.py), 10^12 of buying power.
    `nagle`: leave TCP_NODELAY off. `profile` "jax" with `latency_scale` 1 is the real
    jax-trading-assistant bridge's pace (its sleeps, its symbol look-up)."""
    process = await asyncio.create_subprocess_exec(
        PROJECT_PYTHON,
        str(BENCH / "bridge.py"),
        "--port",
        "0",
        "--fill-mode",
        fill_mode,
        "--profile",
        profile,
        "--latency-scale",
        str(latency_scale),
        *(["--nagle"] if nagle else []),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line.startswith(b"PORT "):
            raise RuntimeError(f"the bench bridge did not start: {line!r}")
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        async with httpx.AsyncClient(timeout=60) as client:
            bridge = Bridge(process, url, client)
            for _ in range(200):
                try:
                    await client.get(url + "/health")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            yield bridge
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scratch_dir() -> Path:
    """bench/results/work, emptied: executor logs and raw profiles of the last run."""
    work = BENCH / "results" / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


# ---- the floor processes ------------------------------------------------------------------------


@asynccontextmanager
async def floor_process(
    dsn: str, bridge_url: str, channel: str, *, durable: bool
) -> AsyncIterator[asyncio.subprocess.Process]:
    """bench/floor.py in its own process, listening on `channel`; terminated at the end."""
    command = [PROJECT_PYTHON, str(BENCH / "floor.py"), "--dsn", dsn, "--bridge", bridge_url]
    command += ["--channel", channel, *(["--durable"] if durable else [])]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if line.strip() != b"READY":
            raise RuntimeError(f"the floor process did not start: {line!r}")
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
