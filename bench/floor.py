"""The floor: the least any design can take from an approval's COMMIT to its order at the bridge.

    python bench/floor.py --dsn DSN --bridge URL --channel NAME [--durable]

Run with the project's interpreter, in its own process as the executor runs in its own, on the
same stack (asyncpg, httpx). It LISTENs on NAME; for each notification (its payload is a symbol)
it POSTs the benchmark's bracket for that symbol to the bridge, the body the executor sends.
With `--durable` it first INSERTs one row keyed by the symbol and COMMITs it (the server's
`synchronous_commit`, on by default: a WAL flush), which is the one durable write before the POST
that an exactly-once design cannot do without. Each notification is served by its own task, as
the executor serves approvals. Prints `READY` once it listens; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import asyncpg
import httpx

CLAIM = "INSERT INTO bench_floor_claims (symbol, at) VALUES ($1, clock_timestamp())"


def bracket(symbol: str) -> dict[str, Any]:
    # Kept equal to scenarios.bracket_body (this file runs without bench/ on sys.path).
    return {
        "symbol": symbol,
        "action": "BUY",
        "quantity": 1,
        "entry_order_type": "LMT",
        "entry_limit_price": 150,
        "stop_loss": 145,
        "take_profit": 160,
        "order_ref": symbol,
    }


async def serve(dsn: str, bridge: str, channel: str, durable: bool) -> None:
    listener = await asyncpg.connect(dsn)
    writer = await asyncpg.connect(dsn)
    tasks: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=bridge, timeout=10) as client:

        async def handle(symbol: str) -> None:
            if durable:
                await writer.execute(CLAIM, symbol)  # autocommit: one synchronous COMMIT
            response = await client.post("/orders/bracket", json=bracket(symbol))
            response.raise_for_status()

        def on_notify(_c: object, _pid: int, _channel: str, payload: str) -> None:
            task = asyncio.get_running_loop().create_task(handle(payload))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await listener.add_listener(channel, on_notify)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        print("READY", flush=True)
        await stop.wait()
    await listener.close()
    await writer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--durable", action="store_true")
    args = parser.parse_args()
    asyncio.run(serve(args.dsn, args.bridge, args.channel, args.durable))


if __name__ == "__main__":
    main()
