"""(CONTRACT v3, section 3) IB_BRIDGE_TIMEOUT is a deadline for a whole bridge call: an answer
trickled slower than the timeout in total, but with each byte well within it (so httpx's
per-read timeout never fires), ends the call at the deadline. A loopback proxy
(tests/support/bridge_proxy.py) forwards to the paper bridge and trickles its answer; the proxy
sees the client hang up. The POST is then located through the (untrickled) order list.

The outcome kinds and the hang-up are asserted, never the wall time; the `fail_after` guards only
keep the old behaviour (an answer taking ~20 s) from hanging the suite."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from tests.support import ThreadedBridge
from tests.support.bridge_proxy import BridgeProxy, bridge_proxy
from trade_executor.broker import AmbiguousSubmission, BrokerClient, BrokerUnavailable
from trade_executor.broker.locate import Adopted, locate_submission
from trade_executor.broker.reconcile import SubmissionKey
from trade_executor.domain.models import Action, OrderRequest, OrderType

pytestmark = pytest.mark.anyio

TIMEOUT = 1.5  # IB_BRIDGE_TIMEOUT for these calls (0.5 s failed the untrickled reads under load)
BYTE_EVERY = 0.2  # each byte well within the timeout: only a whole-call deadline ends it
GUARD = 10.0  # far above TIMEOUT, far below the ~20 s a trickled answer takes


def client(proxy: BridgeProxy) -> BrokerClient:
    return BrokerClient(proxy.url, timeout=TIMEOUT, read_retries=3, backoff_base=0.01)


async def hung_up(proxy: BridgeProxy) -> bool:
    """The proxy saw the client close the trickled answer's connection."""
    return await anyio.to_thread.run_sync(proxy.wait_closed, GUARD)


async def test_a_trickled_post_ends_at_the_deadline_and_is_then_located(
    bridge: ThreadedBridge,
) -> None:
    order = OrderRequest(
        "TRKL", Action.BUY, 7, OrderType.LMT, limit_price=Decimal("150"), order_ref="exec-trkl"
    )
    with bridge_proxy(bridge.url) as proxy:
        async with client(proxy) as broker:
            proxy.set("trickle", BYTE_EVERY)
            with anyio.fail_after(GUARD), pytest.raises(AmbiguousSubmission) as lost:
                await broker.place(order)
            assert "IB_BRIDGE_TIMEOUT" in str(lost.value)
            assert await hung_up(proxy)
            proxy.set(None)
            assert lost.value.attempted_at is not None
            located = await locate_submission(
                broker,
                SubmissionKey.of(order),
                attempted_at=lost.value.attempted_at,
                reread_delay=0.05,
            )
        assert proxy.hits == 1  # one POST, never re-sent
    assert isinstance(located, Adopted), located
    [parent] = bridge.parent_orders()
    assert located.order.order_id == parent["order_id"]
    assert len(bridge.order_posts()) == 1


@pytest.mark.parametrize(
    ("route", "call"),
    [("GET /orders", "orders"), ("GET /account", "account")],
)
async def test_a_trickled_read_ends_at_the_deadline_retries_included(
    route: str, call: str, bridge: ThreadedBridge
) -> None:
    with bridge_proxy(bridge.url) as proxy:
        async with client(proxy) as broker:
            proxy.set("trickle", BYTE_EVERY, on=route)
            with anyio.fail_after(GUARD), pytest.raises(BrokerUnavailable) as down:
                await getattr(broker, call)()
            assert "IB_BRIDGE_TIMEOUT" in str(down.value)
            assert down.value.endpoint == route
            assert await hung_up(proxy)
            # The retries share the one deadline: no second trickled attempt was started
            # after the deadline passed (one attempt, cut off).
            assert proxy.hits == 1
            proxy.set(None)
            await getattr(broker, call)()  # the pool is healthy afterwards
