"""Issue 20, finding 4's remedy and `protect` (CONTRACT section 2): a position whose DAY
children expired at the close is protected again by `protect SYMBOL` for the broker's quantity
with the signal's stop and target (one `/protect` in the bridge's request log, its body as the
RUNBOOK documents it), refused with one sentence when the broker's quantity differs from the
ledger's, and the same through `POST /api/v1/protect`."""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest

from tests.integration.test_exits_pg import TOKEN, WAIT, enter, jax_bridge, row, settings_for
from tests.support import ThreadedBridge, running_service
from trade_executor.broker.client import BrokerClient
from trade_executor.domain.models import Action, OrderRequest, OrderType

pytestmark = pytest.mark.anyio
__all__ = ["jax_bridge"]

SCRIPT = Path(sys.executable).with_name("trade-executor")


def protects(bridge: ThreadedBridge, symbol: str) -> list[dict[str, Any]]:
    return [
        r
        for r in bridge.requests()
        if r["method"] == "POST" and r["path"] == f"/positions/{symbol}/protect"
    ]


def working_stops(bridge: ThreadedBridge, symbol: str) -> list[dict[str, Any]]:
    final = {"Filled", "Cancelled", "ApiCancelled", "Inactive"}
    return [
        o
        for o in bridge.orders()
        if o["symbol"] == symbol and o["order_type"] == "STP" and o["status"] not in final
    ]


async def until_state(conn: asyncpg.Connection, signal_id: Any, want: str) -> None:
    with anyio.fail_after(WAIT):
        while (await row(conn, signal_id))["position_state"] != want:
            await anyio.sleep(0.02)


async def test_protect_after_the_close_expired_the_children(
    db_url: str, conn: asyncpg.Connection, jax_bridge: ThreadedBridge
) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "IB_BRIDGE_URL": jax_bridge.url}
    settings = settings_for(db_url, jax_bridge, reprotect_at_open=False)
    async with running_service(settings) as service:
        signal_id = await enter(conn, jax_bridge, "NITE")
        jax_bridge.admin("POST", "/admin/session-close")
        await until_state(conn, signal_id, "unprotected")
        assert working_stops(jax_bridge, "NITE") == []
        done = await anyio.run_process([str(SCRIPT), "protect", "NITE"], env=env, check=False)
        assert done.returncode == 0, done.stderr.decode()
        assert "NITE protected: 133 shares, stop 145" in done.stdout.decode()
        [sent] = protects(jax_bridge, "NITE")
        body = sent["body"]
        assert (body["quantity"], body["replace_existing"]) == (133, True)
        assert (Decimal(str(body["stop_loss"])), Decimal(str(body["take_profit"]))) == (
            Decimal(145),
            Decimal(160),
        )
        assert len(working_stops(jax_bridge, "NITE")) == 1
        await until_state(conn, signal_id, "open")

        # More shares at the broker than the ledger's: refused, by the command and the API.
        async with BrokerClient(jax_bridge.url, 5) as client:
            await client.place(OrderRequest("NITE", Action.BUY, 10, OrderType.MKT, None, None))
        refused = await anyio.run_process(
            [str(SCRIPT), "protect", "NITE", "--stop", "144"], env=env, check=False
        )
        assert refused.returncode == 1
        said = refused.stderr.decode()
        assert "protect NITE refused: the ledger holds 133 and the broker holds 143" in said
        assert "Traceback" not in said
        base = f"http://127.0.0.1:{service.http_port}"
        headers = {"Authorization": f"Bearer {TOKEN}", "Connection": "close"}
        async with httpx.AsyncClient(base_url=base, timeout=WAIT, headers=headers) as api:
            conflict = await api.post("/api/v1/protect", json={"symbol": "NITE"})
            forced = await api.post(
                "/api/v1/protect", json={"symbol": "NITE", "stop_loss": 144, "force": True}
            )
            missing = await api.post("/api/v1/protect", json={"symbol": "NONE"})
        assert conflict.status_code == 409, conflict.text
        assert "the broker holds 143" in conflict.json()["error"]
        assert forced.status_code == 200, forced.text
        assert missing.status_code == 404
        assert len(protects(jax_bridge, "NITE")) == 2  # the refusals sent nothing
        assert protects(jax_bridge, "NITE")[-1]["body"]["quantity"] == 143  # the broker's
        assert len(working_stops(jax_bridge, "NITE")) == 1  # replaced, not doubled
