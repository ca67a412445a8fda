"""Notifications from the running service (issue 23): a fill the pollers record reaches a real
receiver behind an Apprise `json://` URL, and a receiver that hangs holds up no order: the next
approval is placed while the notification is still waiting for its answer.

The real service on PostgreSQL, the jax paper bridge in its own thread, the receiver in a third.
"""

from __future__ import annotations

import anyio
import asyncpg
import pytest

from tests.support import approve, insert_signal, make_settings, running_service, threaded_bridge
from tests.support.receiver import Receiver
from trade_executor.observability.logging import configure_logging
from trade_executor_dev.paper import Faults

pytestmark = pytest.mark.anyio

STATE = "SELECT state FROM executions WHERE signal_id = $1"


async def state_in(conn: asyncpg.Connection, signal_id: object, states: set[str]) -> str:
    with anyio.fail_after(30):  # guards against a hang only
        while (state := await conn.fetchval(STATE, signal_id)) not in states:
            await anyio.sleep(0.02)
    return str(state)


async def test_a_hanging_receiver_holds_up_no_order_and_then_hears_of_the_fill(
    db_url: str, conn: asyncpg.Connection, receiver: Receiver
) -> None:
    receiver.hang.clear()  # every notification waits for an answer that does not come
    with threaded_bridge(profile="jax", faults=Faults(latency_scale=0)) as bridge:
        settings = make_settings(db_url, bridge, notify_urls=receiver.url())
        # As `run` configures it: the notifier's tap sits in the log pipeline.
        configure_logging("json", "info", secrets=settings.secret_values())
        async with running_service(settings):
            first = await insert_signal(conn, "NTFA")
            await approve(conn, first)
            await state_in(conn, first, {"submitted"})
            bridge.set_price("NTFA", "149.50")  # the entry (LMT 150) fills
            await state_in(conn, first, {"filled"})
            with anyio.fail_after(30):
                while not receiver.arrived.is_set():  # the fill's message is at the receiver
                    await anyio.sleep(0.02)
            # ... and gets no answer. Meanwhile, the next approval is decided and placed.
            second = await insert_signal(conn, "NTFB")
            await approve(conn, second)
            placed = await state_in(conn, second, {"submitted", "filled", "failed", "rejected"})
            still_hanging = not receiver.hang.is_set()
            receiver.hang.set()
    assert placed == "submitted" and still_hanging
    titles = [body["title"] for body in receiver.bodies]
    assert any(title.startswith("Filled: BUY NTFA 133 @ 1") for title in titles), titles
