"""Reconciliation with the broker, each break provoked for real: the whole service on PostgreSQL
against the paper bridge's jax profile over HTTP. A break is logged `reconcile.break` (error),
counted in the metric, stored for `status` (trade_executor_reconcile_breaks) and turns /health
degraded; a fill missed after IB's false `Cancelled` is corrected through the executor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from structlog.testing import capture_logs

from tests.support import (
    ThreadedBridge,
    approve,
    insert_signal,
    make_settings,
    running_service,
    wait_for,
)
from trade_executor.broker.jsonnum import dumps
from trade_executor.domain.breaks import ReconcileBreak
from trade_executor.service.run import Service

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def service_on(
    db_url: str, bridge: ThreadedBridge, **overrides: Any
) -> AsyncIterator[Service]:
    values: dict[str, Any] = {
        "default_order_type": "MKT",
        "order_protection": "bracket",
        "reconcile_interval": 3600,  # passes are run by the test, one at a time
    }
    values.update(overrides)
    async with running_service(make_settings(db_url, bridge, **values)) as service:
        assert service.actors is not None
        with anyio.fail_after(10):  # the pass at start is over: the test's passes run alone
            while service.actors.reconciler.passes < 1:
                await anyio.sleep(0.01)
        yield service


async def one_pass(service: Service) -> tuple[ReconcileBreak, ...]:
    assert service.actors is not None
    found = await service.actors.reconciler.reconcile_once()
    assert found is not None, "the pass could not read the bridge or the ledger"
    return found


def bridge_post(bridge: ThreadedBridge, path: str, body: dict[str, Any]) -> Any:
    """An order sent to the bridge by someone else (TWS, a person, the original service)."""
    response = httpx.post(bridge.url + path, content=dumps(body).encode(), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


async def filled_entry(conn: asyncpg.Connection, bridge: ThreadedBridge, symbol: str) -> Any:
    """A MKT bracket entry that fills at once; its children stay working."""
    bridge.set_price(symbol, "150")
    signal_id = await insert_signal(conn, symbol)
    await approve(conn, signal_id)
    await wait_for(
        conn, "SELECT state FROM executions WHERE signal_id = $1", signal_id, expect="filled"
    )
    return await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", signal_id)


async def health(service: Service) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{service.http_port}/health")
    return response.status_code, response.json()


def metric(service: Service, kind: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "trade_executor_reconcile_breaks_total", {"kind": kind}
    )
    return value or 0.0


async def test_a_clean_ledger_has_no_break(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with service_on(db_url, bridge) as service:
        await filled_entry(conn, bridge, "CLEAN")
        assert await one_pass(service) == ()
        status, body = await health(service)
    assert status == 200 and body["status"] == "ok" and body["reconcile_breaks"] == 0


async def test_a_position_nobody_ordered_through_the_service_is_an_orphan(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with service_on(db_url, bridge) as service:
        bridge.set_price("ORPH", "50")
        bridge_post(
            bridge,
            "/orders",
            {"symbol": "ORPH", "action": "BUY", "quantity": 7, "order_type": "MKT"},
        )
        with capture_logs() as logs:
            found = await one_pass(service)
        status, body = await health(service)
        assert service.store is not None
        stored = await service.store.open_breaks()
        orders_before = len(bridge.orders())

    assert len(found) == 1, found
    [orphan] = found
    assert (orphan.kind.value, orphan.symbol, orphan.execution_id) == (
        "unexplained_position",
        "ORPH",
        None,
    )
    assert orphan.detail["broker_quantity"] == 7
    lines = [e for e in logs if e["event"] == "reconcile.break"]
    assert len(lines) == 1, lines
    [line] = lines
    assert line["log_level"] == "error" and line["kind"] == "unexplained_position"
    assert line["symbol"] == "ORPH"
    assert metric(service, "unexplained_position") == 1
    assert status == 503 and body["status"] == "degraded" and body["reconcile_breaks"] == 1
    assert [(b.kind, b.symbol) for b in stored] == [("unexplained_position", "ORPH")]
    row = await conn.fetchrow("SELECT * FROM trade_executor_reconcile_breaks")
    assert row is not None
    assert row["kind"] == "unexplained_position" and row["cleared_at"] is None
    assert orders_before == 1  # the reconciler placed nothing


async def test_a_filled_entry_whose_position_is_gone_is_missing(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with service_on(db_url, bridge) as service:
        execution = await filled_entry(conn, bridge, "GONE")
        bridge_post(bridge, "/positions/GONE/close", {})  # closed in TWS, say
        found = await one_pass(service)

    [missing] = found
    assert (missing.kind.value, missing.symbol, missing.execution_id) == (
        "missing_position",
        "GONE",
        execution["id"],
    )
    assert missing.detail["broker_quantity"] == 0
    assert missing.detail["ledger_min"] == execution["filled_qty"] == 133


async def test_a_position_whose_day_children_expired_is_unprotected(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with service_on(db_url, bridge) as service:
        execution = await filled_entry(conn, bridge, "NITE")
        assert await one_pass(service) == ()  # protected by its working stop
        expired = bridge.admin("POST", "/admin/session-close")["expired"]
        assert sorted(expired) == sorted(execution["child_order_ids"])
        found = await one_pass(service)
        orders_after = bridge.orders()

    [unprotected] = found
    assert (unprotected.kind.value, unprotected.symbol, unprotected.execution_id) == (
        "unprotected_position",
        "NITE",
        execution["id"],
    )
    assert len(orders_after) == 3  # nothing was placed to protect it


async def test_fills_after_a_cancelled_are_reported_and_corrected(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    """IB reports `Cancelled` (twice: the poller's confirming read sees it too), then the entry
    fills: the poller records `cancelled` with nothing filled. The next pass finds the fills,
    reports `fill_after_cancel`, and the executor records them; the pass after that is clean."""
    async with service_on(db_url, bridge) as service:
        bridge.set_faults(cancelled_before_fill=1.0, cancelled_reads=2)
        bridge.set_price("PHNT", "150")
        signal_id = await insert_signal(conn, "PHNT")
        await approve(conn, signal_id)
        await wait_for(
            conn,
            "SELECT state FROM executions WHERE signal_id = $1",
            signal_id,
            expect="cancelled",
        )
        bridge.set_faults(cancelled_before_fill=0.0)
        before = await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", signal_id)
        assert before is not None
        found = await one_pass(service)
        await wait_for(
            conn,
            "SELECT filled_qty FROM executions WHERE signal_id = $1",
            signal_id,
            expect=133,
        )
        after = await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", signal_id)
        assert after is not None
        again = await one_pass(service)
        assert service.actors is not None
        risk_used = service.actors.executor.riskbook.daily_risk_used(after["updated_at"])

    assert before["filled_qty"] == 0
    [late] = found
    assert (late.kind.value, late.execution_id, late.order_id) == (
        "fill_after_cancel",
        before["id"],
        before["order_id"],
    )
    assert after["state"] == "cancelled" and after["filled_qty"] == 133
    assert after["avg_fill_price"] is not None
    kinds = [
        r["kind"]
        for r in await conn.fetch(
            "SELECT kind FROM execution_events WHERE execution_id = $1 ORDER BY id", before["id"]
        )
    ]
    assert kinds[-1] == "reconcile.fill_corrected"
    assert again == ()  # corrected: the position is explained and protected
    assert risk_used == after["risk_amount"]  # its risk counts again


async def test_the_periodic_pass_finds_a_break_and_clears_it(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with service_on(db_url, bridge, reconcile_interval=0.3) as service:
        bridge.set_price("TICK", "20")
        bridge_post(
            bridge,
            "/orders",
            {"symbol": "TICK", "action": "BUY", "quantity": 3, "order_type": "MKT"},
        )
        await wait_for(
            conn,
            "SELECT count(*) FROM trade_executor_reconcile_breaks WHERE symbol = 'TICK'"
            " AND cleared_at IS NULL",
            expect=1,
        )
        bridge_post(bridge, "/positions/TICK/close", {})
        await wait_for(
            conn,
            "SELECT count(*) FROM trade_executor_reconcile_breaks WHERE symbol = 'TICK'"
            " AND cleared_at IS NOT NULL",
            expect=1,
        )
        with anyio.fail_after(5):
            while (await health(service))[0] != 200:
                await anyio.sleep(0.05)
