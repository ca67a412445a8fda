"""Issue 20, finding 3 over PostgreSQL and the HTTP jax bridge: both exit orders of a position
fill at IB (orders without one-cancels-other; filled here while the bridge lost IB, so neither
is cancelled). The exits book the stop that filled first on the position's own 133 shares
(-665.00, -1.0000 R), never +665.00; the reconciler reports the excess as an
`unexplained_position` break for the broker's -133."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import anyio
import pytest

from tests.support import ThreadedBridge, threaded_bridge
from tests.support.ledgers import PgLedger, actor_settings, seed_execution
from trade_executor.actors.exits import ExitFollower
from trade_executor.actors.reconciler import Reconciler
from trade_executor.broker.client import BrokerClient
from trade_executor.domain.execution import Changes
from trade_executor.domain.models import Action, OrderRequest, OrderType
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.observability.metrics import Metrics
from trade_executor_dev.paper import Faults

pytestmark = pytest.mark.anyio
WAIT = 20.0


@pytest.fixture
def jax_bridge() -> Iterator[ThreadedBridge]:
    with threaded_bridge(profile="jax", faults=Faults(latency_scale=0.01)) as running:
        yield running


async def test_both_exit_orders_fill_books_the_real_loss_and_a_break_for_the_excess(
    db_url: str, jax_bridge: ThreadedBridge
) -> None:
    settings = actor_settings(jax_bridge.url, database_url=db_url, order_poll_interval=0.05)
    async with PgLedger.emptied(db_url) as ledger, BrokerClient(jax_bridge.url, 5) as broker:
        entry = await broker.place(
            OrderRequest("BOTH", Action.BUY, 133, OrderType.LMT, Decimal(150), None)
        )
        jax_bridge.set_price("BOTH", "150")
        stop = await broker.place(
            OrderRequest("BOTH", Action.SELL, 133, OrderType.STP, None, Decimal(145))
        )
        target = await broker.place(
            OrderRequest("BOTH", Action.SELL, 133, OrderType.LMT, Decimal(160), None)
        )
        today = datetime.now(UTC).date()
        held = await seed_execution(
            ledger, ExecutionState.FILLED, today, symbol="BOTH", order_id=entry.order_id
        )
        await ledger.store.apply(
            held.id,
            Transition.POSITION,
            Changes(
                position_state="open",
                child_order_ids=(target.order_id, stop.order_id),
                avg_fill_price=Decimal(150),
            ),
        )
        jax_bridge.admin("POST", "/admin/disconnect", {"seconds": 30})
        jax_bridge.admin("POST", "/admin/fill", {"order_id": stop.order_id, "price": 145})
        await anyio.sleep(0.05)  # the stop fills first, then the target
        jax_bridge.admin("POST", "/admin/fill", {"order_id": target.order_id, "price": 160})
        jax_bridge.admin("POST", "/admin/reconnect", {})

        follower = ExitFollower(settings, ledger.store, broker, Metrics(), lambda m: None)
        async with anyio.create_task_group() as tg:
            await tg.start(follower.run)
            with anyio.fail_after(WAIT):
                while True:
                    row = await ledger.store.get_execution(held.id)
                    if row is not None and row.position_state == "closed":
                        break
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
        assert row is not None
        assert (row.exit_reason, row.exit_qty) == ("stop_loss", 133)
        assert row.realized_pnl == Decimal("-665.00")
        assert row.r_multiple == Decimal("-1.0000")

        reconciler = Reconciler(
            settings, ledger.store, broker, Metrics(), lambda m: None, confirm_delay=0
        )
        breaks = await reconciler.reconcile_once()
        assert breaks is not None
        [excess] = [b for b in breaks if b.symbol == "BOTH"]
        assert excess.kind.value == "unexplained_position"
        assert excess.detail["broker_quantity"] == -133
