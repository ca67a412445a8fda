"""Issue 20, finding 4: every position held overnight lost its stop. DAY children expire at the
session close (the jax paper bridge's `/admin/session-close`); at the next open the position is
protected again once (one `/protect` in the bridge's request log), not twice across a restart
of the exits (trade-executor), and again once at the open after that. PostgreSQL, HTTP, an
injected clock and session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import pytest

from tests.support import ThreadedBridge, threaded_bridge
from tests.support.ledgers import PgLedger, actor_settings, seed_execution
from trade_executor.actors.exits import ExitFollower
from trade_executor.broker.client import BrokerClient
from trade_executor.domain.execution import Changes
from trade_executor.domain.models import Action, BracketOrderRequest, OrderType
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.observability.metrics import Metrics
from trade_executor_dev.paper import Faults

pytestmark = pytest.mark.anyio
WAIT = 20.0


@pytest.fixture
def jax_bridge() -> Iterator[ThreadedBridge]:
    with threaded_bridge(profile="jax", faults=Faults(latency_scale=0.01)) as running:
        yield running


class Session:
    """The market's hours as the test says them."""

    def __init__(self) -> None:
        self.open = False
        self.opened: datetime | None = None

    def is_open(self, at: datetime) -> bool:
        return self.open

    def last_open(self, at: datetime) -> datetime | None:
        return self.opened


def protects(bridge: ThreadedBridge, symbol: str) -> list[dict[str, Any]]:
    return [
        r
        for r in bridge.requests()
        if r["method"] == "POST" and r["path"] == f"/positions/{symbol}/protect"
    ]


async def position_state(ledger: PgLedger, execution_id: Any, want: str) -> Any:
    with anyio.fail_after(WAIT):
        while True:
            row = await ledger.store.get_execution(execution_id)
            if row is not None and row.position_state == want:
                return row
            await anyio.sleep(0.02)


async def reprotections(ledger: PgLedger, execution_id: Any, count: int) -> None:
    """Until the ledger holds `count` `position.reprotected` events: the event is written after
    the position is open again, so a test that stopped the follower at "open" lost it."""
    with anyio.fail_after(WAIT):
        while True:
            events = [kind for kind, _ in await ledger.events(execution_id)]
            if events.count("position.reprotected") >= count:
                return
            await anyio.sleep(0.02)


async def test_day_children_expire_and_the_position_is_protected_once_per_open(
    db_url: str, jax_bridge: ThreadedBridge
) -> None:
    settings = actor_settings(jax_bridge.url, database_url=db_url, order_poll_interval=0.05)
    session = Session()
    now = [datetime.now(UTC)]
    async with PgLedger.emptied(db_url) as ledger, BrokerClient(jax_bridge.url, 5) as broker:
        placed = await broker.place(
            BracketOrderRequest(
                "OVN", Action.BUY, 133, OrderType.LMT, Decimal(145), Decimal(160), Decimal(150)
            )
        )
        jax_bridge.set_price("OVN", "150")
        held = await seed_execution(
            ledger, ExecutionState.FILLED, now[0].date(), symbol="OVN", order_id=placed.order_id
        )
        await ledger.store.apply(
            held.id,
            Transition.POSITION,
            Changes(
                position_state="open",
                child_order_ids=placed.child_order_ids,
                avg_fill_price=Decimal(150),
            ),
        )

        async def exits_for_a_while(until: Any) -> None:
            follower = ExitFollower(
                settings,
                ledger.store,
                broker,
                Metrics(),
                lambda message: None,
                clock=lambda: now[0],
                session=session,
            )
            async with anyio.create_task_group() as tg:
                await tg.start(follower.run)
                await until()
                tg.cancel_scope.cancel()

        async def closes_then_opens() -> None:
            expired = jax_bridge.admin("POST", "/admin/session-close")["expired"]
            assert set(placed.child_order_ids) <= set(expired)
            await position_state(ledger, held.id, "unprotected")
            session.opened = datetime.now(UTC) + timedelta(seconds=1)  # the next morning
            await anyio.sleep(1.1)
            now[0] = session.opened + timedelta(minutes=1)
            session.open = True
            await position_state(ledger, held.id, "open")
            await reprotections(ledger, held.id, 1)

        await exits_for_a_while(closes_then_opens)
        assert len(protects(jax_bridge, "OVN")) == 1
        [body] = [r["body"] for r in protects(jax_bridge, "OVN")]
        assert (body["quantity"], Decimal(str(body["stop_loss"]))) == (133, Decimal(145))
        row = await ledger.store.get_execution(held.id)
        assert row is not None and row.reprotected_at == session.opened

        # The same session: its new stop is cancelled (expired again); trade-executor restarts
        # (a new follower): not protected a second time for this open.
        async def restarted_same_session() -> None:
            jax_bridge.admin("POST", "/admin/session-close")
            await position_state(ledger, held.id, "unprotected")
            await anyio.sleep(0.5)  # several looks

        await exits_for_a_while(restarted_same_session)
        assert len(protects(jax_bridge, "OVN")) == 1

        # The next open: protected again, once.
        async def next_open() -> None:
            session.opened = datetime.now(UTC) + timedelta(seconds=1)
            await anyio.sleep(1.1)
            now[0] = session.opened + timedelta(minutes=1)
            await position_state(ledger, held.id, "open")
            await reprotections(ledger, held.id, 2)

        await exits_for_a_while(next_open)
        assert len(protects(jax_bridge, "OVN")) == 2
        events = [kind for kind, _ in await ledger.events(held.id)]
        assert events.count("position.reprotected") == 2
