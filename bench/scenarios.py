"""The measurements of issue 16, each a coroutine returning plain data (seconds unless named)."""

from __future__ import annotations

import asyncio
import bisect
import gc
import itertools
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
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
       extract(epoch FROM min(v.at) FILTER (WHERE v.kind = 'execution.claimed'))::float8
           AS claimed,
       extract(epoch FROM min(v.at) FILTER (WHERE v.kind = 'order.submitting'))::float8
           AS submitting
FROM executions e JOIN execution_events v ON v.execution_id = e.id
WHERE e.signal_id = ANY($1::uuid[])
GROUP BY e.signal_id
"""
# The floors' own tables (in the floor's scratch database): the driver's approval-like row, and
# the row the durable floor commits before its POST (unique, as a claim is).
FLOOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_floor_approvals (symbol text PRIMARY KEY, at timestamptz);
CREATE TABLE IF NOT EXISTS bench_floor_claims (symbol text PRIMARY KEY, at timestamptz);
"""
FLOOR_APPROVE = "INSERT INTO bench_floor_approvals (symbol, at) VALUES ($1, clock_timestamp())"

# The executor's pacer (BRIDGE_MAX_MESSAGES_PER_SECOND=50, a bracket is 3 messages, window
# 1.05 s) spaces brackets 63 ms apart. Approvals timed one at a time are committed at least this
# long after the previous one, so that what is timed is the executor, never the pacer's wait.
SPACING = 0.025  # before each commit; three targets in rotation: >= 75 ms per target


# ---- the parts of the floor, alone --------------------------------------------------------------


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


def bracket_body(symbol: str) -> dict[str, Any]:
    """The body the executor POSTs for a benchmark signal (entry 150, stop 145, target 160)."""
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


async def floor_post(bridge: Bridge, n: int, prefix: str) -> dict[str, Dist]:
    """Bare httpx: POST /orders/bracket to the same bridge. `arrival` = the bridge's created_at
    minus the time just before the POST; `round_trip` = the whole call."""
    sent: dict[str, float] = {}
    round_trips: list[float] = []
    async with httpx.AsyncClient(base_url=bridge.url, timeout=10) as client:
        for i in range(-20, n):
            symbol = f"{prefix}{i + 20:05d}"
            t0 = time.time()
            start = time.perf_counter()
            response = await client.post("/orders/bracket", json=bracket_body(symbol))
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            if i >= 0:
                sent[symbol] = t0
                round_trips.append(elapsed)
    orders = (await bridge.get("/bench/orders", prefix=prefix))["orders"]
    arrival = [o["created_at"] - sent[o["symbol"]] for o in orders if o["symbol"] in sent]
    return {"arrival": Dist.of_seconds(arrival), "round_trip": Dist.of_seconds(round_trips)}


# ---- approval -> order, one at a time, floors and executor in rotation --------------------------


@dataclass
class Target:
    """Something that turns a committed row into an order at the bridge: the executor, or one
    of the floor processes. `commit(symbol)` commits the row and returns t0 (just before COMMIT)."""

    name: str
    prefix: str
    commit: Callable[[str], Awaitable[float]]
    prepare: Callable[[list[str]], Awaitable[None]] | None = None
    samples: list[float] = field(default_factory=list)
    committed: dict[str, float] = field(default_factory=dict)  # symbol -> t0
    arrived: dict[str, float] = field(default_factory=dict)  # symbol -> created_at
    missing: int = 0


async def commit_in(conn: asyncpg.Connection, sql: str, *args: Any) -> float:
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute(sql, *args)
    t0 = time.time()
    await transaction.commit()
    return t0


async def floor_target(conn: asyncpg.Connection, name: str, channel: str, prefix: str) -> Target:
    """A floor process listening on `channel` (bench/floor.py): the row and its NOTIFY are
    committed in one transaction, as an approval and its trigger's NOTIFY are."""
    await conn.execute(FLOOR_SCHEMA)

    async def commit(symbol: str) -> float:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(FLOOR_APPROVE, symbol)
        await conn.execute("SELECT pg_notify($1, $2)", channel, symbol)
        t0 = time.time()
        await transaction.commit()
        return t0

    return Target(name, prefix, commit)


def executor_target(conn: asyncpg.Connection, prefix: str, name: str = "executor") -> Target:
    signal_ids: dict[str, UUID] = {}

    async def prepare(symbols: list[str]) -> None:
        for signal_id, symbol in await insert_signals(conn, symbols):
            signal_ids[symbol] = signal_id

    async def commit(symbol: str) -> float:
        return await commit_in(conn, APPROVE_ONE, signal_ids[symbol])

    target = Target(name, prefix, commit, prepare)
    target.signal_ids = signal_ids  # type: ignore[attr-defined]
    return target


async def insert_signals(conn: asyncpg.Connection, symbols: list[str]) -> list[tuple[UUID, str]]:
    rows = await conn.fetch(INSERT_SIGNALS, symbols)
    by_symbol = {row["symbol"]: row["id"] for row in rows}
    return [(by_symbol[s], s) for s in symbols]


async def rotate(
    bridge: Bridge, targets: list[Target], n: int, *, warmup: int = 20, budget: float = 600
) -> None:
    """n approvals per target, one at a time, the targets in turn (so every target sees the
    same machine at the same moments); each waits for its order before the next commit.
    The first `warmup` rounds are not counted. Stops early when `budget` seconds run out."""
    for target in targets:
        if target.prepare is not None:
            await target.prepare([f"{target.prefix}{i:05d}" for i in range(n + warmup)])
    stop_at = time.monotonic() + budget
    for i in range(n + warmup):
        if time.monotonic() > stop_at:
            break
        for target in targets:
            await asyncio.sleep(SPACING)
            symbol = f"{target.prefix}{i:05d}"
            t0 = await target.commit(symbol)
            try:
                order = await bridge.wait_order(symbol, timeout=30)
            except httpx.HTTPStatusError:
                target.missing += 1
                continue
            if i >= warmup:
                target.samples.append(order["created_at"] - t0)
                target.committed[symbol] = t0
                target.arrived[symbol] = order["created_at"]


async def executor_stages(
    conn: asyncpg.Connection, bridge: Bridge, target: Target
) -> dict[str, Dist]:
    """Where the executor's time goes, from the ledger's event times and the bridge's clock."""
    signal_ids: dict[str, UUID] = target.signal_ids  # type: ignore[attr-defined]
    by_signal = {str(signal_ids[s]): s for s in target.committed}
    committed = {sid: target.committed[s] for sid, s in by_signal.items()}
    stages: dict[str, list[float]] = {
        "to_claimed": [],
        "to_submitting": [],
        "to_bridge": [],
        "to_snapshot": [],
        "snapshot_to_submitting": [],
    }
    snapshots = snapshot_answers(committed, (await bridge.get("/bench/reads"))["reads"])
    rows = await conn.fetch(STAGES, [UUID(s) for s in committed])
    for row in rows:
        sid, claimed, submitting = row["signal_id"], row["claimed"], row["submitting"]
        arrived = target.arrived.get(by_signal[sid])
        if claimed is None or submitting is None or arrived is None:
            continue
        stages["to_claimed"].append(claimed - committed[sid])
        stages["to_submitting"].append(submitting - claimed)
        stages["to_bridge"].append(arrived - submitting)
        if sid in snapshots:
            stages["to_snapshot"].append(snapshots[sid] - committed[sid])
            stages["snapshot_to_submitting"].append(submitting - snapshots[sid])
    return {k: Dist.of_seconds(v) for k, v in stages.items()}


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


# ---- burst --------------------------------------------------------------------------------------


async def burst(dsn: str, bridge: Bridge, n: int, prefix: str) -> dict[str, Any]:
    """n approvals committed in one transaction; until all n orders are at the bridge."""
    conn = await asyncpg.connect(dsn)
    try:
        signals = await insert_signals(conn, [f"{prefix}{i:05d}" for i in range(n)])
        before = (await bridge.get("/bench/order-posts", count=0, timeout=0))["order_posts"]
        # t0 before the INSERT, as the peer's is before its batch INSERT: both include writing
        # and committing the n rows.
        t0 = time.time()
        await conn.execute(APPROVE_MANY, [signal_id for signal_id, _ in signals])
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


# ---- following 10,000 working orders ------------------------------------------------------------


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


async def measure_following(
    bridge: Bridge, pid: int, n: int, interval: float, windows: int
) -> dict[str, Any]:
    """Over `windows` intervals (after one interval of warm-up), from the paper bridge's own
    request log: the order list reads (`GET /orders`, each answering every working order) and the
    per-order reads (`GET /orders/{id}`); RSS and CPU of the executor.

    An order's read is needed once per interval: the window is cut into `windows` slots of one
    interval, and a slot is served when at least one list read arrived in it (every one of the n
    orders is in every list: the bench bridge's orders never fill). Gaps are between successive
    list reads, each one a gap for every order."""
    await asyncio.sleep(interval + 1.0)
    await bridge.clear_requests()
    executor_cpu, bridge_cpu = CpuMeter(pid), CpuMeter(bridge.pid)
    start = time.monotonic()
    end = start + interval * windows
    rss: list[int] = []
    while time.monotonic() < end:
        rss.append(rss_bytes(pid))
        await asyncio.sleep(0.5)
    executor_share, bridge_share = executor_cpu.share(), bridge_cpu.share()
    requests = await bridge.requests()
    stats = await bridge.get("/bench/stats")
    lists = sorted(
        r["received_at"]
        for r in requests
        if r["method"] == "GET" and r["path"] == "/orders" and start <= r["received_at"] < end
    )
    per_order = sum(
        1
        for r in requests
        if r["method"] == "GET"
        and r["path"].startswith("/orders/")
        and start <= r["received_at"] < end
    )
    served = sum(
        1
        for k in range(windows)
        if any(start + k * interval <= t < start + (k + 1) * interval for t in lists)
    )
    gaps = [b - a for a, b in itertools.pairwise(lists)]
    gap_p99 = percentile(gaps, 99)
    fraction = served / windows
    return {
        "n": n,
        "interval": interval,
        "window_seconds": end - start,
        "rss_mb": max(rss) / 2**20 if rss else float("nan"),
        "cpu_share": executor_share,
        "bridge_cpu_share": bridge_share,
        "list_reads": len(lists),
        "slots": windows,
        "slots_served": served,
        "order_reads_needed": n * windows,
        "order_reads_done": n * served,
        "read_fraction": fraction,
        "per_order_reads": per_order,
        "requests_logged": len(requests),
        "bridge_orders": stats["order_count"],
        "gaps": gaps,
        "gap_p50": percentile(gaps, 50),
        "gap_p99": gap_p99,
        "gap_max": max(gaps) if gaps else float("nan"),
        "on_time": bool(gaps) and fraction >= 0.99 and gap_p99 <= 1.2 * interval,
    }


async def memory_parts(dsn: str, bridge: Bridge) -> dict[str, float]:
    """What one copy of the working set costs in memory, measured in this process with
    tracemalloc (MB): the not-final executions as the store returns them (the pollers, the
    recovery, the gauges and the reconciler each read them), and one order list read as the
    client parses it (kept: the `OrderIndex`; peak: while parsing)."""
    from trade_executor.broker.client import BrokerClient
    from trade_executor.broker.orderbook import order_index
    from trade_executor.domain.states import ExecutionState
    from trade_executor.store.postgres import PgStore, create_pool

    pool = await create_pool(dsn)
    client = BrokerClient(bridge.url)
    try:
        store = PgStore(pool)
        gc.collect()
        tracemalloc.start()
        executions = await store.executions_in(
            [ExecutionState.SUBMITTED, ExecutionState.PARTIALLY_FILLED]
        )
        kept, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        index = await order_index(client)
        listed, list_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        count = len(executions)
        del executions, index
    finally:
        await client.aclose()
        await pool.close()
    return {
        "executions": count,
        "executions_kept_mb": kept / 2**20,
        "executions_peak_mb": peak / 2**20,
        "bytes_per_execution": kept / max(count, 1),
        "list_kept_mb": (listed - base) / 2**20,
        "list_peak_mb": (list_peak - base) / 2**20,
    }


# ---- the real bridge's pace ---------------------------------------------------------------------


def _wall(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def decision_times(conn: asyncpg.Connection, committed: dict[UUID, float]) -> list[float]:
    """COMMIT -> `order.submitting` (the decision made and the intent written), per signal."""
    rows = await conn.fetch(STAGES, list(committed))
    return [
        row["submitting"] - committed[UUID(row["signal_id"])]
        for row in rows
        if row["submitting"] is not None
    ]


async def pace(
    dsn: str, bridge: Bridge, n: int, limit: int, *, probe_every: float = 0.3, idle_probes: int = 8
) -> dict[str, Any]:
    """Against the jax profile at its real latencies, BRIDGE_MAX_MESSAGES_PER_SECOND=`limit`:

    1. `idle_probes` approvals one at a time, nothing else going on: COMMIT -> decision;
    2. a burst of n approvals in one COMMIT: when each bracket POST reached the bridge (its
       request log, stamped on arrival) and when the bridge had placed it;
    3. the same burst again, with an approval for another symbol committed every `probe_every`
       seconds while its POSTs wait in the pacer: COMMIT -> decision of each of those."""
    conn = await asyncpg.connect(dsn)
    try:
        idle: dict[UUID, float] = {}
        idle_signals = await insert_signals(conn, [f"IDLE{i:03d}" for i in range(idle_probes)])
        before = (await bridge.get("/bench/order-posts", count=0, timeout=0))["order_posts"]
        for signal_id, _ in idle_signals:
            await asyncio.sleep(0.25)
            idle[signal_id] = await commit_in(conn, APPROVE_ONE, signal_id)
        # Their POSTs answered (5.7 s each at the bridge): the burst starts with no request of
        # ours in flight.
        await bridge.get("/bench/order-posts", count=before + idle_probes, timeout=30)
        await bridge.clear_requests()
        alone = await _paced_burst(conn, bridge, n, "PACEA", limit, probe_every=None)
        # The first burst's POSTs answered (the last ones 5.7 s after they arrived).
        await bridge.get("/bench/order-posts", count=before + idle_probes + n, timeout=30)
        await bridge.clear_requests()
        probed = await _paced_burst(conn, bridge, n, "PACEB", limit, probe_every=probe_every)
        idle_decisions = await decision_times(conn, idle)
    finally:
        await conn.close()
    return {
        "n": n,
        "limit": limit,
        "imposed_seconds": n * 3 / limit,
        "alone": alone,
        "probed": probed,
        "idle_decision": Dist.of_seconds(idle_decisions).summary(),
    }


async def _paced_burst(
    conn: asyncpg.Connection,
    bridge: Bridge,
    n: int,
    prefix: str,
    limit: int,
    *,
    probe_every: float | None,
) -> dict[str, Any]:
    signals = await insert_signals(conn, [f"{prefix}{i:03d}" for i in range(n)])
    probe_signals = await insert_signals(conn, [f"{prefix}P{i:03d}" for i in range(200)])
    before = (await bridge.get("/bench/order-posts", count=0, timeout=0))["order_posts"]
    t0 = await commit_in(conn, APPROVE_MANY, [signal_id for signal_id, _ in signals])
    probes: dict[UUID, float] = {}
    imposed = n * 3 / limit
    if probe_every is not None:
        # Approvals for other symbols while the burst's POSTs wait in the pacer.
        for signal_id, _ in probe_signals:
            await asyncio.sleep(probe_every)
            if time.time() - t0 > imposed * 0.9:
                break
            probes[signal_id] = await commit_in(conn, APPROVE_ONE, signal_id)
    expected = before + n + len(probes)
    deadline = time.monotonic() + 60 + imposed
    while time.monotonic() < deadline:
        answer = await bridge.get("/bench/order-posts", count=expected, timeout=2)
        if answer["order_posts"] >= expected:
            break
        if await conn.fetchval(PENDING_OF_PREFIX, prefix + "%") == 0:
            break
    requests = await bridge.requests()
    posts = [
        r
        for r in requests
        if r["method"] == "POST"
        and r["path"] == "/orders/bracket"
        and isinstance(r["body"], dict)
        and str(r["body"].get("symbol", "")).startswith(prefix)
    ]
    burst_posts = sorted(
        _wall(r["received_wall"]) - t0
        for r in posts
        if not str(r["body"]["symbol"]).startswith(prefix + "P")
    )
    listed = (await bridge.get("/bench/orders", prefix=prefix))["orders"]
    placed = sorted(
        o["created_at"] - t0 for o in listed if not o["symbol"].startswith(prefix + "P")
    )
    # The limit at the bridge's side: the most order messages in any one-second window.
    arrivals = sorted(r["received_at"] for r in posts)
    busiest = 0
    for i, at in enumerate(arrivals):
        j = bisect.bisect_left(arrivals, at + 1.0)
        busiest = max(busiest, 3 * (j - i))
    decisions = await decision_times(conn, probes) if probes else []
    last_post = burst_posts[-1] if burst_posts else float("nan")
    return {
        "orders": len(burst_posts),
        "first_post": burst_posts[0] if burst_posts else float("nan"),
        "last_post": last_post,
        "last_placed": placed[-1] if placed else float("nan"),
        "ratio": last_post / imposed,
        "busiest_second_messages": busiest,
        "probes": len(probes),
        "probe_decisions": Dist.of_seconds(decisions).summary(),
        "probe_decision_max_s": max(decisions) if decisions else float("nan"),
        "probes_decided": len(decisions),
        "post_arrivals": [round(t, 3) for t in burst_posts],
        "probe_decision_seconds": [round(t, 4) for t in decisions],
    }
