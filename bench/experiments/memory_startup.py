"""Targets 3 (RSS with 10,000 working) and 4 (READY with 10,000 to recover) alone, quickly.

    .venv/bin/python bench/experiments/memory_startup.py [--working 10000] [--runs 3]
                                                         [--seconds 30] [--skip-startup]

The same executor process, bridge and seeding as `make bench` (bench/suite.py), without the
other targets: what issue 22's memory and start-up changes were chosen and checked with. Needs
TEST_DATABASE_URL or a PostgreSQL on 127.0.0.1:5432. Measures the working tree (src/ on the
path of the project's virtualenv), or with `--commit REV` that commit's src/ (exported, put
first on the children's PYTHONPATH, as bench/run.py does). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

from common import CpuMeter, bench_bridge, rss_bytes, scratch_database, scratch_dir  # noqa: E402
from executor import executor_process  # noqa: E402
from scenarios import memory_parts, seed_open_executions  # noqa: E402

TRACED = Path(__file__).resolve().parent / "traced.py"
SERVER = os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


def export(commit: str) -> Path:
    """`commit`'s src/ in a directory of its own; returns that src/."""
    target = Path(tempfile.mkdtemp(prefix="bench-src-"))
    archive = subprocess.run(
        ["git", "archive", commit, "src"], cwd=BENCH.parent, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "src"


def startup_cpu(pid: int) -> float:
    """CPU seconds the process (and the children it waited for: the calendar's) used so far:
    the start-up's own cost, far less sensitive to other load than the time to READY."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


async def startup(n: int, runs: int) -> tuple[list[float], list[float]]:
    workdir = scratch_dir()
    async with scratch_database(SERVER) as dsn, bench_bridge() as bridge:
        await seed_open_executions(dsn, bridge, n, "BOOT")
        times: list[float] = []
        cpu: list[float] = []
        for _ in range(runs):
            async with executor_process(
                dsn, bridge.url, workdir, ORDER_POLL_INTERVAL="3600"
            ) as executor:
                times.append(round(executor.ready_after, 3))
                cpu.append(round(startup_cpu(executor.pid), 3))
        return times, cpu


async def working(n: int, seconds: float, traced: str | None = None) -> dict[str, object]:
    """`traced`: run bench/experiments/traced.py (tracemalloc) and dump its heap to
    `traced`.N.txt every 5 s (signal SIGUSR1)."""
    workdir = scratch_dir()
    entry = TRACED if traced else None
    env = {"ORDER_POLL_INTERVAL": "5", **({"TRACED_OUT": traced} if traced else {})}
    async with scratch_database(SERVER) as dsn, bench_bridge() as bridge:
        await seed_open_executions(dsn, bridge, n, "SEED")
        async with executor_process(
            dsn, bridge.url, workdir, entry=entry, ready_timeout=600, **env
        ) as ex:
            ready = ex.ready_after
            await asyncio.sleep(6.0)  # one interval of warm-up, as measure_following
            cpu = CpuMeter(ex.pid)
            samples = []
            end = time.monotonic() + seconds
            next_dump = time.monotonic()
            while time.monotonic() < end:
                samples.append(rss_bytes(ex.pid))
                if traced and time.monotonic() >= next_dump:
                    os.kill(ex.pid, signal.SIGUSR1)
                    next_dump += 5.0
                await asyncio.sleep(0.5)
            share = cpu.share()
            events = ex.log_events()
        parts = await memory_parts(dsn, bridge)
    return {
        "ready": round(ready, 3),
        "rss_max_mb": round(max(samples) / 2**20, 1),
        "rss_last_mb": round(samples[-1] / 2**20, 1),
        "cpu_share": round(share, 3),
        "log_events": events,
        "memory_parts": {k: round(v, 2) for k, v in parts.items()},
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--working", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-working", action="store_true")
    parser.add_argument("--traced", help="heap dumps (tracemalloc) to TRACED.N.txt")
    parser.add_argument("--commit", help="measure this commit's src/ instead of the work tree")
    args = parser.parse_args()
    if args.commit:
        os.environ["PYTHONPATH"] = str(export(args.commit))
    out: dict[str, object] = {"commit": args.commit, "load_before": os.getloadavg()}
    if not args.skip_startup:
        none, none_cpu = await startup(0, args.runs)
        full, full_cpu = await startup(args.working, args.runs)
        out["ready_none"] = none
        out["ready_full"] = full
        out["ready_none_median"] = statistics.median(none)
        out["ready_full_median"] = statistics.median(full)
        out["cpu_to_ready_none"] = none_cpu
        out["cpu_to_ready_full"] = full_cpu
    if not args.skip_working:
        out["working"] = await working(args.working, args.seconds, args.traced)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
