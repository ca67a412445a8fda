"""The whole pipeline on real PostgreSQL and the paper bridge over HTTP."""

from __future__ import annotations

import json
from decimal import Decimal

import anyio
import asyncpg
import pytest

from tests.support import (
    ThreadedBridge,
    approve,
    insert_signal,
    make_settings,
    running_service,
    wait_for,
)

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
    [post] = bridge.order_posts()
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
    # Sent with the order; the real bridge (jax profile) keeps its own stamp instead.
    assert post["body"]["order_ref"] == execution["client_order_id"]
    assert order["order_ref"] == "manual-entry"
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
    assert kinds[:3] == ["execution.claimed", "order.submitting", "order.submitted"]


async def _states(conn: asyncpg.Connection, signal_ids: list[object]) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT state, reason FROM executions WHERE signal_id = ANY($1::uuid[])", signal_ids
    )
    return {f"{row['state']}|{row['reason']}": row["state"] for row in rows}


async def _wait_all_decided(conn: asyncpg.Connection, signal_ids: list[object]) -> None:
    await wait_for(
        conn,
        "SELECT count(*) FROM executions WHERE signal_id = ANY($1::uuid[])"
        " AND state NOT IN ('received', 'submitting')",
        signal_ids,
        expect=len(signal_ids),
    )


async def test_twenty_approvals_at_once_place_exactly_max_open_positions(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    settings = make_settings(db_url, bridge, max_open_positions=5, max_daily_loss=100000)
    async with running_service(settings):
        signal_ids = [await insert_signal(conn, f"SYM{i:02d}", entry="50", stop="45",
                                          target="60") for i in range(20)]  # fmt: skip
        async with conn.transaction():
            for signal_id in signal_ids:
                await approve(conn, signal_id)
        await _wait_all_decided(conn, signal_ids)

    placed = bridge.parent_orders()
    assert len(placed) == 5
    assert len({o["symbol"] for o in placed}) == 5
    rows = await conn.fetch(
        "SELECT state, reason FROM executions WHERE signal_id = ANY($1::uuid[])", signal_ids
    )
    rejected = [r for r in rows if r["state"] == "rejected"]
    assert len(rejected) == 15
    assert {r["reason"] for r in rejected} == {"risk: max_open_positions"}


async def test_the_daily_budget_shrinks_sizes_then_rejects(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    settings = make_settings(db_url, bridge, max_daily_loss=1500, max_open_positions=50)
    outcomes = []
    async with running_service(settings):
        for i in range(4):
            signal_id = await insert_signal(conn, f"DAY{i}", entry="50", stop="45", target="60")
            await approve(conn, signal_id)
            await _wait_all_decided(conn, [signal_id])
            outcomes.append(
                await conn.fetchrow(
                    "SELECT state, reason, quantity, risk_amount FROM executions"
                    " WHERE signal_id = $1",
                    signal_id,
                )
            )
    assert outcomes[0]["quantity"] == 200 and outcomes[0]["risk_amount"] == Decimal("1000.00")
    assert outcomes[1]["quantity"] == 100 and outcomes[1]["risk_amount"] == Decimal("500.00")
    assert [o["reason"] for o in outcomes[2:]] == ["risk: max_daily_loss"] * 2
    committed = await conn.fetchval(
        "SELECT sum(risk_amount) FROM executions"
        " WHERE state IN ('submitted', 'partially_filled', 'filled')"
    )
    assert committed == Decimal("1500.00")
    assert len(bridge.parent_orders()) == 2


async def test_duplicates_and_races_place_one_order_per_signal(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    from trade_executor.actors.messages import ApprovalSeen

    async with running_service(make_settings(db_url, bridge)) as service:
        assert service.actors is not None
        mailbox = service.actors.mailbox
        # One approval notified ten times, plus the direct (API-style) path racing the listener.
        first = await insert_signal(conn, "DUPA")
        async with conn.transaction():
            approval_id = await approve(conn, first)
            payload = json.dumps({"approval_id": str(approval_id), "signal_id": str(first)})
            for _ in range(10):
                await conn.execute("SELECT pg_notify('trade_approvals', $1)", payload)
        for _ in range(5):
            mailbox.send_nowait(ApprovalSeen(approval_id, "api", 0.0))
        # Two approval rows for one signal, committed together.
        second = await insert_signal(conn, "DUPB")
        async with conn.transaction():
            await approve(conn, second)
            await approve(conn, second)
        await _wait_all_decided(conn, [first, second])

    placed = bridge.parent_orders()
    assert sorted(o["symbol"] for o in placed) == ["DUPA", "DUPB"]
    assert await conn.fetchval("SELECT count(*) FROM executions") == 2
    assert await conn.fetchval("SELECT count(*) FROM trades") == 2


async def test_approvals_made_while_stopped_are_taken_up_at_start(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    fresh = await insert_signal(conn, "LATE")
    await approve(conn, fresh)
    old = await insert_signal(conn, "OLD")
    old_approval = await approve(conn, old)
    await conn.execute(
        "UPDATE trade_approvals SET approved_at = now() - interval '1 hour' WHERE id = $1",
        old_approval,
    )
    async with running_service(make_settings(db_url, bridge)):
        await _wait_all_decided(conn, [fresh, old])
    assert [o["symbol"] for o in bridge.parent_orders()] == ["LATE"]
    assert await conn.fetchval("SELECT reason FROM executions WHERE signal_id = $1", old) == (
        "stale"
    )


async def test_dry_run_places_nothing(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with running_service(make_settings(db_url, bridge, execution_enabled=False)):
        signal_id = await insert_signal(conn, "DRY")
        await approve(conn, signal_id)
        await _wait_all_decided(conn, [signal_id])
    assert bridge.orders() == []
    row = await conn.fetchrow(
        "SELECT state, quantity FROM executions WHERE signal_id = $1", signal_id
    )
    assert row["state"] == "dry_run" and row["quantity"] == 133
    trade = await conn.fetchrow(
        "SELECT order_status, risk FROM trades WHERE signal_id = $1", signal_id
    )
    assert trade["order_status"] == "dry_run"


async def test_halt_rejects_new_approvals_and_resume_undoes_it(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with running_service(make_settings(db_url, bridge, sweep_interval=30)) as service:
        executor = service.actors.executor if service.actors else None
        assert executor is not None
        await conn.execute("UPDATE executor_control SET halted = true, reason = 'test'")
        with anyio.fail_after(5):  # the contract: applied within a second
            while not executor.halted:
                await anyio.sleep(0.01)
        halted_signal = await insert_signal(conn, "HALT")
        await approve(conn, halted_signal)
        await _wait_all_decided(conn, [halted_signal])
        await conn.execute("UPDATE executor_control SET halted = false, reason = NULL")
        with anyio.fail_after(5):
            while executor.halted:
                await anyio.sleep(0.01)
        resumed_signal = await insert_signal(conn, "RESUME")
        await approve(conn, resumed_signal)
        await _wait_all_decided(conn, [resumed_signal])
    assert (
        await conn.fetchval("SELECT reason FROM executions WHERE signal_id = $1", halted_signal)
        == "halted"
    )
    assert [o["symbol"] for o in bridge.parent_orders()] == ["RESUME"]
