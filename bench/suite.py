"""The benchmark suite behind bench/run.py: every phase of issue 7, in order.

Imported by run.py only after it has put the measured source tree first on sys.path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import Dist, bench_bridge, median, scratch_database, scratch_dir
from executor import executor_process
from report import render
from scenarios import (
    approval_latency,
    burst,
    floor_notify,
    floor_post,
    measure_pollers,
    seed_open_executions,
)
from spy import Profile, record

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BENCH_VENV = BENCH / ".venv"
BENCH_PYTHON = BENCH_VENV / "bin" / "python"
PY_SPY = BENCH_VENV / "bin" / "py-spy"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
CHECKPOINT = BENCH / "results" / "partial.json"


@dataclass(frozen=True)
class Sizes:
    latency: int = 1000
    floor: int = 1000
    burst: int = 500
    runs: int = 3
    recover: int = 1000
    growth: tuple[int, int] = (1000, 10000)
    growth_latency: int = 200
    poll_interval: float = 5.0
    poll_windows: int = 3
    peer_latency: int = 500
    growth_budget: float = 60.0


QUICK = Sizes(
    latency=100,
    floor=100,
    burst=100,
    runs=1,
    recover=100,
    growth=(100, 1000),
    growth_latency=30,
    poll_windows=2,
    peer_latency=100,
    growth_budget=60.0,
)


def checkpoint(results: dict[str, Any]) -> None:
    """Save what has been measured so far (a crash or a stuck phase loses nothing)."""
    CHECKPOINT.parent.mkdir(exist_ok=True)
    CHECKPOINT.write_text(json.dumps(results, indent=1, default=str))


def log(message: str) -> None:
    print(f"bench [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def other_load() -> str:
    """What else was running: the load average and the busiest other processes."""
    load = os.getloadavg()
    result = subprocess.run(
        ["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"],
        capture_output=True,
        text=True,
    )
    busy = [line.split(None, 1) for line in result.stdout.splitlines()[:8]]
    names = [f"{name.strip()} {cpu}%" for cpu, name in busy if float(cpu) >= 5]
    return f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}" + (
        f"; busiest: {', '.join(names)}" if names else ""
    )


async def run_peer(server: str, sizes: Sizes, workdir: Path) -> dict[str, Any]:
    out = workdir / "peer.json"
    async with scratch_database(server, migrated=False) as dsn:
        command = [
            str(BENCH_PYTHON),
            str(BENCH / "peer_procrastinate.py"),
            "--dsn",
            dsn,
            "--latency",
            str(sizes.peer_latency),
            "--burst",
            str(sizes.burst),
            "--out",
            str(out),
        ]
        process = await asyncio.create_subprocess_exec(*command, cwd=ROOT)
        if await process.wait() != 0:
            raise RuntimeError("the Procrastinate peer failed")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


async def run_all(server: str, sizes: Sizes, profile: bool) -> dict[str, Any]:
    workdir = scratch_dir()
    results: dict[str, Any] = {"sizes": sizes.__dict__, "load_before": other_load()}

    # 1, 2, 4 on one database and one bridge: the floor, approvals one at a time, bursts.
    log("floor, approval latency and bursts (0 open executions at start)")
    async with scratch_database(server) as dsn, bench_bridge() as bridge:
        results["floor_notify"] = (await floor_notify(dsn, sizes.floor)).summary()
        post = await floor_post(bridge, sizes.floor, "FLOOR")
        results["floor_post"] = {k: v.summary() for k, v in post.items()}
        async with bench_bridge(nagle=True) as shipped:
            post = await floor_post(shipped, min(sizes.floor, 100), "NAGLE")
            results["floor_post_nagle"] = {k: v.summary() for k, v in post.items()}
        # Polls would only add noise here: the pollers sleep (interval 1 h) while we measure.
        async with executor_process(
            dsn, bridge.url, workdir, ORDER_POLL_INTERVAL="3600"
        ) as executor:
            results["ready_fresh"] = executor.ready_after
            latency = await approval_latency(dsn, bridge, sizes.latency, "LAT")
            results["latency"] = latency.summary()
            log(f"latency p50 {latency.order.p(50):.2f} ms, p99 {latency.order.p(99):.2f} ms")
            bursts = []
            for run in range(sizes.runs):
                bursts.append(await burst(dsn, bridge, sizes.burst, f"BURST{run}X"))
                log(f"burst {run}: {bursts[-1]['per_second']:.0f} approvals/s")
            results["bursts"] = bursts
            results["executor_log_baseline"] = executor.log_events()
            checkpoint(results)

    # 3. the peer.
    log("Procrastinate peer")
    results["peer"] = await run_peer(server, sizes, workdir)
    peer = Dist.of_seconds(results["peer"]["latency_seconds"])
    results["peer_summary"] = peer.summary()
    peer_rate = results["peer"]["burst"].get("per_second", 0)
    log(f"peer p50 {peer.p(50):.2f} ms; burst {peer_rate:.0f}/s")
    checkpoint(results)

    # 6. start-up, with 0 and with `recover` executions to recover (several runs each).
    startup: dict[str, list[float]] = {}
    for open_count in (0, sizes.recover):
        async with scratch_database(server) as dsn, bench_bridge() as bridge:
            await seed_open_executions(dsn, bridge, open_count, "BOOT")
            times = []
            for _ in range(sizes.runs):
                async with executor_process(
                    dsn, bridge.url, workdir, ORDER_POLL_INTERVAL="3600"
                ) as executor:
                    times.append(executor.ready_after)
            startup[str(open_count)] = times
            log(f"start-up with {open_count} to recover: {median(times):.3f} s")
    results["startup"] = startup
    checkpoint(results)

    # 5, 7. growth: N open executions, each with its poller (interval 5 s), then 1 and 4 again.
    growth = []
    for level in sizes.growth:
        log(f"{level} open executions: pollers, latency, burst")
        async with scratch_database(server) as dsn, bench_bridge() as bridge:
            await seed_open_executions(dsn, bridge, level, "SEED")
            async with executor_process(
                dsn, bridge.url, workdir, ORDER_POLL_INTERVAL=str(sizes.poll_interval)
            ) as executor:
                entry: dict[str, Any] = {"open": level, "ready": executor.ready_after}
                entry["pollers"] = await measure_pollers(
                    bridge, executor.pid, level, sizes.poll_interval, sizes.poll_windows
                )
                log(
                    f"  pollers: {entry['pollers']['rss_mb']:.0f} MB, "
                    f"cpu {entry['pollers']['cpu_share']:.2f}, "
                    f"{entry['pollers']['polls_per_second']:.0f}/"
                    f"{entry['pollers']['polls_per_second_needed']:.0f} polls/s"
                )
                entry["latency"] = (
                    await approval_latency(
                        dsn, bridge, sizes.growth_latency, "GLAT", budget=sizes.growth_budget
                    )
                ).summary()
                entry["burst"] = await burst(dsn, bridge, sizes.burst, "GBURST")
                log(
                    f"  latency p50 {entry['latency']['order']['p50']:.1f} ms, "
                    f"burst {entry['burst']['per_second']:.0f}/s"
                )
                if profile and level == sizes.growth[-1]:
                    log("  profiling the executor with py-spy (pollers only)")
                    await asyncio.sleep(sizes.poll_interval)
                    found = await asyncio.to_thread(
                        record, PY_SPY, executor.pid, 15, workdir / "pollers.txt"
                    )
                    results["profile_pollers"] = _profile(found)
                entry["log"] = executor.log_events()
            growth.append(entry)
            results["growth"] = growth
            checkpoint(results)
    results["growth"] = growth

    if profile:
        log("profiling the executor with py-spy (approvals one at a time, 0 open)")
        async with (
            scratch_database(server) as dsn,
            bench_bridge() as bridge,
            executor_process(dsn, bridge.url, workdir, ORDER_POLL_INTERVAL="3600") as executor,
        ):
            n = max(50, sizes.growth_latency)
            spy = asyncio.create_task(
                asyncio.to_thread(record, PY_SPY, executor.pid, 8, workdir / "latency.txt")
            )
            await asyncio.sleep(1.0)
            await approval_latency(dsn, bridge, n * 4, "PROF", budget=30)
            results["profile_latency"] = _profile(await spy)
            spy = asyncio.create_task(
                asyncio.to_thread(record, PY_SPY, executor.pid, 5, workdir / "burst.txt")
            )
            await asyncio.sleep(1.0)
            await burst(dsn, bridge, sizes.burst * 2, "PBURST")
            results["profile_burst"] = _profile(await spy)
    results["load_after"] = other_load()
    return results


def _profile(found: Profile | None) -> dict[str, object] | None:
    return None if found is None else found.as_dict()


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(at))


def main(args: argparse.Namespace, source: str) -> int:
    """Run the suite (or only render the last results) and write the report."""
    sizes = QUICK if args.quick else Sizes()
    if args.runs:
        sizes = Sizes(**{**sizes.__dict__, "runs": args.runs})
    last = BENCH / "results" / "last-run.json"
    if args.report_only:
        results = json.loads(last.read_text())
        # Runs before this field existed: the time the results were written.
        results.setdefault("when", _when(last.stat().st_mtime))
    else:
        server = os.environ.get("TEST_DATABASE_URL") or DEFAULT_SERVER
        started = time.time()
        results = asyncio.run(run_all(server, sizes, profile=not args.no_profile))
        results["duration_seconds"] = time.time() - started
        results["cores"] = os.cpu_count()
        results["quick"] = args.quick
        results["source"] = source
        results["command"] = "make bench" + (" (bench/run.py --quick)" if args.quick else "")
        results["when"] = _when(time.time())
        last.write_text(json.dumps(results, indent=1, default=str))
    text, table = render(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(table)
    print(f"\nwritten: {args.out}")
    return 0
