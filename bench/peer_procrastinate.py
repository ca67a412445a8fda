"""The peer: Procrastinate on the same PostgreSQL, run with the bench venv's interpreter.

`python bench/peer_procrastinate.py --dsn DSN --latency N --burst M --out result.json`

Applies Procrastinate's schema to DSN (an empty scratch database), starts a worker in its own
process (as the executor runs in its own), then measures:
- defer -> job start, N jobs deferred one at a time (each waits for its start before the next):
  t0 = time.time() just before `defer_async` (the INSERT + COMMIT round trip), start =
  time.time() at the first line of the task;
- bursts (`--bursts`, default 3): M jobs deferred in one statement (`batch_defer_async`), until
  the last one started.
The task reports its start over a UNIX datagram socket: no polling on either side.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import procrastinate

WORKER_CONCURRENCY = 10


logging.getLogger("procrastinate").setLevel(logging.ERROR)


def make_app(dsn: str, report_to: str | None) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if report_to else None

    @app.task(name="bench_job", queue="bench")
    async def bench_job(i: int) -> None:
        started = time.time()
        if sender is not None and report_to is not None:
            sender.sendto(f"{i} {started!r}".encode(), report_to)

    return app


async def run_worker(dsn: str, report_to: str) -> None:
    app = make_app(dsn, report_to)
    async with app.open_async():
        await app.run_worker_async(
            queues=["bench"],
            concurrency=WORKER_CONCURRENCY,
            listen_notify=True,
            wait=True,
            install_signal_handlers=True,
            delete_jobs="never",
        )


async def drive(dsn: str, latency_n: int, burst_n: int, bursts_n: int) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    address = str(workdir / "starts.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.setblocking(False)
    loop = asyncio.get_running_loop()
    app = make_app(dsn, None)
    job = app.tasks["bench_job"]
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        worker = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "worker", "--dsn", dsn, "--report-to", address
        )
        try:

            async def started(i: int) -> float:
                while True:
                    data = await loop.sock_recv(receiver, 256)
                    index, at = data.decode().split()
                    if int(index) == i:
                        return float(at)

            # Warm up: the worker is up and listening once a job runs.
            for i in range(-20, 0):
                await job.defer_async(i=i)
                await asyncio.wait_for(started(i), 60)
            latencies = []
            for i in range(latency_n):
                t0 = time.time()
                await job.defer_async(i=i)
                latencies.append(await asyncio.wait_for(started(i), 30) - t0)
            bursts: list[dict[str, float]] = []
            for run in range(bursts_n if burst_n else 0):
                ids = range(100_000 * (run + 1), 100_000 * (run + 1) + burst_n)
                t0 = time.time()
                await job.batch_defer_async(*({"i": i} for i in ids))
                committed = time.time()
                seen: list[float] = []
                while len(seen) < burst_n:
                    data = await asyncio.wait_for(loop.sock_recv(receiver, 256), 120)
                    index, at = data.decode().split()
                    if int(index) in ids:
                        seen.append(float(at))
                last = max(seen) - t0
                bursts.append(
                    {
                        "n": burst_n,
                        "defer_seconds": committed - t0,
                        "all_started_seconds": last,
                        "per_second": burst_n / last,
                    }
                )
            return {
                "latency_seconds": latencies,
                "bursts": bursts,
                "worker_concurrency": WORKER_CONCURRENCY,
                "version": importlib.metadata.version("procrastinate"),
            }
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(worker.wait(), 30)
            except TimeoutError:
                worker.kill()
                await worker.wait()
            receiver.close()
            os.unlink(address)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="drive", choices=["drive", "worker"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--report-to")
    parser.add_argument("--latency", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--bursts", type=int, default=3, help="how many bursts")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.mode == "worker":
        asyncio.run(run_worker(args.dsn, args.report_to))
        return
    result = asyncio.run(drive(args.dsn, args.latency, args.burst, args.bursts))
    text = json.dumps(result)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
