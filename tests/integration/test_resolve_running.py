"""`trade-executor resolve ID --as failed` on a running service frees the symbol and the budget at
once, so the next trade is sized as if the execution had never been placed.

As a new user met it: an `unknown` AAPL execution (133 shares, risk 665 of a 1000 budget) was
resolved as failed; before the fix the running service kept AAPL blocked and the 665 counted until
a restart, and the next trade was sized 67 shares instead of 133. The command now announces the
change (NOTIFY on the control channel) and the executor re-reads the row; the contract says within
a second, which bench/ measures: here the deadline only guards against a hang, and no sweep or
restart can be what frees it (sweeps are an hour apart).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from decimal import Decimal

import anyio
import pytest

from tests.support import ThreadedBridge, make_settings, running_service
from tests.support.ledgers import PgLedger, seed_execution, settled
from trade_executor.config.limits import risk_limits
from trade_executor.domain.riskbook import RiskBook
from trade_executor.domain.states import ExecutionState

pytestmark = pytest.mark.anyio

DEADLINE = 10.0


async def resolve_failed(db_url: str, execution_id: str) -> str:
    """The operator's command, as a separate process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADE_EXECUTOR")}
    env["DATABASE_URL"] = db_url
    done = await anyio.run_process(
        [sys.executable, "-m", "trade_executor", "resolve", execution_id, "--as", "failed"],
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return done.stdout.decode()


async def test_resolve_failed_frees_the_symbol_and_the_budget_of_a_running_service(
    db_url: str, bridge: ThreadedBridge
) -> None:
    settings = make_settings(db_url, bridge, max_daily_loss=1000, sweep_interval=3600)
    now = datetime.now(UTC)
    today = RiskBook(risk_limits(settings), settings.timezone).trading_day(now)
    async with PgLedger.emptied(db_url) as ledger:
        lost = await seed_execution(ledger, ExecutionState.UNKNOWN, today, symbol="AAPL")
        async with running_service(settings) as service:
            assert service.actors is not None
            executor = service.actors.executor
            # What the user saw: AAPL held and 665 of the 1000 counted.
            assert executor.riskbook.is_open("AAPL")
            assert executor.riskbook.daily_risk_used(now) == lost.risk_amount == Decimal("665.00")

            printed = await resolve_failed(db_url, str(lost.id))

            assert printed.strip() == f"execution {lost.id} resolved as failed"
            with anyio.fail_after(DEADLINE):
                while executor.riskbook.is_open("AAPL") or executor.riskbook.daily_risk_used(
                    datetime.now(UTC)
                ):
                    await anyio.sleep(0.01)
            resolved = await ledger.execution_of(lost.signal_id)
            again = await ledger.add_signal("AAPL")
            await ledger.add_approval(again)
            next_trade = await settled(ledger, again)

    assert resolved is not None and resolved.state is ExecutionState.FAILED
    assert next_trade.state is ExecutionState.SUBMITTED, next_trade
    assert next_trade.quantity == 133  # as with no prior execution (not 67)
    assert next_trade.risk_amount == Decimal("665.00")
    assert [o["symbol"] for o in bridge.parent_orders()] == ["AAPL"]
