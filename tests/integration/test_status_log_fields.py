"""The log lines an operator reads to know what happened (CONTRACT section 9): an approval says
where it came from and who approved it, a placed order says what was placed, a risk rejection
carries the numbers it was decided on, and start-up says the configuration and the mode."""

from __future__ import annotations

from collections.abc import MutableMapping
from decimal import Decimal
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from structlog.testing import capture_logs

from tests.support import ThreadedBridge, approve, insert_signal, make_settings, running_service

pytestmark = pytest.mark.anyio
TOKEN = "test-token"


def lines(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == event]


async def test_approval_order_and_rejection_lines_carry_their_facts(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    first = await insert_signal(conn, "LOGA", "BUY", "150", "145", "160")
    second = await insert_signal(conn, "LOGB", "BUY", "120", "114", "135")
    # 665 of a 700 budget go to the first: 35 left allow 5 shares at a stop 6 away, below 10.
    settings = make_settings(db_url, bridge, max_daily_loss=Decimal(700), min_position_size=10)
    with capture_logs() as logs:
        async with running_service(settings) as service:
            base = f"http://127.0.0.1:{service.http_port}"
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                response = await client.post(
                    "/api/v1/execute",
                    json={"signal_id": str(first), "approved_by": "alice"},
                    headers={"Authorization": f"Bearer {TOKEN}", "Connection": "close"},
                )
                assert response.status_code == 200, response.text
                await approve(conn, second)  # approved by the table: a notification
                response = await client.post(
                    "/api/v1/execute",
                    json={"signal_id": str(second), "approved_by": "bob"},
                    headers={"Authorization": f"Bearer {TOKEN}", "Connection": "close"},
                )
                assert response.status_code in (409, 422), response.text
                # A 409 answers once the claim exists: wait for the rejection's own line.
                with anyio.fail_after(20):
                    while not lines(logs, "execution.rejected"):
                        await anyio.sleep(0.05)

    [starting] = lines(logs, "supervisor.starting")
    assert starting["config"]["MAX_DAILY_LOSS"] == "700"
    assert starting["config"]["API_TOKEN"] == "***"
    [mode] = lines(logs, "supervisor.mode")
    assert mode["mode"] == "PAPER" and "paper" in mode["banner"]

    received = {line["signal_id"]: line for line in lines(logs, "approval.received")}
    assert received[str(first)]["source"] == "api"  # whichever hint came first
    assert received[str(first)]["approved_by"] == "alice"
    assert received[str(second)]["approved_by"] == "tester"
    assert received[str(second)]["approval_source"] == "trade_approvals"

    [submitted] = lines(logs, "order.submitted")
    assert (submitted["side"], submitted["quantity"], submitted["order_type"]) == (
        "BUY",
        133,
        "LMT",
    )
    assert (submitted["price"], submitted["stop_loss"], submitted["risk_amount"]) == (
        "150.00",
        "145.00",
        "665.00",
    )

    [rejected] = lines(logs, "execution.rejected")
    assert rejected["reason"] == "risk: max_daily_loss"
    assert rejected["gate"] == "max_daily_loss"
    assert rejected["daily_risk_used"] == Decimal("665.00")
    assert rejected["daily_risk_left"] == Decimal("35.00")
    assert rejected["daily_budget"] == Decimal(700)
    assert rejected["detail"]
