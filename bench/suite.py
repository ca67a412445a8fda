"""The benchmark suite behind bench/run.py: every target of issue 16, in order.

Imported by run.py only after it has put the measured source tree first on sys.path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from common import (
    Bridge,
    Dist,
    bench_bridge,
    floor_process,
    median,
    rss_bytes,
    scratch_database,
    scratch_dir,
)
from executor import executor_process
from report import render
from scenarios import (
    burst,
    executor_stages,
    executor_target,
    floor_notify,
    floor_post,
    floor_target,
    measure_following,
    memory_parts,
    pace,
    rotate,
    seed_open_executions,
)
from spy import Profile, children, record, startup_command, summarise

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BENCH_VENV = BENCH / ".venv"
BENCH_PYTHON = BENCH_VENV / "bin" / "python"
PY_SPY = BENCH_VENV / "bin" / "py-spy"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
CHECKPOINT = BENCH / "results" / "partial.json"
PACE_LIMIT = 45  # BRIDGE_MAX_MESSAGES_PER_SECOND's default: the real bridge's pace (target 5)


@dataclass(frozen=True)
class Sizes:
    latency: int = 400  # approvals one at a time, per target (executor, each floor)
    floor: int = 300  # samples of each part of the floor alone
    burst: int = 500
    runs: int = 3
    recover: int = 10_000
    working: int = 10_000
    working_latency: int = 200
    poll_interval: float = 5.0
    poll_windows: int = 6
    peer_latency: int = 100  # its lost notifications cost 5 s each (see ANALYSIS.md)
    pace: int = 100


QUICK = Sizes(
    latency=60,
    floor=60,
    burst=100,
    runs=1,
    recover=1000,
    working=1000,
    working_latency=30,
    poll_windows=2,
    peer_latency=60,
    pace=20,
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
            "--bursts",
            str(sizes.runs),
            "--out",
            str(out),
        ]
        process = await asyncio.create_subprocess_exec(*command, cwd=ROOT)
        if await process.wait() != 0:
            raise RuntimeError("the Procrastinate peer failed")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


async def latency_round(
    dsn: str, bridge: Bridge, executor_pid: int, n: int, prefix: str, budget: float = 600
) -> dict[str, Any]:
    """Approvals one at a time to the executor and to both floors, in rotation (same moments,
    same machine), on the executor's database and bridge. Returns each target's summary and the
    executor's stages."""
    conn = await asyncpg.connect(dsn)
    try:
        async with (
            floor_process(dsn, bridge.url, f"{prefix.lower()}_bare", durable=False),
            floor_process(dsn, bridge.url, f"{prefix.lower()}_durable", durable=True),
        ):
            bare = await floor_target(conn, "bare", f"{prefix.lower()}_bare", f"{prefix}B")
            durable = await floor_target(conn, "durable", f"{prefix.lower()}_durable", f"{prefix}D")
            executor = executor_target(conn, f"{prefix}X")
            await rotate(bridge, [bare, durable, executor], n, budget=budget)
        stages = await executor_stages(conn, bridge, executor)
    finally:
        await conn.close()
    return {
        "floor_bare": Dist.of_seconds(bare.samples).summary(),
        "floor_durable": Dist.of_seconds(durable.samples).summary(),
        "order": Dist.of_seconds(executor.samples).summary(),
        "missing": {t.name: t.missing for t in (bare, durable, executor)},
        "stages": {k: v.summary() for k, v in stages.items()},
    }


async def profile_while(
    pid: int, seconds: float, out: Path, work: Coroutine[Any, Any, Any]
) -> dict[str, object] | None:
    """py-spy on `pid` for `seconds` while `work` runs (no timing is kept from `work`)."""
    spy = asyncio.create_task(asyncio.to_thread(record, PY_SPY, pid, seconds, out))
    await asyncio.sleep(1.0)
    await work
    return _profile(await spy)


async def profile_startup(dsn: str, bridge: Bridge, workdir: Path) -> dict[str, object] | None:
    """py-spy from the executor's first instruction to READY=1 (plus the shutdown)."""
    out = workdir / "startup.txt"
    async with executor_process(
        dsn,
        bridge.url,
        workdir,
        prefix=startup_command(PY_SPY, out),
        ORDER_POLL_INTERVAL="3600",
    ) as spied:
        for child in children(spied.pid):
            os.kill(child, signal.SIGTERM)  # py-spy writes its samples once the program exits
        await spied.process.wait()
    return _profile(summarise(out)) if out.exists() else None


async def run_all(server: str, sizes: Sizes, profile: bool) -> dict[str, Any]:
    workdir = scratch_dir()
    results: dict[str, Any] = {"sizes": sizes.__dict__, "load_before": other_load()}

    # Target 1: approval -> order one at a time, against the bare and the durable floor.
    log("target 1: approvals one at a time, executor and floors in rotation (0 open at start)")
    async with scratch_database(server) as dsn, bench_bridge() as bridge:
        results["floor_notify"] = (await floor_notify(dsn, sizes.floor)).summary()
        post = await floor_post(bridge, sizes.floor, "FLOOR")
        results["floor_post"] = {k: v.summary() for k, v in post.items()}
        # Polls would only add noise here: the pollers sleep (interval 1 h) while we measure.
        async with executor_process(
            dsn, bridge.url, workdir, ORDER_POLL_INTERVAL="3600"
        ) as executor:
            results["ready_fresh"] = executor.ready_after
            idle = await latency_round(dsn, bridge, executor.pid, sizes.latency, "LAT")
            results["idle"] = idle
            log(
                f"  executor p50 {idle['order']['p50']:.2f} ms p99 {idle['order']['p99']:.2f}; "
                f"durable floor p50 {idle['floor_durable']['p50']:.2f} ms; "
                f"bare floor p50 {idle['floor_bare']['p50']:.2f} ms"
            )
            if profile:
                log("  profiling the executor with py-spy (approvals one at a time)")
                conn = await asyncpg.connect(dsn)
                try:
                    target = executor_target(conn, "PROFX")
                    results["profile_latency"] = await profile_while(
                        executor.pid,
                        8,
                        workdir / "latency.txt",
                        rotate(bridge, [target], 400, warmup=0, budget=7),
                    )
                finally:
                    await conn.close()
            results["executor_log_idle"] = executor.log_events()
    checkpoint(results)

    # Target 2: bursts, with the pacing bucket bypassed (bench/unpaced.py).
    log("target 2: bursts (pacing bypassed by bench/unpaced.py)")
    async with (
        scratch_database(server) as dsn,
        bench_bridge() as bridge,
        executor_process(
            dsn, bridge.url, workdir, unpaced=True, ORDER_POLL_INTERVAL="3600"
        ) as executor,
    ):
        bursts = []
        for run in range(sizes.runs):
            bursts.append(await burst(dsn, bridge, sizes.burst, f"BURST{run}X"))
            log(f"  burst {run}: {bursts[-1]['per_second']:.0f} approvals/s")
        results["bursts"] = bursts
        if profile:
            log("  profiling the executor with py-spy (a burst)")
            results["profile_burst"] = await profile_while(
                executor.pid,
                5,
                workdir / "burst.txt",
                burst(dsn, bridge, sizes.burst * 2, "PBURST"),
            )
        results["executor_log_burst"] = executor.log_events()
    checkpoint(results)

    log("Procrastinate peer")
    results["peer"] = await run_peer(server, sizes, workdir)
    peer = Dist.of_seconds(results["peer"]["latency_seconds"])
    results["peer_summary"] = peer.summary()
    peer_rates = [b["per_second"] for b in results["peer"]["bursts"]]
    log(f"  peer p50 {peer.p(50):.2f} ms; bursts {', '.join(f'{r:.0f}' for r in peer_rates)}/s")
    checkpoint(results)

    # Target 4: start-up, with 0 and with `recover` executions to recover (several runs each).
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
            log(f"target 4: start-up with {open_count} to recover: {median(times):.3f} s")
            if profile and open_count == sizes.recover:
                log("  profiling the start-up with py-spy (the executor started under it)")
                results["profile_startup"] = await profile_startup(dsn, bridge, workdir)
    results["startup"] = startup
    checkpoint(results)

    # Target 3: `working` orders followed through the order list.
    level = sizes.working
    log(f"target 3: {level} working orders: list reads, CPU, RSS, then approvals")
    async with scratch_database(server) as dsn, bench_bridge() as bridge:
        await seed_open_executions(dsn, bridge, level, "SEED")
        async with executor_process(
            dsn, bridge.url, workdir, ORDER_POLL_INTERVAL=str(sizes.poll_interval)
        ) as executor:
            entry: dict[str, Any] = {"open": level, "ready": executor.ready_after}
            following = await measure_following(
                bridge, executor.pid, level, sizes.poll_interval, sizes.poll_windows
            )
            entry["following"] = following
            log(
                f"  {following['rss_mb']:.0f} MB, cpu {following['cpu_share']:.2f}, "
                f"{following['list_reads']} list reads, {following['slots_served']}/"
                f"{following['slots']} intervals served, gap p99 {following['gap_p99']:.2f} s"
            )
            entry["latency"] = await latency_round(
                dsn, bridge, executor.pid, sizes.working_latency, "GLAT", budget=90
            )
            entry["rss_after_mb"] = rss_bytes(executor.pid) / 2**20
            log(f"  executor p50 {entry['latency']['order']['p50']:.2f} ms with {level} working")
            if profile:
                log("  profiling the executor with py-spy (following only)")
                results["profile_following"] = await profile_while(
                    executor.pid,
                    2 * sizes.poll_interval,
                    workdir / "following.txt",
                    asyncio.sleep(2 * sizes.poll_interval - 1),
                )
            entry["log"] = executor.log_events()
        entry["memory_parts"] = await memory_parts(dsn, bridge)
        results["working"] = entry
    checkpoint(results)

    # Target 5: the real bridge's pace (jax profile, its real latencies, the default pacing).
    log("target 5: the jax bridge at its real latencies, a paced burst")
    async with (
        scratch_database(server) as dsn,
        bench_bridge(profile="jax", latency_scale=1.0) as bridge,
        executor_process(
            dsn, bridge.url, workdir, BRIDGE_MAX_MESSAGES_PER_SECOND=str(PACE_LIMIT)
        ) as executor,
    ):
        paced = await pace(dsn, bridge, sizes.pace, PACE_LIMIT)
        paced["log"] = executor.log_events()
        results["pace"] = paced
        log(
            f"  last POST at {paced['alone']['last_post']:.2f} s for "
            f"{paced['imposed_seconds']:.2f} s imposed; probes decided p50 "
            f"{paced['probed']['probe_decisions']['p50']:.1f} ms"
        )

    # What target 5 would take: the same, with the order client's pool widened (experiment).
    log("target 5, experiment: the same with the order client's pool at 200")
    async with (
        scratch_database(server) as dsn,
        bench_bridge(profile="jax", latency_scale=1.0) as bridge,
        executor_process(
            dsn,
            bridge.url,
            workdir,
            entry=BENCH / "experiments" / "wide_pool.py",
            BRIDGE_MAX_MESSAGES_PER_SECOND=str(PACE_LIMIT),
        ),
    ):
        wide = await pace(dsn, bridge, sizes.pace, PACE_LIMIT)
        results["pace_wide_pool"] = wide
        log(
            f"  last POST at {wide['alone']['last_post']:.2f} s; probes decided p50 "
            f"{wide['probed']['probe_decisions']['p50']:.1f} ms, max "
            f"{wide['probed']['probe_decisions']['max']:.0f} ms"
        )
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
