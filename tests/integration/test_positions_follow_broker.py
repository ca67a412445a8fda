"""Issue 20, finding 1 over PostgreSQL and the real HTTP paper bridge: a ledger position the
broker does not hold is settled by the reconciler (the price-unknown path: no finished order
shows its price), `status` lists it as needing an operator with the stop's P&L counted, and
`resolve-position SYMBOL --exit-price P` settles it end to end."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stdout
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
import pytest

from tests.support import PaperServer
from tests.support.ledgers import PgLedger, actor_settings, seed_execution
from trade_executor.actors.messages import Message, PositionExited
from trade_executor.actors.reconciler import Reconciler
from trade_executor.broker.client import BrokerClient
from trade_executor.cli.commands import status_command
from trade_executor.cli.main import main
from trade_executor.config.limits import risk_limits
from trade_executor.domain.execution import Changes
from trade_executor.domain.riskbook import RiskBook
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.observability.metrics import Metrics

pytestmark = pytest.mark.anyio


def status_json(settings: object) -> dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert status_command(settings, argparse.Namespace(json=True)) == 0  # type: ignore[arg-type]
    view: dict[str, Any] = json.loads(out.getvalue())
    return view


async def test_a_position_the_broker_does_not_hold_is_settled_and_an_operator_prices_it(
    db_url: str, paper: PaperServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = actor_settings(paper.url, database_url=db_url, reconcile_interval=1)
    now = datetime.now(UTC)
    today = RiskBook(risk_limits(settings), settings.timezone).trading_day(now)
    posted: list[Message] = []
    async with PgLedger.emptied(db_url) as ledger:
        held = await seed_execution(ledger, ExecutionState.FILLED, today, symbol="COIN")
        await ledger.store.apply(
            held.id,
            Transition.POSITION,
            Changes(position_state="open", child_order_ids=(901, 902)),
        )
        async with BrokerClient(paper.url, 5) as broker:
            reconciler = Reconciler(
                settings,
                ledger.store,
                broker,
                Metrics(),
                posted.append,
                confirm_delay=0,
            )
            await reconciler.reconcile_once()  # an empty answer: not yet
            first = await ledger.store.get_execution(held.id)
            assert first is not None and first.position_state == "open"
            await reconciler.reconcile_once()  # the next pass confirms it: settled
        settled = await ledger.store.get_execution(held.id)
        assert settled is not None
        assert (settled.position_state, settled.exit_reason, settled.exit_qty) == (
            "closed",
            "external",
            133,
        )
        assert settled.exit_avg_price is None
        assert settled.realized_pnl == Decimal("-665.00")  # at its stop: the worst plausible
        assert [m.realized_pnl for m in posted if isinstance(m, PositionExited)] == [
            Decimal("-665.00")
        ]

        view = await anyio.to_thread.run_sync(status_json, settings)
        assert Decimal(str(view["realized_pnl_today"])) == Decimal("-665.00")
        [need] = [n for n in view["needing_operator"] if n["symbol"] == "COIN"]
        assert "resolve-position COIN --exit-price P" in need["why"]
        assert view["positions"]["ledger"] == []  # status agrees with the (flat) broker

        monkeypatch.setenv("DATABASE_URL", db_url)
        monkeypatch.setenv("IB_BRIDGE_URL", paper.url)
        code = await anyio.to_thread.run_sync(
            main, ["resolve-position", "COIN", "--exit-price", "147", "--by", "carol"]
        )
        assert code == 0
        priced = await ledger.store.get_execution(held.id)
        assert priced is not None
        assert (priced.exit_avg_price, priced.realized_pnl, priced.r_multiple) == (
            Decimal("147.0000"),
            Decimal("-399.00"),
            Decimal("-0.6000"),
        )
        view = await anyio.to_thread.run_sync(status_json, settings)
        assert Decimal(str(view["realized_pnl_today"])) == Decimal("-399.00")
        assert not [n for n in view["needing_operator"] if n["symbol"] == "COIN"]
        again = await anyio.to_thread.run_sync(
            main, ["resolve-position", "COIN", "--exit-price", "148"]
        )
        assert again == 1  # nothing waits for a price any more
