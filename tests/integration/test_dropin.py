"""Drop-in on jax-trading-assistant as its users run it (CONTRACT sections 4 and 5): both approval
sources, a switch-over mid-day, dry run through the risk book, live or paper. Real PostgreSQL,
the paper bridge over HTTP, the real service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from tests.integration.dropin_support import (
    APPROVED_ARTIFACT,
    APPROVED_ARTIFACT_HASH,
    MSFT_APPROVAL,
    MSFT_SIGNAL,
    ORIGINAL_RISK_TODAY,
    approve_by_row,
    approve_in_ui,
    build_original_database,
    decided,
)
from tests.integration.dropin_support import insert_jax_signal as signal
from tests.support import (
    ThreadedBridge,
    approve,
    insert_signal,
    make_settings,
    running_service,
)

pytestmark = pytest.mark.anyio

WORKING = ("submitted", "partially_filled", "filled")


@pytest.fixture
def jax_url(fresh_database_url: str) -> str:
    import asyncio

    asyncio.run(build_original_database(fresh_database_url))
    return fresh_database_url


@pytest.fixture
async def jax(jax_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(jax_url)
    try:
        yield connection
    finally:
        await connection.close()


def orders_for(bridge: ThreadedBridge, symbol: str) -> list[dict[str, object]]:
    return [o for o in bridge.parent_orders() if o["symbol"] == symbol]


async def test_status_update_row_and_both_each_give_one_order(
    jax_url: str, jax: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    settings = make_settings(jax_url, bridge, max_daily_loss=100000, max_open_positions=50)
    async with running_service(settings):
        by_status = await signal(jax, "STAT")
        by_row = await signal(jax, "ROWS")
        by_both = await signal(jax, "BOTH")
        await approve_in_ui(jax, by_status)
        await approve_by_row(jax, by_row)
        async with jax.transaction():  # the UI and an approval row for one signal, at once
            await approve_in_ui(jax, by_both)
            await approve_by_row(jax, by_both)
        found = await decided(jax, [by_status, by_row, by_both])

    for symbol in ("STAT", "ROWS", "BOTH"):
        assert len(orders_for(bridge, symbol)) == 1, symbol
    assert {found[s]["state"] for s in found} <= set(WORKING)
    status = found[by_status]
    assert status["approval_id"] is None and status["approval_source"] == "signal_status"
    assert found[by_row]["approval_source"] == "trade_approvals"
    assert await jax.fetchval("SELECT count(*) FROM executions WHERE signal_id = $1", by_both) == 1
    # The original's tables: the trade carries the signal's provenance; the intent its order.
    trade = await jax.fetchrow("SELECT * FROM trades WHERE signal_id = $1", by_status)
    assert trade is not None
    assert trade["artifact_id"] == APPROVED_ARTIFACT
    assert trade["artifact_hash"] == APPROVED_ARTIFACT_HASH
    intent = await jax.fetchrow("SELECT * FROM order_intents WHERE signal_id = $1", by_status)
    assert intent is not None
    assert json.loads(intent["metadata"])["brokerOrderId"] == str(status["order_id"])
    assert intent["status"] in ("Submitted", "Filled", "PreSubmitted")


async def test_switch_over_mid_day(
    jax_url: str, jax: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    """Signals the original ordered minutes ago are rejected `already_executed`, nothing is
    sent, its order id stays; its trades of today count against the daily budget."""
    # One more, approved in its UI and ordered by it a minute ago (trade row + order intent).
    ordered = await signal(jax, "AMZN", entry="180", stop="176", target="190")
    await approve_in_ui(jax, ordered)
    await jax.execute(
        """
        INSERT INTO trades (id, symbol, direction, entry, stop, targets, strategy_id, notes,
                            risk, created_at, signal_id, order_status, filled_qty,
                            avg_fill_price)
        VALUES ('e2000000-0000-4000-8000-000000000009', 'AMZN', 'BUY', 180, 176, '[190]',
                'rsi_momentum', 'by the original',
                '{"amount": 200, "quantity": 50, "order_id": "79", "status": "Submitted"}',
                now() - interval '1 minute', $1, 'Submitted', 0, 0)
        """,
        ordered,
    )
    await jax.execute(
        "INSERT INTO order_intents (signal_id, symbol, side, quantity, order_type, status,"
        " metadata) VALUES ($1, 'AMZN', 'BUY', 50, 'LMT', 'Submitted',"
        ' \'{"brokerOrderId": "79"}\')',
        ordered,
    )
    budget = Decimal(1500)
    settings = make_settings(jax_url, bridge, max_daily_loss=budget, max_open_positions=50)
    async with running_service(settings):
        # MSFT's approval row (order 77) is found by the start-up sweep, AMZN's status approval
        # too; a fresh signal is sized against what the original's trades left of the budget.
        fresh = await signal(jax, "ORCL")
        await approve_by_row(jax, fresh)
        found = await decided(jax, [MSFT_SIGNAL, ordered, fresh])

    assert found[MSFT_SIGNAL]["state"] == "rejected"
    assert found[MSFT_SIGNAL]["reason"] == "already_executed"
    assert found[ordered]["reason"] == "already_executed"
    assert orders_for(bridge, "MSFT") == [] and orders_for(bridge, "AMZN") == []
    assert (
        await jax.fetchval("SELECT order_id FROM trade_approvals WHERE id = $1", MSFT_APPROVAL)
        == "77"
    )
    assert await jax.fetchval("SELECT count(*) FROM trades WHERE signal_id = $1", MSFT_SIGNAL) == 1
    # Its trades of today: 720 in the fixture plus AMZN's 200. Stop distance 5: floor(left / 5).
    left = budget - ORIGINAL_RISK_TODAY - Decimal(200)
    assert found[fresh]["state"] in WORKING
    assert found[fresh]["quantity"] == int(left // 5)
    assert found[fresh]["risk_amount"] == Decimal(int(left // 5) * 5)
    # Recorded in its audit trail as its own idempotency guard does.
    audits = await jax.fetch(
        "SELECT outcome, metadata FROM audit_events WHERE action = 'idempotency_guard'"
        " AND metadata ->> 'source' = 'trade-executor'"
    )
    assert {json.loads(a["metadata"])["signal_id"] for a in audits} == {
        str(MSFT_SIGNAL),
        str(ordered),
    }


async def test_dry_run_goes_through_the_risk_book(
    db_url: str, conn: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    settings = make_settings(db_url, bridge, execution_enabled=False, max_daily_loss=1000)
    async with running_service(settings):
        first = await insert_signal(conn, "DRY")
        await approve(conn, first)
        found = await decided(conn, [first])
        again = await insert_signal(conn, "DRY")
        other = await insert_signal(conn, "OTHER")
        await approve(conn, again)
        found |= await decided(conn, [again])
        await approve(conn, other)
        found |= await decided(conn, [other])
    async with running_service(settings):  # held for the day across a restart too
        later = await insert_signal(conn, "DRY")
        await approve(conn, later)
        found |= await decided(conn, [later])

    assert found[first]["state"] == "dry_run" and found[first]["risk_amount"] == Decimal(665)
    assert found[again]["reason"] == "risk: duplicate_symbol"
    assert found[later]["reason"] == "risk: duplicate_symbol"
    # The budget the dry run reserved is gone: 1000 - 665 = 335 left, stop distance 5.
    assert found[other]["state"] == "dry_run" and found[other]["quantity"] == 67
    assert bridge.parent_orders() == []
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM trades WHERE signal_id = ANY($1::uuid[])", list(found)
        )
        == 0
    )


async def test_live_account_refused_then_allowed(
    db_url: str, conn: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    bridge.admin("POST", "/admin/account", {"paper_trading": False})
    async with running_service(make_settings(db_url, bridge)):
        refused = await insert_signal(conn, "LIVE")
        await approve(conn, refused)
        found = await decided(conn, [refused])
    async with running_service(make_settings(db_url, bridge, allow_live_trading=True)):
        allowed = await insert_signal(conn, "LIVE")
        await approve(conn, allowed)
        found |= await decided(conn, [allowed])

    assert found[refused]["state"] == "rejected"
    assert found[refused]["reason"] == "live_trading_not_allowed"
    assert found[allowed]["state"] in WORKING
    assert len(orders_for(bridge, "LIVE")) == 1
