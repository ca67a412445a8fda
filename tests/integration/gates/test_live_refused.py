"""A live account without ALLOW_LIVE_TRADING is told truthfully (issue 19, finding 5; CONTRACT
section 5, "Live or paper"): the bridge turning live mid-run is seen by the bridge watcher within
one watch interval, before any approval: `/health` degraded with the reason, the gauge at 1,
the mode line at warning and STATUS= saying approvals are rejected; an approval is then
rejected `live_trading_not_allowed` with nothing sent. Turning back to paper clears it all.

Before, the banner said LIVE orders, STATUS= "active: live orders", `/health` ok, and a bridge
that turned live was noticed only at the next approval.
"""

from __future__ import annotations

from typing import Any

import anyio
import asyncpg
import httpx
import pytest

from tests.support import approve, insert_signal, make_settings, running_service, threaded_bridge
from trade_executor.service.run import Service
from trade_executor_dev.paper import Faults

pytestmark = pytest.mark.anyio

WATCH = 0.1  # the bridge watcher's interval in this test


async def health(service: Service) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://127.0.0.1:{service.http_port}/health")
    body: dict[str, Any] = answer.json()
    body["http_status"] = answer.status_code
    return body


async def health_becomes(service: Service, refused: bool) -> dict[str, Any]:
    with anyio.fail_after(10):  # guards against a hang only
        while (body := await health(service))["live_trading_refused"] is not refused:
            await anyio.sleep(WATCH / 2)
    return body


async def test_a_bridge_turning_live_is_told_everywhere_before_any_approval(
    db_url: str, conn: asyncpg.Connection
) -> None:
    with threaded_bridge(profile="jax", faults=Faults(latency_scale=0)) as bridge:
        settings = make_settings(db_url, bridge, allow_live_trading=False)
        async with running_service(settings, bridge_check_interval=WATCH) as service:
            paper = await health_becomes(service, False)
            assert (paper["status"], paper["account"]) == ("ok", "paper")
            bridge.admin("POST", "/admin/account", {"paper_trading": False})
            live = await health_becomes(service, True)
            gauge = service.metrics.live_trading_refused._value.get()
            status_text = service._status_text()
            signal_id = await insert_signal(conn, "LIVE")
            await approve(conn, signal_id)
            with anyio.fail_after(10):
                while (
                    row := await conn.fetchrow(
                        "SELECT state, reason FROM executions WHERE signal_id = $1", signal_id
                    )
                ) is None or row["state"] not in ("rejected", "failed", "submitted"):
                    await anyio.sleep(0.02)
            bridge.admin("POST", "/admin/account", {"paper_trading": True})
            back = await health_becomes(service, False)
            gauge_after = service.metrics.live_trading_refused._value.get()
        orders = bridge.orders()
    assert (live["http_status"], live["status"], live["account"]) == (503, "degraded", "live")
    assert "ALLOW_LIVE_TRADING is false" in live["reason"]
    assert gauge == 1 and gauge_after == 0
    assert "approvals are rejected live_trading_not_allowed" in status_text
    assert (row["state"], row["reason"]) == ("rejected", "live_trading_not_allowed")
    assert orders == []
    assert (back["status"], back["account"]) == ("ok", "paper")
