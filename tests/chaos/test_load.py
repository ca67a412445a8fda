"""Load: 1000 approvals committed in bursts while orders fill, brackets close and pollers run.

The market is driven by the test (`/admin/step`), so that between two steps nothing fills: a
sample of the bridge's book (symbols with a position or a working entry) is then exact, and the
open-positions limit is checked all along the run, not only at the end. Both risk gates bind:
MAX_OPEN_POSITIONS caps what is open at once, MAX_DAILY_LOSS caps the day's total.

At the end: every execution is final (or working with a poller), the invariants of
`check_invariants` hold, the gates' rejections are the only refusals, and no error-level line
was logged.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anyio
import anyio.to_thread
import asyncpg
import httpx
import pytest

from tests.support import ThreadedBridge
from tests.support.chaos import FINAL, WORKING, Harness, check_invariants, wait_settled

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APPROVALS = 1000
BURST = 100


@dataclass(frozen=True)
class Scenario:
    open_limit: int
    daily_loss: Decimal
    entry: Decimal  # stop 1 % below, target 2 % above; at most 2 shares a trade
    rejections: frozenset[str]
    # Seconds between bursts. Orders reach the bridge at the pacing limit (45 messages/s, a
    # bracket counting 3: 15 a second), so open slots turn over at about that rate: a pause
    # long enough for the open ones to reach the bridge and close lets the daily budget bind.
    pause: float = 1.0

    def env(self) -> dict[str, str]:
        return {
            "MAX_OPEN_POSITIONS": str(self.open_limit),
            "MAX_DAILY_LOSS": str(self.daily_loss),
            "MAX_POSITION_SIZE": "2",
            "ORDER_POLL_INTERVAL": "0.5",
            "ORDER_POLL_TIMEOUT": "120",
            "SWEEP_INTERVAL": "2",
        }

    @property
    def risk_per_share(self) -> Decimal:
        return self.entry / 100


SCENARIOS = {
    # Both gates bind: at most 40 open at once; risk 2.00 a trade against a day's budget of
    # 300.00, so 150 orders and the bursts exhaust the budget long before the last one.
    "gates-bind": Scenario(
        40,
        Decimal(300),
        Decimal(100),
        frozenset({"risk: max_open_positions", "risk: max_daily_loss"}),
        pause=3.0,
    ),
    # Nothing binds: 1000 orders at the bridge (20.00 each, 20000 of buying power), each once.
    "all-placed": Scenario(2000, Decimal(1000000), Decimal(10), frozenset()),
}


@pytest.fixture
def bridge_options() -> dict[str, Any]:
    # The price moves only when the test steps it; 0.4 % a tick closes a bracket in a few ticks.
    return {"tick_interval": 0.0, "volatility": Decimal("0.004")}


INSERT_SIGNALS = """
INSERT INTO strategy_signals (id, symbol, strategy_id, signal_type, confidence, entry_price,
                              stop_loss, take_profit, reasoning, expires_at)
SELECT id, 'L' || upper(substr(md5(id::text), 1, 9)), 'load', 'BUY', 0.7, $2::numeric,
       $2::numeric * 0.99, $2::numeric * 1.02, 'load', now() + interval '1 hour'
FROM unnest($1::uuid[]) AS id
"""
APPROVE_ALL = """
INSERT INTO trade_approvals (signal_id, approved, approved_at, approved_by)
SELECT id, true, now(), 'load' FROM unnest($1::uuid[]) AS id
"""


def open_symbols(bridge: ThreadedBridge) -> set[str]:
    """Symbols with a working entry order (read first) or a position (read second). Nothing
    fills between the two reads (the market is stepped by the test only), so this is never
    more than what is really open."""
    working = {
        o["symbol"]
        for o in bridge.parent_orders()
        if o["status"] not in ("Filled", "Cancelled", "ApiCancelled", "Inactive")
    }
    positions = bridge.admin("GET", "/positions")["positions"]
    return working | {p["symbol"] for p in positions if p["quantity"] != 0}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_a_thousand_approvals_in_bursts(
    name: str, harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    scenario = SCENARIOS[name]
    process = harness.start(environment=scenario.env())
    await process.wait_ready()
    samples: list[int] = []
    stop_market = anyio.Event()

    async def market() -> None:
        """Step the price paths and sample the book, until told to stop."""
        while not stop_market.is_set():
            samples.append(len(await anyio.to_thread.run_sync(open_symbols, bridge)))
            await anyio.to_thread.run_sync(bridge.admin, "POST", "/admin/step", {"ticks": 2})
            await anyio.sleep(0.1)

    signal_ids: list[uuid.UUID] = []
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(market)
        for _ in range(APPROVALS // BURST):
            burst = [uuid.uuid4() for _ in range(BURST)]
            async with conn.transaction():  # one commit: BURST notifications at once
                await conn.execute(INSERT_SIGNALS, burst, scenario.entry)
                await conn.execute(APPROVE_ALL, burst)
            signal_ids += burst
            await anyio.sleep(scenario.pause)
        rows = await wait_settled(conn, signal_ids, timeout=240, process=process)
        settled_after = time.monotonic() - started
        # Let brackets close and pollers finish a while, still under the market's motion.
        with anyio.move_on_after(20):
            while await conn.fetchval(
                "SELECT count(*) FROM executions WHERE state = ANY($1)", list(WORKING)
            ):
                await anyio.sleep(0.5)
        stop_market.set()

    assert process.returncode() is None
    assert len(rows) == APPROVALS
    peak = max(samples)
    assert peak <= scenario.open_limit, f"open symbols at the bridge peaked at {peak}"
    rows = await conn.fetch("SELECT * FROM executions")
    states = Counter(r["state"] for r in rows)
    reasons = Counter(r["reason"] for r in rows if r["state"] == "rejected")
    assert set(states) <= {*FINAL, *WORKING}, states
    assert set(reasons) == scenario.rejections, reasons
    assert not states["failed"] and not states["unknown"], states
    placed = [r for r in rows if r["order_id"] is not None]
    used = sum((r["risk_amount"] for r in placed), Decimal(0))
    if "risk: max_daily_loss" in scenario.rejections:
        # The daily budget is used up to the last whole share.
        assert scenario.daily_loss - scenario.risk_per_share < used <= scenario.daily_loss, used
    else:
        assert len(placed) == APPROVALS
    # Working executions each have a poller.
    working = [r for r in rows if r["state"] in WORKING]
    port = process.http_port()
    assert port is not None
    health = await anyio.to_thread.run_sync(
        lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
    )
    assert health["open_pollers"] >= len(working), (health, len(working))
    assert process.returncode() is None
    assert await process.stop() == 0
    snapshot = await check_invariants(
        conn, bridge, max_daily_loss=scenario.daily_loss, max_open_positions=scenario.open_limit
    )
    assert len(snapshot.parents) == len(placed)
    errors = harness.errors()
    assert not errors, errors[:3]
    figures: dict[str, Any] = {
        "scenario": name,
        "approvals": APPROVALS,
        "settled_after_s": round(settled_after, 1),
        "states": dict(states),
        "rejections": dict(reasons),
        "orders": len(placed),
        "risk_used": str(used),
        "open_peak": peak,
        "working_at_end": len(working),
    }
    print("load figures:", figures)
