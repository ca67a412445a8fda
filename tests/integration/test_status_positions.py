"""`status` shows the trades after their entry: realized P&L today (the executor's own rule, so
the same figure that gates MAX_DAILY_REALIZED_LOSS), each open position with its planned risk and
whether a stop protects it, and the open reconciliation breaks."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stdout
from datetime import UTC, datetime
from decimal import Decimal

import anyio
import pytest

from tests.support import PaperServer
from tests.support.ledgers import PgLedger, actor_settings, seed_execution
from trade_executor.cli.commands import status_command
from trade_executor.config.limits import risk_limits
from trade_executor.domain.execution import Changes
from trade_executor.domain.riskbook import RiskBook
from trade_executor.domain.states import ExecutionState, Transition

pytestmark = pytest.mark.anyio


def status_json(settings: object) -> dict[str, object]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert status_command(settings, argparse.Namespace(json=True)) == 0  # type: ignore[arg-type]
    view: dict[str, object] = json.loads(out.getvalue())
    return view


async def test_status_shows_realized_pnl_open_positions_and_their_protection(
    db_url: str, paper: PaperServer
) -> None:
    settings = actor_settings(paper.url, database_url=db_url)
    now = datetime.now(UTC)
    today = RiskBook(risk_limits(settings), settings.timezone).trading_day(now)
    async with PgLedger.emptied(db_url) as ledger:
        stopped = await seed_execution(ledger, ExecutionState.FILLED, today, symbol="LOSS")
        await ledger.store.apply(
            stopped.id,
            Transition.POSITION,
            Changes(
                position_state="closed",
                exit_reason="stop_loss",
                exit_qty=133,
                exit_avg_price=Decimal("145"),
                realized_pnl=Decimal("-665.00"),
                r_multiple=Decimal("-1.0000"),
                closed_at=now,
            ),
        )
        held = await seed_execution(ledger, ExecutionState.FILLED, today, symbol="HELD")
        await ledger.store.apply(
            held.id,
            Transition.POSITION,
            Changes(position_state="open", child_order_ids=(11, 12)),
        )
        bare = await seed_execution(ledger, ExecutionState.FILLED, today, symbol="BARE")
        await ledger.store.apply(
            bare.id, Transition.POSITION, Changes(position_state="unprotected")
        )
        view = await anyio.to_thread.run_sync(status_json, settings)  # status runs its own loop

    assert Decimal(str(view["realized_pnl_today"])) == Decimal("-665.00")
    positions = view["positions"]
    assert isinstance(positions, dict)
    by_symbol = {p["symbol"]: p for p in positions["ledger"]}
    assert set(by_symbol) == {"HELD", "BARE"}  # the closed one is no longer held
    assert by_symbol["HELD"]["protection"] == "protected"
    assert by_symbol["BARE"]["protection"] == "unprotected"
    assert Decimal(str(by_symbol["HELD"]["planned_risk"])) == Decimal("665.00")
    assert by_symbol["HELD"]["quantity"] == 133
