"""Restarts, lost connections and two instances: nothing lost, nothing doubled."""

from __future__ import annotations

import anyio
import asyncpg
import pytest

from tests.support import (
    ThreadedBridge,
    approve,
    insert_signal,
    make_settings,
    running_service,
    threaded_bridge,
    wait_for,
)
from trade_executor.service.run import Service
from trade_executor.service.systemd import SystemdNotifier
from trade_executor_dev.paper import Faults

# The service never blocks the event loop (blockbuster: tests/conftest.py).
pytestmark = [pytest.mark.anyio, pytest.mark.no_blocking]


async def test_pollers_resume_after_a_restart_and_a_timeout_cancels(
    db_url: str, conn: asyncpg.Connection
) -> None:
    with threaded_bridge(faults=Faults(fill_mode="never")) as bridge:
        settings = make_settings(db_url, bridge, order_poll_timeout=3)
        async with running_service(settings):
            signal_id = await insert_signal(conn, "WORK")
            await approve(conn, signal_id)
            await wait_for(
                conn, "SELECT state FROM executions WHERE signal_id = $1", signal_id,
                expect="submitted",
            )  # fmt: skip
        # Stopped with the order working; the poller comes back and its clock ran out.
        async with running_service(settings) as service:
            await wait_for(
                conn, "SELECT state FROM executions WHERE signal_id = $1", signal_id,
                expect="cancelled",
            )  # fmt: skip
            assert (service.actors.pollers if service.actors else None) is not None
        [order] = bridge.parent_orders()
        assert order["status"] in ("Cancelled", "ApiCancelled")
        kinds = await conn.fetch(
            "SELECT e.kind FROM execution_events e JOIN executions x ON x.id = e.execution_id"
            " WHERE x.signal_id = $1",
            signal_id,
        )
        assert "poller.timeout" in {k["kind"] for k in kinds}


async def test_fills_are_recorded_by_the_poller(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with running_service(make_settings(db_url, bridge)):
        signal_id = await insert_signal(conn, "FILL", entry="100", stop="95", target="110")
        await approve(conn, signal_id)
        await wait_for(
            conn, "SELECT state FROM executions WHERE signal_id = $1", signal_id,
            expect="submitted",
        )  # fmt: skip
        bridge.set_price("FILL", "99")
        await wait_for(
            conn, "SELECT state FROM executions WHERE signal_id = $1", signal_id,
            expect="filled",
        )  # fmt: skip
    row = await conn.fetchrow(
        "SELECT e.filled_qty, e.quantity, t.filled_qty AS trade_filled, t.order_status"
        " FROM executions e JOIN trades t ON t.id = e.id::text WHERE e.signal_id = $1",
        signal_id,
    )
    assert row is not None
    assert row["filled_qty"] == row["quantity"] == row["trade_filled"]
    assert row["order_status"] == "Filled"


async def test_the_listener_survives_a_terminated_connection(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    settings = make_settings(db_url, bridge, sweep_interval=60)
    async with running_service(settings) as service:
        listener = service.actors.listener if service.actors else None
        assert listener is not None
        terminated = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        assert terminated >= 1
        # Committed while the listener is (probably) disconnected: the catch-up finds it.
        signal_id = await insert_signal(conn, "GAP")
        await approve(conn, signal_id)
        await wait_for(conn, "SELECT order_id FROM trade_approvals WHERE signal_id = $1", signal_id)
        assert listener.health.reconnects >= 1
    assert [o["symbol"] for o in bridge.parent_orders()] == ["GAP"]


async def test_a_standby_takes_over_when_the_active_instance_dies(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    settings = make_settings(db_url, bridge)
    standby = Service(settings, notifier=SystemdNotifier(None))
    codes: list[int] = []
    async with anyio.create_task_group() as tg:
        async with running_service(settings):

            async def run_standby() -> None:
                codes.append(await standby.run())

            tg.start_soon(run_standby)
            with anyio.fail_after(10):
                while standby.role != "standby":
                    await anyio.sleep(0.02)
            first = await insert_signal(conn, "ACT1")
            await approve(conn, first)
            await wait_for(conn, "SELECT order_id FROM trade_approvals WHERE signal_id = $1", first)
            assert standby.role == "standby"
        # The active one is gone (its connections closed): the standby takes over.
        with anyio.fail_after(15):
            while standby.role != "active":
                await anyio.sleep(0.02)
        second = await insert_signal(conn, "ACT2")
        await approve(conn, second)
        await wait_for(conn, "SELECT order_id FROM trade_approvals WHERE signal_id = $1", second)
        standby.request_stop()
    assert codes == [0]
    assert sorted(o["symbol"] for o in bridge.parent_orders()) == ["ACT1", "ACT2"]


async def test_a_lost_leader_lock_stops_the_actors_and_leads_again(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with running_service(make_settings(db_url, bridge)) as service:
        first_executor = service.actors.executor if service.actors else None
        terminated = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'trade-executor leader' AND datname = current_database()"
        )
        assert terminated == 1
        with anyio.fail_after(15):
            while (
                service.actors.executor if service.actors else None
            ) is first_executor or service.role != "active":
                await anyio.sleep(0.02)
        signal_id = await insert_signal(conn, "RELEAD")
        await approve(conn, signal_id)
        await wait_for(conn, "SELECT order_id FROM trade_approvals WHERE signal_id = $1", signal_id)
    assert [o["symbol"] for o in bridge.parent_orders()] == ["RELEAD"]


async def test_an_unknown_resolved_as_submitted_is_followed_without_a_restart(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    import httpx

    from trade_executor.domain.execution import Changes
    from trade_executor.domain.states import Transition
    from trade_executor.store.postgres import PgStore, create_pool

    # An order the bridge has, whose answer was lost: the ledger says `unknown`.
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{bridge.url}/orders",
            json={"symbol": "LOST", "action": "BUY", "quantity": 10, "order_type": "LMT",
                  "limit_price": 50},
        )  # fmt: skip
    answer = response.json()
    signal_id = await insert_signal(conn, "LOST", entry="50", stop="45", target="60")
    await approve(conn, signal_id)
    await conn.execute(
        "INSERT INTO executions (id, signal_id, state, reason, client_order_id, symbol, action,"
        " quantity, entry_price, risk_amount)"
        " VALUES (gen_random_uuid(), $1, 'unknown', 'ambiguous_submission', 'te-lost', 'LOST',"
        " 'BUY', 10, 50, 50)",
        signal_id,
    )
    settings = make_settings(db_url, bridge, sweep_interval=0.3)
    async with running_service(settings):
        pool = await create_pool(db_url, min_size=1, max_size=1)
        try:
            execution = await PgStore(pool).execution_for_signal(signal_id)
            assert execution is not None
            changes = Changes(order_id=answer["order_id"], submitted_at=execution.created_at)
            assert await PgStore(pool).apply(execution.id, Transition.RESOLVE_SUBMITTED, changes)
        finally:
            await pool.close()
        bridge.set_price("LOST", "49")
        await wait_for(
            conn, "SELECT state FROM executions WHERE signal_id = $1", signal_id,
            expect="filled",
        )  # fmt: skip
