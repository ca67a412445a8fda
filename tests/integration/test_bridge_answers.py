"""(CONTRACT v3, section 5 "Ambiguity") Every answer to an order POST that is not a clear refusal
(a 4xx) is ambiguous and located through `GET /orders`: a 503 (with the bridge's own "not
connected" detail) after the order was created, a proxy's 502 HTML page, a 2xx whose order id is
0, missing or a string. Each is adopted when the bridge lists the order, `failed: not_placed`
only with the list's evidence, and each was POSTed exactly once (the bridge's request log and the
proxy's count). The proxy (tests/support/bridge_proxy.py) forwards to the paper bridge
(`--profile jax`) and rewrites the answer."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.test_bridge_lost_answers import event_kinds, proxy_bridge, settled
from tests.support import ThreadedBridge, approve, insert_signal, make_settings, running_service
from tests.support.bridge_proxy import bridge_proxy

pytestmark = pytest.mark.anyio

PLACED_THEN_MISREAD = ["503-after", "502-html", "id-0", "id-missing", "id-string"]


@pytest.mark.parametrize("mode", PLACED_THEN_MISREAD)
async def test_a_misread_answer_after_creation_is_adopted(
    mode: str, db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    symbol = "ANS" + str(PLACED_THEN_MISREAD.index(mode))
    with bridge_proxy(bridge.url) as proxy:
        settings = make_settings(db_url, proxy_bridge(proxy.url), order_protection="none")
        async with running_service(settings):
            proxy.set(mode)
            signal_id = await insert_signal(conn, symbol)
            await approve(conn, signal_id)
            execution = await settled(conn, signal_id)
            proxy.set(None)
        assert proxy.hits == 1  # the POST was not sent again

    [parent] = bridge.parent_orders()
    assert execution["state"] in ("submitted", "partially_filled", "filled"), dict(execution)
    assert execution["order_id"] == parent["order_id"] and parent["order_id"] > 0
    assert len(bridge.order_posts()) == 1
    kinds = await event_kinds(conn, execution["id"])
    assert "order.adopted" in kinds and "order.submitted" not in kinds
    # The order's risk stays counted: it is held by an open execution, not given back.
    assert execution["risk_amount"] is not None and execution["risk_amount"] > 0


async def test_a_503_before_creation_is_not_placed_by_the_lists_evidence(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    """The proxy answered 503 "not connected" without forwarding: no longer taken on its word
    (`bridge_unavailable`), but located; the list does not show the order -> `not_placed` with
    the bridge's detail, after the list was read (`order.ambiguous` logged, reads at the bridge)."""
    with bridge_proxy(bridge.url) as proxy:
        settings = make_settings(db_url, proxy_bridge(proxy.url), order_protection="none")
        async with running_service(settings):
            reads_before = len([r for r in bridge.requests() if r["path"] == "/orders"])
            proxy.set("503")
            signal_id = await insert_signal(conn, "ANS503")
            await approve(conn, signal_id)
            execution = await settled(conn, signal_id)
            proxy.set(None)
        assert proxy.hits == 1

    list_reads = [r for r in bridge.requests() if r["method"] == "GET" and r["path"] == "/orders"]
    assert len(list_reads) - reads_before >= 3  # the evidence: 1 + REREADS list reads
    assert execution["state"] == "failed"
    assert execution["reason"] == "not_placed: Not connected to IB Gateway"
    assert bridge.order_posts() == [] and bridge.parent_orders() == []
