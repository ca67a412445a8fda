"""Pacing, measured where IB would count it: at the bridge. 100 approvals at once through the
whole service become 100 brackets (300 order messages); the bridge's request log, stamped on
arrival, never shows more than BRIDGE_MAX_MESSAGES_PER_SECOND messages in any one-second
window; every bracket is placed (nothing dropped) and the waits show in the metric."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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

BURST = 100
LIMIT = 45
MESSAGES = {"/orders/bracket": 3, "/orders": 1}


def busiest_window(posts: list[dict[str, Any]], seconds: Decimal = Decimal(1)) -> int:
    """The most order messages that arrived within any window of `seconds` (each window
    starting at an arrival: the worst case is always one of those)."""
    stamped = sorted((Decimal(str(p["received_at"])), MESSAGES[p["path"]]) for p in posts)
    worst = 0
    for i, (start, _) in enumerate(stamped):
        inside = 0
        for at, cost in stamped[i:]:
            if at >= start + seconds:
                break
            inside += cost
        worst = max(worst, inside)
    return worst


async def test_a_burst_of_brackets_never_exceeds_the_limit_at_the_bridge(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    settings = make_settings(
        db_url,
        bridge,
        bridge_max_messages_per_second=LIMIT,
        max_open_positions=0,  # off: every approval is placed
        max_daily_loss=0,
        max_position_value_pct=Decimal("0.002"),  # 20 shares at 10: buying power never binds
        order_poll_interval=5,
        sweep_interval=5,
    )
    async with running_service(settings) as service:
        signal_ids = []
        for n in range(BURST):
            signal_id = await insert_signal(conn, f"PB{n:03d}", "BUY", "10", "9", "12")
            signal_ids.append(signal_id)
        async with conn.transaction():  # all approvals at once
            for signal_id in signal_ids:
                await approve(conn, signal_id)
        await wait_for(
            conn,
            "SELECT count(*) FROM executions WHERE signal_id = ANY($1::uuid[])"
            " AND state = 'submitted'",
            signal_ids,
            expect=BURST,
            timeout=60,
        )
        posts = bridge.order_posts()
        waited = service.metrics.registry.get_sample_value(
            "trade_executor_bridge_pacing_wait_seconds_count"
        )
        waited_total = service.metrics.registry.get_sample_value(
            "trade_executor_bridge_pacing_wait_seconds_sum"
        )

    assert [p["path"] for p in posts] == ["/orders/bracket"] * BURST  # nothing dropped or resent
    assert all(p["status"] == 200 for p in posts)
    assert busiest_window(posts) <= LIMIT
    assert waited == BURST and waited_total is not None and waited_total > 0
