"""The demo's story, told from the ledger: the sample signals inserted and approved one at a
time, each followed in `executions` and `execution_events` until it settles, then the filled
trades run to their exits.

The demo only writes what a user or the original's UI would (`strategy_signals`,
`trade_approvals`) and moves paper prices (`/admin/price`); the service does the rest. Every
wait is bounded (SETTLE_TIMEOUT): a stuck execution is said and the story moves on.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import anyio
import asyncpg
import httpx

from trade_executor.broker.jsonnum import dumps
from trade_executor.clock import utcnow
from trade_executor.config.limits import risk_limits
from trade_executor.config.sources import Settings
from trade_executor.domain.riskbook import RiskBook

from .narration import Terminal, describe_event, money, r_multiple, short
from .samples import SAMPLES, Outcome

SETTLE_TIMEOUT = 20.0  # seconds to follow one approval before moving on
POLL = 0.05
FINAL_STATES = frozenset({"filled", "cancelled", "rejected", "failed", "dry_run", "unknown"})
AT_BROKER = ("submitted", "partially_filled", "filled")

INSERT_SIGNAL = """
INSERT INTO strategy_signals (id, symbol, strategy_id, signal_type, confidence, entry_price,
                              stop_loss, take_profit, reasoning, generated_at, expires_at)
VALUES ($1, $2, 'demo', $3, 0.8, $4::numeric, $5::numeric, $6::numeric, $7, now(), $8)
"""
APPROVE = """
INSERT INTO trade_approvals (id, signal_id, approved, approved_at, approved_by)
VALUES ($1, $2, true, now(), 'demo')
"""
EXECUTION = "SELECT * FROM executions WHERE signal_id = $1"
EVENTS_AFTER = """
SELECT id, kind, detail::text AS detail FROM execution_events
WHERE execution_id = $1 AND id > $2 ORDER BY id
"""
DAILY_RISK_USED = """
SELECT coalesce(sum(risk_amount), 0) FROM executions
WHERE trading_day = $1
  AND (state IN ('submitted', 'partially_filled', 'filled')
       OR (state = 'cancelled' AND filled_qty > 0))
"""


async def approve_samples(settings: Settings, dsn: str, terminal: Terminal) -> list[Outcome]:
    """Insert the samples, then approve and follow each in turn; what became of each."""
    conn = await asyncpg.connect(dsn)
    try:
        outcomes = []
        for sample in SAMPLES:
            signal_id = uuid.uuid4()
            expires_at = utcnow() + sample.expires_in
            await conn.execute(
                INSERT_SIGNAL,
                signal_id,
                sample.symbol,
                sample.side,
                Decimal(sample.entry),
                Decimal(sample.stop),
                Decimal(sample.target),
                f"demo: {sample.case}",
                expires_at,
            )
            outcomes.append(Outcome(sample, signal_id))
        terminal.line(f"inserted {len(SAMPLES)} sample signals into strategy_signals")
        day = RiskBook(risk_limits(settings), settings.timezone).trading_day(utcnow())
        for number, outcome in enumerate(outcomes, 1):
            sample = outcome.sample
            if sample.expires_in < timedelta(minutes=1):
                # Approve only once it has expired: a slow approver, as it happens.
                deadline = time.monotonic() + sample.expires_in.total_seconds() + 0.2
                await anyio.sleep(max(0.0, deadline - time.monotonic()))
            terminal.line(stamp=False)
            terminal.line(
                f"approval {number}/{len(outcomes)}: {sample.side} {sample.symbol} "
                f"entry {sample.entry} stop {sample.stop} target {sample.target} "
                f"({sample.case})"
            )
            approval_id = uuid.uuid4()
            await conn.execute(APPROVE, approval_id, outcome.signal_id)
            terminal.line(f"  approved: trade_approvals {short(approval_id)} (NOTIFY sent)")
            outcome.row = await _follow(conn, outcome.signal_id, terminal)
            if outcome.row is not None and outcome.row["state"] in AT_BROKER:
                used = await conn.fetchval(DAILY_RISK_USED, day)
                terminal.line(
                    f"  daily risk budget: {used:.2f} used of {settings.max_daily_loss:.2f}"
                )
        return outcomes
    finally:
        await conn.close()


async def run_to_exits(
    dsn: str, bridge_url: str, outcomes: list[Outcome], terminal: Terminal
) -> None:
    """Each filled trade to its exit: the long's price moved to its stop-loss, the short's to its
    take-profit (unless the ticker got there first); the exits record P&L and R."""
    filled = [o for o in outcomes if o.row is not None and o.row["state"] == "filled"]
    if not filled:
        return
    terminal.line(stamp=False)
    terminal.line("exits: each position's stop-loss and take-profit are followed after its fill")
    conn = await asyncpg.connect(dsn)
    try:
        async with httpx.AsyncClient(base_url=bridge_url, timeout=5) as bridge:
            for outcome in filled:
                row = await conn.fetchrow(EXECUTION, outcome.signal_id)
                if row is None:
                    continue
                if row["position_state"] == "open":
                    long = row["action"] == "BUY"
                    price, which = (
                        (row["stop_loss"], "stop-loss") if long else (row["take_profit"], "target")
                    )
                    terminal.line(
                        f"  {row['symbol']}: the price moves to {money(price)} (its {which})"
                    )
                    body = dumps({"symbol": row["symbol"], "price": price}).encode()
                    await bridge.post("/admin/price", content=body)
                closed = await _wait_closed(conn, outcome.signal_id)
                if closed is None:
                    terminal.line(f"  {row['symbol']}: still open after {SETTLE_TIMEOUT:.0f}s")
                    continue
                outcome.exit = closed
                terminal.line(
                    f"  {closed['symbol']}: position closed by {closed['exit_reason']}: "
                    f"{closed['exit_qty']} @ {money(closed['exit_avg_price'])}, realized P&L "
                    f"{money(closed['realized_pnl'])} ({r_multiple(closed['r_multiple'])})"
                )
        total = sum((o.exit["realized_pnl"] for o in outcomes if o.exit), Decimal(0))
        terminal.line(f"  realized P&L today: {money(total)}")
    finally:
        await conn.close()


async def _wait_closed(conn: asyncpg.Connection, signal_id: uuid.UUID) -> dict[str, Any] | None:
    with anyio.move_on_after(SETTLE_TIMEOUT):
        while True:
            row = await conn.fetchrow(EXECUTION, signal_id)
            if row is not None and row["position_state"] == "closed":
                return dict(row)
            await anyio.sleep(POLL)
    return None


async def _follow(
    conn: asyncpg.Connection, signal_id: uuid.UUID, terminal: Terminal
) -> dict[str, Any] | None:
    """Print each event of the signal's execution until it settles (a final state, or an order
    whose entry has filled); the execution row at the end, or None if none appeared."""
    last_event = 0
    row: asyncpg.Record | None = None
    with anyio.move_on_after(SETTLE_TIMEOUT):
        while True:
            row = await conn.fetchrow(EXECUTION, signal_id)
            if row is not None:
                # Final before the events are read: the events then include the final one.
                settled = row["state"] in FINAL_STATES
                events = await conn.fetch(EVENTS_AFTER, row["id"], last_event)
                # Read after the events: at least as new as each of them (a fill's line needs
                # the fill, which commits with its event).
                row = await conn.fetchrow(EXECUTION, signal_id)
                assert row is not None
                for event in events:
                    last_event = event["id"]
                    text = describe_event(event["kind"], _json(event["detail"]), dict(row))
                    if text:
                        terminal.line("  " + text)
                if last_event and settled:
                    break
            await anyio.sleep(POLL)
    if row is None:
        terminal.line(f"  no execution after {SETTLE_TIMEOUT:.0f}s")
        return None
    if row["state"] not in FINAL_STATES:
        terminal.line(f"  still {row['state']} after {SETTLE_TIMEOUT:.0f}s: moving on")
    return dict(row)


def _json(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}
