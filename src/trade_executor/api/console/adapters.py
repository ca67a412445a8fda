"""The console's thin adapters to what other work builds (each a seam the lead wires when it
lands; until then each says plainly what it cannot show or do, and never guesses):

- `market_state`: market open or closed (domain/session.py, the `gates` work).
- `protect`: the typed protect operation (ops/protect.py, the `positions` work).
- `strategy_table`: the report's per-strategy totals (ops/report.py) of today's closed
  positions, by their signals' strategy ids.
- `broker_positions`: the bridge's positions as the broker has them (the `positions` work
  builds broker-truth positions); until then read here from `GET /positions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.config import Settings
from trade_executor.domain.execution import Execution
from trade_executor.domain.models import Position
from trade_executor.ops.report import StrategyTotals, by_strategy, closed_trade
from trade_executor.store.postgres import PgStore

BRIDGE_TIMEOUT = 5.0
STRATEGY_IDS = "SELECT id, strategy_id FROM strategy_signals WHERE id = ANY($1::uuid[])"


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What the service did about an operator's action, in one sentence."""

    ok: bool
    message: str


def market_state(now: datetime) -> str | None:
    """'open' or 'closed' at `now`; None: this build does not know the market's hours.
    Wire: domain/session.py's market-open check (issue `gates`)."""
    return None


async def protect(
    store: PgStore,
    settings: Settings,
    symbol: str,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    force: bool,
    reason: str,
    by: str,
) -> ActionResult:
    """Give an open position its stop-loss/take-profit. Wire: ops/protect.py's typed
    operation (issue `positions`); this build has none, and says so rather than act."""
    return ActionResult(
        False,
        f"protect {symbol}: not done, this build of the service has no protect operation yet "
        "(nothing was sent to the bridge)",
    )


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
    """The bridge's open positions (quantity not 0), or None and why it could not say.
    Wire: the broker-truth positions of issue `positions`, when they land."""
    try:
        async with BrokerClient(url, BRIDGE_TIMEOUT, read_retries=0) as broker:
            positions = await broker.positions()
    except BrokerError as error:
        return None, str(error)
    return [p for p in positions if p.quantity != 0], None
