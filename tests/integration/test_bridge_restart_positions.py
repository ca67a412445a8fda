"""Issue 20, finding 1 end to end: the real service (PostgreSQL, the jax paper bridge over HTTP,
a short injected RECONCILE_INTERVAL) while the bridge restarts with positions open.

- Same client id (ib_insync's reconnect): the working children stay cancellable (a `close`
  after the restart leaves nothing of ours working), and a stop that IB filled while the bridge
  was down (listed again with order_id 0) is settled with its real price and P&L within two
  reconcile passes; `status` agrees with the broker; the realized-loss limit counts it.
- Changed client id (the working orders invisible): the stop IB fills is settled `external`
  from the broker's positions at the stop's P&L (price unknown), listed as needing an operator,
  and `resolve-position SYMBOL --exit-price P` settles it."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from tests.integration.test_exits_pg import WAIT, enter, jax_bridge, row, settings_for
from tests.support import ThreadedBridge, running_service
from trade_executor.broker.jsonnum import dumps
from trade_executor.cli.commands import with_context
from trade_executor.config.sources import Settings
from trade_executor.ops.status import status

pytestmark = pytest.mark.anyio
__all__ = ["jax_bridge"]

SCRIPT = Path(sys.executable).with_name("trade-executor")
INTERVAL = 0.5  # RECONCILE_INTERVAL for these tests


def status_json(settings: Settings) -> dict[str, Any]:
    """What `status --json` prints (read without capturing stdout: the service in this process
    logs there meanwhile)."""
    view: dict[str, Any] = json.loads(dumps(with_context(settings, status)))
    return view


def working_of(bridge: ThreadedBridge, symbol: str) -> list[dict[str, Any]]:
    final = {"Filled", "Cancelled", "ApiCancelled", "Inactive"}
    return [
        o
        for o in bridge.orders()
        if o["symbol"] == symbol and o["status"] not in final and o.get("visible", True)
    ]


def child(bridge: ThreadedBridge, parent_id: int, order_type: str) -> int:
    [found] = [
        o["order_id"]
        for o in bridge.orders()
        if o.get("parent_id") == parent_id and o["order_type"] == order_type
    ]
    return int(found)


async def realized_reaches(book: Any, amount: Decimal) -> None:
    """The running executor's RiskBook (what MAX_DAILY_REALIZED_LOSS gates on) books `amount`
    (the exit reaches it as a message, a moment after the ledger)."""
    with anyio.fail_after(WAIT):
        while book.realized_pnl(datetime.now(UTC)) != amount:
            await anyio.sleep(0.02)


async def settled_within_two_passes(service: Any, conn: asyncpg.Connection, signal_id: Any) -> Any:
    """Waits for the position to read closed; returns the reconcile passes that took (counted
    from when the broker was already flat and connected)."""
    reconciler = service.actors.reconciler
    start = reconciler.passes
    with anyio.fail_after(WAIT):
        while (await row(conn, signal_id))["position_state"] != "closed":
            await anyio.sleep(0.02)
    return reconciler.passes - start


async def test_a_stop_filled_while_ib_is_away_is_settled_with_its_price(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    """IB's 1100/1102: the bridge loses IB, IB fills the stop meanwhile, the bridge is back."""
    settings = settings_for(db_url, jax_bridge, reconcile_interval=INTERVAL)
    async with running_service(settings) as service:
        coin = await enter(conn, jax_bridge, "COIN")
        await enter(conn, jax_bridge, "UBER")
        coin_stop = child(jax_bridge, (await row(conn, coin))["order_id"], "STP")
        jax_bridge.admin("POST", "/admin/disconnect", {"seconds": 30})
        jax_bridge.admin("POST", "/admin/fill", {"order_id": coin_stop, "price": 144.80})
        await anyio.sleep(3 * INTERVAL)  # passes while IB is away conclude nothing
        assert (await row(conn, coin))["position_state"] == "open"
        jax_bridge.admin("POST", "/admin/reconnect", {})
        passes = await settled_within_two_passes(service, conn, coin)
        assert passes <= 2
        settled = await row(conn, coin)
        assert (settled["exit_reason"], settled["exit_qty"]) == ("stop_loss", 133)
        assert settled["exit_avg_price"] == Decimal("144.8000")
        assert settled["realized_pnl"] == Decimal("-691.60")  # 133 x (144.80 - 150)
        assert settled["r_multiple"] == Decimal("-1.0400")
        assert service.actors is not None
        book = service.actors.executor.riskbook
        await realized_reaches(book, Decimal("-691.60"))  # the limit sees it
        view = await anyio.to_thread.run_sync(status_json, settings)
        ledger = {p["symbol"]: p["quantity"] for p in view["positions"]["ledger"]}
        broker = {p["symbol"]: p["quantity"] for p in view["positions"]["bridge"]}
        assert ledger == broker == {"UBER": 133}  # status agrees with the broker
        assert Decimal(str(view["realized_pnl_today"])) == Decimal("-691.60")


async def test_a_restart_keeps_children_cancellable_and_settles_a_stop_filled_while_down(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    """A bridge restart with the same client id: the stop that filled while it was down comes
    back as a restored row (order id 0, no price): settled `stop_loss` at the stop's P&L,
    priced by the operator; the other position's children are cancellable."""
    settings = settings_for(db_url, jax_bridge, reconcile_interval=INTERVAL)
    env = {**os.environ, "DATABASE_URL": db_url, "IB_BRIDGE_URL": jax_bridge.url}
    async with running_service(settings) as service:
        intc = await enter(conn, jax_bridge, "INTC")
        uber = await enter(conn, jax_bridge, "UBER")
        stop = child(jax_bridge, (await row(conn, intc))["order_id"], "STP")
        jax_bridge.admin("POST", "/admin/disconnect", {"seconds": 30})
        jax_bridge.admin("POST", "/admin/fill", {"order_id": stop, "price": 144.90})
        jax_bridge.admin("POST", "/admin/restart", {})  # same client id: reconnects
        passes = await settled_within_two_passes(service, conn, intc)
        assert passes <= 2
        settled = await row(conn, intc)
        assert (settled["exit_reason"], settled["exit_qty"]) == ("stop_loss", 133)
        assert settled["exit_avg_price"] is None  # the restored row shows no price
        assert settled["realized_pnl"] == Decimal("-665.00")  # at its stop, until priced
        assert service.actors is not None
        book = service.actors.executor.riskbook
        await realized_reaches(book, Decimal("-665.00"))
        view = await anyio.to_thread.run_sync(status_json, settings)
        [need] = [n for n in view["needing_operator"] if n["symbol"] == "INTC"]
        assert "resolve-position INTC --exit-price P" in need["why"]
        priced = await anyio.run_process(
            [str(SCRIPT), "resolve-position", "INTC", "--exit-price", "144.90"],
            env=env,
            check=False,
        )
        assert priced.returncode == 0, priced.stderr.decode()
        await realized_reaches(book, Decimal("-678.30"))

        # The children of the other position were listed again with their ids: cancellable.
        assert len(working_of(jax_bridge, "UBER")) == 2
        done = await anyio.run_process(
            [str(SCRIPT), "close", "UBER", "--reason", "after restart", "--wait", str(WAIT)],
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert working_of(jax_bridge, "UBER") == []  # no stop against a flat position
    assert (await row(conn, uber))["position_state"] == "closed"
    assert (await row(conn, intc))["realized_pnl"] == Decimal("-678.30")


async def test_a_changed_client_id_settles_external_then_an_operator_prices_it(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    settings = settings_for(db_url, jax_bridge, reconcile_interval=INTERVAL)
    env = {**os.environ, "DATABASE_URL": db_url, "IB_BRIDGE_URL": jax_bridge.url}
    async with running_service(settings) as service:
        pypl = await enter(conn, jax_bridge, "PYPL")
        stop = child(jax_bridge, (await row(conn, pypl))["order_id"], "STP")
        jax_bridge.admin("POST", "/admin/restart", {"client_id_changed": True})
        jax_bridge.admin("POST", "/admin/fill", {"order_id": stop, "price": 144.50})
        await settled_within_two_passes(service, conn, pypl)
        settled = await row(conn, pypl)
        # The new client id sees neither the working stop nor its fill: only the positions.
        assert settled["exit_avg_price"] is None
        assert settled["exit_reason"] == "external"
        assert settled["realized_pnl"] == Decimal("-665.00")  # at its stop, until priced
        view = await anyio.to_thread.run_sync(status_json, settings)
        [need] = [n for n in view["needing_operator"] if n["symbol"] == "PYPL"]
        assert "resolve-position PYPL --exit-price P" in need["why"]
        done = await anyio.run_process(
            [str(SCRIPT), "resolve-position", "PYPL", "--exit-price", "144.50"],
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert service.actors is not None
        await realized_reaches(service.actors.executor.riskbook, Decimal("-731.50"))
        priced = await row(conn, pypl)
        assert priced["realized_pnl"] == Decimal("-731.50")  # 133 x (144.50 - 150)
        assert priced["exit_avg_price"] == Decimal("144.5000")
