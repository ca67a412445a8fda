"""AccountSnapshots: a prefetched read is reused, a read older than the approvals is not, and a
failed read is never cached (both backends)."""

from __future__ import annotations

import anyio
import httpx
import pytest

from trade_executor.actors.snapshots import AccountSnapshots
from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError, BrokerUnavailable
from trade_executor.domain.models import Account, Position

pytestmark = [pytest.mark.anyio, pytest.mark.both_backends]

ACCOUNT = (
    '{"account_id": "DU1", "net_liquidation": 100000.00, "total_cash": 100000.00,'
    ' "buying_power": 100000.00, "equity_with_loan": 100000.00, "currency": "USD"}'
)
POSITIONS = '{"positions": [], "count": 0}'


class Bridge:
    def __init__(self) -> None:
        self.reads = 0
        self.failing = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/account":
            self.reads += 1
            if self.failing:
                return httpx.Response(404, json={"detail": "nope"})
            return httpx.Response(200, content=ACCOUNT)
        return httpx.Response(200, content=POSITIONS)


async def test_a_prefetched_read_serves_the_decision() -> None:
    bridge = Bridge()
    async with BrokerClient("http://b", 2, transport=httpx.MockTransport(bridge)) as broker:
        snapshots = AccountSnapshots(broker)
        async with anyio.create_task_group() as tg:
            seen = anyio.current_time()
            snapshots.prefetch(tg)
            snapshots.prefetch(tg)  # one read at a time
            account, positions = await snapshots.fresh(seen, tg)
            assert account.account_id == "DU1" and positions == []
            assert bridge.reads == 1
            # An approval seen after that read started needs a read of its own.
            await anyio.sleep(0.01)
            await snapshots.fresh(anyio.current_time(), tg)
            assert bridge.reads == 2


async def test_a_failed_read_is_raised_and_not_cached() -> None:
    bridge = Bridge()
    bridge.failing = True
    async with BrokerClient("http://b", 2, transport=httpx.MockTransport(bridge)) as broker:
        snapshots = AccountSnapshots(broker)
        async with anyio.create_task_group() as tg:
            since = anyio.current_time()
            with pytest.raises(BrokerError):
                await snapshots.fresh(since, tg)
            bridge.failing = False
            account, _ = await snapshots.fresh(since, tg)
            assert account.net_liquidation == 100000
            assert bridge.reads == 2


class FailsWhileCancelled:
    """A bridge whose account read fails just as the read is cancelled (an executor crash)."""

    async def account(self) -> Account:
        try:
            await anyio.sleep_forever()
        finally:
            raise BrokerUnavailable("connection reset", endpoint="GET /account")

    async def positions(self) -> list[Position]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def test_a_read_failing_as_it_is_cancelled_ends_with_the_cancellation() -> None:
    """On trio the failed read once left its error wrapped in a new group, which escaped the
    snapshot's task and crashed the executor (found by the fault machine, seed 47)."""
    snapshots = AccountSnapshots(FailsWhileCancelled())  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        snapshots.prefetch(tg)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    latest = snapshots._latest
    assert latest is not None and latest.done.is_set()
