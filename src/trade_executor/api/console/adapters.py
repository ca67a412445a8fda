"""The console's thin adapters to what other work builds (each a seam the lead wires when it
lands; until then each says plainly what it cannot show or do, and never guesses):

- `market_state`: market open or closed (`status`'s market view, from TRADING_SESSION).
- `strategy_table`: the report's per-strategy totals (ops/report.py) of today's closed
  positions, by their signals' strategy ids.
- `broker_positions`: the bridge's positions as the broker has them (`broker_truth`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from trade_executor.domain.execution import Execution
from trade_executor.domain.models import Position
from trade_executor.ops.broker_truth import broker_positions as truth_positions
from trade_executor.ops.report import StrategyTotals, by_strategy, closed_trade
from trade_executor.store.postgres import PgStore

BRIDGE_TIMEOUT = 5.0
STRATEGY_IDS = "SELECT id, strategy_id FROM strategy_signals WHERE id = ANY($1::uuid[])"


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What the service did about an operator's action, in one sentence."""

    ok: bool
    message: str


def market_state(view: dict[str, Any]) -> str | None:
    """'open' or 'closed', from `status`'s market view (TRADING_SESSION); None: unknown."""
    market = view.get("market") or {}
    is_open = market.get("open")
    return None if is_open is None else "open" if is_open else "closed"


StrategyRow = StrategyTotals  # the report's per-strategy totals


async def strategy_table(store: PgStore, closed: list[Execution]) -> list[StrategyTotals]:
    """Today's closed trades by strategy, as the report totals them (ops/report.py): trades,
    wins, losses, win rate, average and total R, expectancy, realized P&L, largest loss."""
    ids = sorted({e.signal_id for e in closed}, key=str)
    names: dict[UUID, str | None] = {}
    if ids:
        rows = await store.pool.fetch(STRATEGY_IDS, ids)
        names = {row["id"]: row["strategy_id"] for row in rows}
    return by_strategy(closed_trade(e, names.get(e.signal_id), None) for e in closed)


async def broker_positions(url: str) -> tuple[list[Position] | None, str | None]:
    """The bridge's open positions (quantity not 0), or None and why it could not say: the
    broker-truth read of ops/truth.py (nothing shown from a bridge not connected to IB)."""
    return await truth_positions(url)
