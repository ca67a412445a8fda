"""Lost order answers against the real bridge's behaviour (`--profile jax`, over real HTTP, the
whole service on PostgreSQL): the order is looked up in `GET /orders` (the bridge keeps no
order_ref, so by the unique look-alike), and it is adopted, `failed: not_placed` or `unknown`;
the bridge's own request log shows it was POSTed exactly once."""

from __future__ import annotations

from typing import Any

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
from tests.support.bridge_proxy import bridge_proxy

pytestmark = pytest.mark.anyio

SETTLED = "state NOT IN ('received', 'submitting')"


async def settled(conn: asyncpg.Connection, signal_id: object, timeout: float = 30) -> Any:
    await wait_for(
        conn,
        f"SELECT count(*) FROM executions WHERE signal_id = $1 AND {SETTLED}",
        signal_id,
        expect=1,
        timeout=timeout,
    )
    return await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", signal_id)


async def event_kinds(conn: asyncpg.Connection, execution_id: object) -> list[str]:
    rows = await conn.fetch(
        "SELECT kind FROM execution_events WHERE execution_id = $1 ORDER BY id", execution_id
    )
    return [row["kind"] for row in rows]


# (DEFAULT_ORDER_TYPE, ORDER_PROTECTION) -> the endpoint the order goes to and its listed type.
SHAPES = {
    "LMT": ("LMT", "none", "/orders", "LMT"),
    "STP": ("STP", "bracket", "/orders", "STP"),  # a stop entry is never a bracket
    "MKT": ("MKT", "none", "/orders", "MKT"),
    "bracket": ("LMT", "bracket", "/orders/bracket", "LMT"),
    "MKT-bracket": ("MKT", "bracket", "/orders/bracket", "MKT"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_a_lost_answer_is_adopted_after_exactly_one_post(
    shape: str, db_url: str, conn: asyncpg.Connection
) -> None:
    order_type, protection, path, listed_type = SHAPES[shape]
    with threaded_bridge() as bridge:
        bridge.set_price("LOSTA", "150")  # the market, for the MKT entries
        settings = make_settings(
            db_url, bridge, default_order_type=order_type, order_protection=protection
        )
        async with running_service(settings):
            bridge.set_faults(drop_after_accept=1.0)  # placed, then the connection is closed
            signal_id = await insert_signal(conn, "LOSTA")
            await approve(conn, signal_id)
            execution = await settled(conn, signal_id)
            bridge.set_faults(drop_after_accept=0.0)

        posts = bridge.order_posts()
        [parent] = bridge.parent_orders()
        children = sorted(o["order_id"] for o in bridge.orders() if o["parent_id"])
    assert [p["path"] for p in posts] == [path]  # exactly one POST, never re-sent
    assert posts[0]["body"]["order_ref"] == execution["client_order_id"]
    assert parent["order_ref"] == "manual-entry"  # the bridge kept no reference of ours
    assert parent["order_type"] == listed_type
    assert execution["state"] in ("submitted", "partially_filled", "filled"), dict(execution)
    assert execution["order_id"] == parent["order_id"]
    if path == "/orders/bracket":
        assert sorted(execution["child_order_ids"]) == children and len(children) == 2
    kinds = await event_kinds(conn, execution["id"])
    assert "order.adopted" in kinds and "order.submitted" not in kinds


async def test_a_500_before_the_order_was_created_is_not_placed(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    """The POST never reached the bridge's handler (a proxy answered 500): the bridge's list
    does not show it -> `failed: not_placed: <the bridge's detail>`, risk released, nothing
    re-sent; a later approval of the same symbol is placed normally."""
    with bridge_proxy(bridge.url) as proxy:
        async with running_service(make_settings(db_url, proxy_bridge(proxy.url))):
            proxy.set("500")
            signal_id = await insert_signal(conn, "NOPL")
            await approve(conn, signal_id)
            execution = await settled(conn, signal_id)
            proxy.set(None)
            again = await insert_signal(conn, "NOPL")
            await approve(conn, again)
            second = await settled(conn, again)
        assert proxy.hits == 1  # the failed POST was not sent again

    assert execution["state"] == "failed"
    assert execution["reason"] == "not_placed: Internal Server Error"
    assert second["state"] in ("submitted", "partially_filled", "filled")  # risk was released
    assert [p["order_id"] for p in bridge.parent_orders()] == [second["order_id"]]
    assert len(bridge.order_posts()) == 1  # only the second approval's reached the bridge


async def test_a_500_after_the_order_was_created_is_adopted(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    with bridge_proxy(bridge.url) as proxy:
        async with running_service(make_settings(db_url, proxy_bridge(proxy.url))):
            proxy.set("500-after")
            signal_id = await insert_signal(conn, "LATE5")
            await approve(conn, signal_id)
            execution = await settled(conn, signal_id)
            proxy.set(None)
        assert proxy.hits == 1

    [parent] = bridge.parent_orders()
    assert execution["state"] in ("submitted", "partially_filled", "filled"), dict(execution)
    assert execution["order_id"] == parent["order_id"]
    assert len(bridge.order_posts()) == 1
    assert "order.adopted" in await event_kinds(conn, execution["id"])


async def test_a_refused_symbol_is_not_placed_with_the_bridges_reason(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    """The real bridge answers 500 with IB's reason for a symbol IB cannot identify (POST
    /orders): not listed -> `failed: not_placed: <that reason>`, never `unknown`."""
    bridge.admin("POST", "/admin/symbols", {"unknown": ["NOSUCH"]})
    settings = make_settings(db_url, bridge, order_protection="none")
    async with running_service(settings):
        signal_id = await insert_signal(conn, "NOSUCH")
        await approve(conn, signal_id)
        execution = await settled(conn, signal_id)

    posts = bridge.order_posts()
    assert [(p["path"], p["status"]) for p in posts] == [("/orders", 500)]
    assert execution["state"] == "failed"
    assert execution["reason"].startswith("not_placed: ")
    assert "NOSUCH" in execution["reason"]
    assert bridge.parent_orders() == []


async def test_orders_survive_a_bridge_restart(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    """After the bridge restarts it answers `Unknown` for the earlier session's orders: the
    recorded fills are kept (never overwritten), and new approvals are placed and adopted
    normally in the new session."""
    settings = make_settings(db_url, bridge, order_protection="none")
    async with running_service(settings):
        bridge.set_faults(partial_fill_qty=50)
        bridge.set_price("RSTA", "150")
        first = await insert_signal(conn, "RSTA")
        await approve(conn, first)
        await wait_for(
            conn, "SELECT filled_qty FROM executions WHERE signal_id = $1", first, expect=50
        )
        bridge.admin("POST", "/admin/restart", {"client_id_changed": True})
        bridge.set_faults(partial_fill_qty=0, drop_after_accept=1.0)
        second = await insert_signal(conn, "RSTB")
        await approve(conn, second)
        adopted = await settled(conn, second)
        bridge.set_faults(drop_after_accept=0.0)
        before = await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", first)
        assert before is not None

    assert before["filled_qty"] == 50  # `Unknown` with zero fills overwrote nothing
    assert before["state"] in ("partially_filled", "unknown")
    assert adopted["state"] in ("submitted", "partially_filled", "filled"), dict(adopted)
    assert adopted["order_id"] not in (None, 0)
    assert len([p for p in bridge.order_posts()]) == 2


def proxy_bridge(url: str) -> ThreadedBridge:
    """The service talks to the proxy; the test reads the truth from the bridge behind it."""
    return ThreadedBridge(url)
