"""The measurements of issue 7, each a coroutine returning plain data (seconds unless named)."""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from common import Bridge, CpuMeter, Dist, percentile, rss_bytes

INSERT_SIGNALS = """
INSERT INTO strategy_signals (id, symbol, strategy_id, signal_type, confidence, entry_price,
                              stop_loss, take_profit, reasoning, expires_at)
SELECT gen_random_uuid(), s, 'bench', 'BUY', 0.8, 150, 145, 160, 'bench', now() + interval '3 hours'
FROM unnest($1::text[]) AS s
RETURNING id, symbol
"""
APPROVE_ONE = """
INSERT INTO trade_approvals (id, signal_id, approved, approved_at, approved_by)
VALUES (gen_random_uuid(), $1, true, now(), 'bench')
"""
APPROVE_MANY = """
INSERT INTO trade_approvals (id, signal_id, approved, approved_at, approved_by)
SELECT gen_random_uuid(), s, true, now(), 'bench' FROM unnest($1::uuid[]) AS s
"""
# Seeded working orders: the executor's ledger says `submitted`, the bridge holds the order.
SEED_EXECUTIONS = """
INSERT INTO executions (id, signal_id, state, client_order_id, symbol, action, order_type,
                        order_id, quantity, entry_price, stop_loss, take_profit, risk_amount,
                        risk_percent, position_value, broker_status, attempted_at, submitted_at)
SELECT gen_random_uuid(), gen_random_uuid(), 'submitted', 'bench-' || s, s, 'BUY', 'LMT',
       o, 1, 1, 0.5, 2, 0.5, 0.0000001, 1, 'Submitted', now(), now()
FROM unnest($1::bigint[], $2::text[]) AS t(o, s)
"""
# The bench's own probe (its scratch database only): a NOTIFY when an executions row commits.
CLAIM_PROBE = """
CREATE OR REPLACE FUNCTION bench_claimed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bench_claims', NEW.signal_id::text);
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS bench_claimed ON executions;
CREATE TRIGGER bench_claimed AFTER INSERT ON executions
    FOR EACH ROW WHEN (NEW.state = 'received') EXECUTE FUNCTION bench_claimed();
"""
PENDING_OF_PREFIX = """
SELECT (SELECT count(*) FROM strategy_signals s
        WHERE s.symbol LIKE $1
          AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.signal_id = s.id))
     + (SELECT count(*) FROM executions
        WHERE symbol LIKE $1 AND state IN ('received', 'submitting'))
"""
# Where the time goes: the ledger's own event times (clock_timestamp(), same machine clock).
STAGES = """
SELECT e.signal_id::text AS signal_id,
       extract(epoch FROM min(v.at) FILTER (WHERE v.kind = 'claimed'))::float8 AS claimed,
       extract(epoch FROM min(v.at) FILTER (WHERE v.kind = 'submitting'))::float8 AS submitting
FROM executions e JOIN execution_events v ON v.execution_id = e.id
WHERE e.signal_id = ANY($1::uuid[])
GROUP BY e.signal_id
"""
CLAIM_CREATED_AT = """
SELECT signal_id::text AS signal_id, extract(epoch FROM created_at)::float8 AS at
FROM executions WHERE signal_id = ANY($1::uuid[])
"""


# ---- 2. the floor -------------------------------------------------------------------------------


async def floor_notify(dsn: str, n: int) -> Dist:
    """Bare asyncpg: NOTIFY committed on one connection -> the LISTEN callback on another.
    t0 just before COMMIT, as for the approvals."""
    sender = await asyncpg.connect(dsn)
    listener = await asyncpg.connect(dsn)
    heard: dict[str, float] = {}
    events: dict[str, asyncio.Event] = {}

    def on_notify(_c: object, _pid: int, _channel: str, payload: str) -> None:
        heard[payload] = time.time()
        event = events.get(payload)
        if event is not None:
            event.set()

    await listener.add_listener("bench_floor", on_notify)
    samples: list[float] = []
    try:
        for i in range(-20, n):
            key = str(i)
            events[key] = asyncio.Event()
            transaction = sender.transaction()
            await transaction.start()
            await sender.execute("SELECT pg_notify('bench_floor', $1)", key)
            t0 = time.time()
            await transaction.commit()
            await asyncio.wait_for(events[key].wait(), 10)
            if i >= 0:  # the first 20 warm up
                samples.append(heard[key] - t0)
    finally:
        await listener.close()
        await sender.close()
    return Dist.of_seconds(samples)


async def floor_post(bridge: Bridge, n: int, prefix: str) -> dict[str, Dist]:
    """Bare httpx: POST /orders to the same bridge. `arrival` = the bridge's created_at minus
    the time just before the POST (what the pipeline measures); `round_trip` = the whole call."""
    sent: dict[str, float] = {}
    round_trips: list[float] = []
    async with httpx.AsyncClient(base_url=bridge.url, timeout=10) as client:
        for i in range(-20, n):
            symbol = f"{prefix}{i + 20:05d}"
            body = {
                "symbol": symbol,
                "action": "BUY",
                "quantity": 1,
                "order_type": "LMT",
                "limit_price": 1,
            }
            t0 = time.time()
            start = time.perf_counter()
            response = await client.post("/orders", json=body)
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            if i >= 0:
                sent[symbol] = t0
                round_trips.append(elapsed)
    orders = (await bridge.get("/bench/orders", prefix=prefix))["orders"]
    arrival = [o["created_at"] - sent[o["symbol"]] for o in orders if o["symbol"] in sent]
    return {"arrival": Dist.of_seconds(arrival), "round_trip": Dist.of_seconds(round_trips)}


# ---- 1. approval -> order, one at a time ---------------------------------------------------------


@dataclass
class LatencyResult:
    order: Dist  # commit -> order created at the bridge
    claim: Dist  # commit -> executions row committed (heard through the bench's probe)
    claim_started: Dist  # commit -> executions.created_at (the claim transaction's now())
    missing: int
    stages: dict[str, Dist] | None = None  # commit -> claimed -> submitting -> at the bridge

    def summary(self) -> dict[str, Any]:
        return {
            "order": self.order.summary(),
            "claim": self.claim.summary(),
            "claim_started": self.claim_started.summary(),
            "missing": self.missing,
            "stages": {k: v.summary() for k, v in (self.stages or {}).items()},
        }


async def insert_signals(conn: asyncpg.Connection, symbols: list[str]) -> list[tuple[UUID, str]]:
    rows = await conn.fetch(INSERT_SIGNALS, symbols)
    by_symbol = {row["symbol"]: row["id"] for row in rows}
    return [(by_symbol[s], s) for s in symbols]


async def approval_latency(
    dsn: str, bridge: Bridge, n: int, prefix: str, *, budget: float = 900
) -> LatencyResult:
    """n approvals one at a time (fewer if `budget` seconds run out: see `.order.n`)."""
    conn = await asyncpg.connect(dsn)
    listener = await asyncpg.connect(dsn)
    await conn.execute(CLAIM_PROBE)
    claims: dict[str, float] = {}

    def on_claim(_c: object, _pid: int, _channel: str, payload: str) -> None:
        claims.setdefault(payload, time.time())

    await listener.add_listener("bench_claims", on_claim)
    try:
        signals = await insert_signals(conn, [f"{prefix}{i:05d}" for i in range(n)])
        committed: dict[str, float] = {}
        order_latency: list[float] = []
        arrived: dict[str, float] = {}
        missing = 0
        stop_at = time.monotonic() + budget
        for signal_id, symbol in signals:
            if time.monotonic() > stop_at:
                break
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute(APPROVE_ONE, signal_id)
            t0 = time.time()
            await transaction.commit()
            committed[str(signal_id)] = t0
            try:
                order = await bridge.wait_order(symbol, timeout=30)
            except httpx.HTTPStatusError:
                missing += 1
                continue
            order_latency.append(order["created_at"] - t0)
            arrived[str(signal_id)] = order["created_at"]
        await asyncio.sleep(0.2)
        claim_latency = [claims[s] - t0 for s, t0 in committed.items() if s in claims]
        rows = await conn.fetch(CLAIM_CREATED_AT, [UUID(s) for s in committed])
        claim_started = [row["at"] - committed[row["signal_id"]] for row in rows]
        stages: dict[str, list[float]] = {
            "to_claimed": [],
            "to_submitting": [],
            "to_bridge": [],
            "to_snapshot": [],
            "snapshot_to_submitting": [],
        }
        snapshots = snapshot_answers(committed, (await bridge.get("/bench/reads"))["reads"])
        for row in await conn.fetch(STAGES, [UUID(s) for s in committed]):
            sid, claimed, submitting = row["signal_id"], row["claimed"], row["submitting"]
            if claimed is None or submitting is None or sid not in arrived:
                continue
            stages["to_claimed"].append(claimed - committed[sid])
            stages["to_submitting"].append(submitting - claimed)
            stages["to_bridge"].append(arrived[sid] - submitting)
            if sid in snapshots:
                stages["to_snapshot"].append(snapshots[sid] - committed[sid])
                stages["snapshot_to_submitting"].append(submitting - snapshots[sid])
    finally:
        await listener.close()
        await conn.close()
    return LatencyResult(
        Dist.of_seconds(order_latency),
        Dist.of_seconds(claim_latency),
        Dist.of_seconds(claim_started),
        missing,
        {k: Dist.of_seconds(v) for k, v in stages.items()},
    )


def snapshot_answers(
    committed: dict[str, float], reads: list[tuple[str, float, float]]
) -> dict[str, float]:
    """Approvals one at a time: signal id -> when the bridge answered the last of the account
    snapshot reads (`GET /account`, `GET /positions`) that arrived after that approval's COMMIT
    and before the next one's. Approvals without both reads are left out."""
    order = sorted(committed.items(), key=lambda item: item[1])
    starts = [t0 for _, t0 in order]
    answered: dict[str, float] = {}
    paths: dict[str, set[str]] = {}
    for path, start, end in reads:
        i = bisect.bisect_right(starts, start) - 1
        if i < 0:
            continue
        sid = order[i][0]
        answered[sid] = max(answered.get(sid, end), end)
        paths.setdefault(sid, set()).add(path)
    return {sid: at for sid, at in answered.items() if len(paths[sid]) == 2}


# ---- 4. burst -----------------------------------------------------------------------------------


async def burst(dsn: str, bridge: Bridge, n: int, prefix: str) -> dict[str, Any]:
    """n approvals committed in one transaction; until all n orders are at the bridge."""
    conn = await asyncpg.connect(dsn)
    try:
        signals = await insert_signals(conn, [f"{prefix}{i:05d}" for i in range(n)])
        before = (await bridge.get("/bench/order-posts", count=0, timeout=0))["order_posts"]
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(APPROVE_MANY, [signal_id for signal_id, _ in signals])
        t0 = time.time()
        await transaction.commit()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = await bridge.get("/bench/order-posts", count=before + n, timeout=2)
            if answer["order_posts"] >= before + n:
                break
            # An execution that ended without an order (failed, unknown) never arrives.
            pending = await conn.fetchval(PENDING_OF_PREFIX, prefix + "%")
            if pending == 0:
                break
        orders = (await bridge.get("/bench/orders", prefix=prefix))["orders"]
        states = await conn.fetch(
            "SELECT state, count(*) AS n FROM executions WHERE symbol LIKE $1 GROUP BY state",
            prefix + "%",
        )
    finally:
        await conn.close()
    arrivals = sorted(o["created_at"] - t0 for o in orders)
    last = arrivals[-1] if arrivals else float("nan")
    return {
        "n": n,
        "orders": len(arrivals),
        "all_at_bridge_seconds": last,
        "per_second": len(arrivals) / last if arrivals else 0.0,
        "first_ms": arrivals[0] * 1000 if arrivals else float("nan"),
        "p50_ms": percentile(arrivals, 50) * 1000,
        "states": {row["state"]: row["n"] for row in states},
    }


# ---- 5. pollers ----------------------------------------------------------------------------------


async def seed_open_executions(dsn: str, bridge: Bridge, n: int, prefix: str) -> None:
    """n working orders at the bridge and n `submitted` executions for them in the ledger."""
    if n <= 0:
        return
    orders = (await bridge.post("/bench/seed", {"count": n, "prefix": prefix}))["orders"]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SEED_EXECUTIONS, [o for o, _ in orders], [s for _, s in orders])
    finally:
        await conn.close()


async def measure_pollers(
    bridge: Bridge, pid: int, n: int, interval: float, windows: int
) -> dict[str, Any]:
    """Over `windows` poll intervals (after one interval of warm-up): GET /orders/{id} counted at
    the bridge, the gaps between successive polls of one order, RSS and CPU of the executor."""
    await asyncio.sleep(interval + 1.0)
    await bridge.post("/bench/reset-stats", {})
    executor_cpu, bridge_cpu = CpuMeter(pid), CpuMeter(bridge.pid)
    rss: list[int] = []
    end = time.monotonic() + interval * windows
    while time.monotonic() < end:
        rss.append(rss_bytes(pid))
        await asyncio.sleep(0.5)
    executor_share, bridge_share = executor_cpu.share(), bridge_cpu.share()
    stats = await bridge.get("/bench/stats")
    polls = stats["counts"].get("GET /orders/{id}", 0)
    gaps: list[float] = stats["gaps"]
    elapsed: float = stats["elapsed"]
    needed = n / interval
    achieved = polls / elapsed if elapsed else 0.0
    late = sum(1 for g in gaps if g > interval * 1.2)
    gap_p99 = percentile(gaps, 99)
    return {
        "n": n,
        "interval": interval,
        "window_seconds": elapsed,
        "rss_mb": max(rss) / 2**20 if rss else float("nan"),
        "cpu_share": executor_share,
        "bridge_cpu_share": bridge_share,
        "polls": polls,
        "polls_per_second_needed": needed,
        "polls_per_second": achieved,
        "polled_orders": stats["polled_orders"],
        "gap_p50": percentile(gaps, 50),
        "gap_p99": gap_p99,
        "gap_max": max(gaps) if gaps else float("nan"),
        "late_fraction": late / len(gaps) if gaps else 1.0,
        "on_time": bool(gaps)
        and achieved >= 0.95 * needed
        and stats["polled_orders"] >= n
        and gap_p99 <= interval * 1.2,
    }
