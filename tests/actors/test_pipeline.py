"""The whole pipeline on real PostgreSQL and the paper bridge over HTTP."""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg
import pytest

from tests.actors.conftest import make_settings, running_service
from tests.support import ThreadedBridge, approve, insert_signal, wait_for

pytestmark = pytest.mark.anyio

FINAL = "('filled','cancelled','rejected','failed','dry_run','unknown','submitted')"


async def test_an_approval_is_placed_and_recorded(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with running_service(make_settings(db_url, bridge)):
        signal_id = await insert_signal(conn, "AAPL")
        approval_id = await approve(conn, signal_id)
        order_id = await wait_for(
            conn, "SELECT order_id FROM trade_approvals WHERE id = $1", approval_id
        )

    [order] = bridge.parent_orders()
    assert str(order["order_id"]) == order_id
    assert order["symbol"] == "AAPL" and order["action"] == "BUY"
    assert order["quantity"] == 133
    assert Decimal(str(order["limit_price"])) == Decimal("150.00")
    execution = await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", signal_id)
    assert execution["state"] in ("submitted", "partially_filled", "filled")
    assert execution["quantity"] == 133
    assert execution["risk_amount"] == Decimal("665.00")
    assert execution["position_value"] == Decimal("19950.00")
    assert str(execution["order_id"]) == order_id
    assert len(execution["child_order_ids"]) == 2
    assert execution["client_order_id"] == order["order_ref"]
    trade = await conn.fetchrow("SELECT * FROM trades WHERE signal_id = $1", signal_id)
    assert trade["id"] == str(execution["id"])
    assert trade["symbol"] == "AAPL" and trade["direction"] == "BUY"
    assert trade["entry"] == Decimal("150.00") and trade["stop"] == Decimal("145.00")
    risk = json.loads(trade["risk"])
    assert Decimal(str(risk["amount"])) == Decimal("665.00")
    assert Decimal(str(risk["percent"])) == Decimal("0.00665")
    assert Decimal(str(risk["position_value"])) == Decimal("19950.00")
    assert risk["quantity"] == 133 and risk["order_id"] == order_id
    kinds = [
        row["kind"]
        for row in await conn.fetch(
            "SELECT kind FROM execution_events WHERE execution_id = $1 ORDER BY id",
            execution["id"],
        )
    ]
    assert kinds[:3] == ["claimed", "submitting", "order.submitted"]
