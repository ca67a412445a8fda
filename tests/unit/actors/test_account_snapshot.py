"""The account snapshot off the approval's path (CONTRACT section 5, "Account snapshot"; issue
22), against the paper bridge over real HTTP, both backends. What the bridge was asked comes from
its own request log (`GET /admin/requests`):

- a fresh snapshot serves decisions without a bridge read, and a decision made by the running
  actors reaches the bridge's order endpoint without reading the account first;
- one older than ACCOUNT_SNAPSHOT_MAX_AGE is not used: the decision waits for a new read;
- one read before an order of ours (or a fill reported to the executor) is not used: the next
  decision gets a read that shows the order's fill;
- a failed read is raised and never kept."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import anyio
import pytest

from tests.support import PaperServer
from tests.support.ledgers import MemoryLedger, actor_settings, running_actors, settled
from trade_executor.actors.account_snapshot import AccountSnapshot, NotingBroker, noting
from trade_executor.actors.messages import Message, OrderProgress
from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.domain.models import Action, OrderRequest, OrderType
from trade_executor.domain.states import ExecutionState

pytestmark = pytest.mark.anyio


class Clock:
    """The keeper's clock, moved by the test (the snapshot's age is never waited out)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def requests(paper: PaperServer) -> list[dict[str, Any]]:
    return list((await paper.call("GET", "/admin/requests"))["requests"])


async def account_reads(paper: PaperServer) -> int:
    return sum(1 for r in await requests(paper) if r["path"] == "/account")


async def test_a_fresh_snapshot_serves_decisions_without_a_read(paper: PaperServer) -> None:
    clock = Clock()
    async with BrokerClient(paper.url, 5) as broker, anyio.create_task_group() as tg:
        keeper = AccountSnapshot(broker, max_age=2.0, period=3600, clock=clock)
        await tg.start(keeper.run)
        first, _ = await keeper.current()  # the actor's first read
        before = await account_reads(paper)
        assert before == 1
        clock.now += 1.9  # younger than the maximum age
        for _ in range(5):
            account, positions = await keeper.current()
            assert account == first and positions == []
        assert await account_reads(paper) == before
        assert keeper.served == 5 and keeper.reads == 1
        tg.cancel_scope.cancel()


async def test_an_old_snapshot_is_waited_for(paper: PaperServer) -> None:
    clock = Clock()
    async with BrokerClient(paper.url, 5) as broker, anyio.create_task_group() as tg:
        keeper = AccountSnapshot(broker, max_age=2.0, period=3600, clock=clock)
        await tg.start(keeper.run)
        await keeper.current()
        assert await account_reads(paper) == 1
        clock.now += 2.0  # as old as the maximum age: no longer used
        await keeper.current()
        assert await account_reads(paper) == 2  # the decision waited for a read of its own
        assert keeper.served == 0 and keeper.reads == 2
        # That read is kept and serves the next decision.
        await keeper.current()
        assert await account_reads(paper) == 2 and keeper.served == 1
        tg.cancel_scope.cancel()


async def test_a_snapshot_from_before_our_own_order_is_not_used(paper: PaperServer) -> None:
    clock = Clock()
    async with BrokerClient(paper.url, 5) as client, anyio.create_task_group() as tg:
        # No background refresh (a period of an hour): only the decisions' own reads.
        keeper = AccountSnapshot(client, max_age=60.0, period=3600, clock=clock)
        broker = NotingBroker(client, keeper)
        await tg.start(keeper.run)
        _, positions = await keeper.current()
        assert positions == [] and await account_reads(paper) == 1
        # An order of ours, filled at once at the paper bridge: the kept read predates it.
        await broker.place(OrderRequest("AAPL", Action.BUY, 10, OrderType.MKT, order_ref="te-x"))
        _, positions = await keeper.current()
        assert [(p.symbol, p.quantity) for p in positions] == [("AAPL", 10)]
        reads = await account_reads(paper)
        assert reads >= 2  # a read that began after the order's answer (the actor's, or its own)
        # A fill reported to the executor (the pollers' OrderProgress) counts the same way.
        sent: list[Message] = []
        to_executor = noting(keeper, sent.append)
        await keeper.current()
        reads = await account_reads(paper)
        to_executor(OrderProgress(uuid4(), 10, final=True))
        await keeper.current()
        assert await account_reads(paper) > reads
        assert len(sent) == 1  # and the message still reaches the executor
        tg.cancel_scope.cancel()


async def test_a_failed_read_is_raised_and_not_kept(paper: PaperServer) -> None:
    clock = Clock()
    async with BrokerClient(paper.url, 2, read_retries=0) as broker:
        keeper = AccountSnapshot(broker, max_age=60.0, clock=clock)  # not running: reads inline
        await paper.set_faults(error_rate=1.0)
        with pytest.raises(BrokerError):
            await keeper.current()
        await paper.set_faults(error_rate=0.0)
        account, _ = await keeper.current()  # the failure was not kept: read again
        assert account.account_id
        assert keeper.reads == 2


async def test_a_decision_of_the_running_actors_reads_no_account(paper: PaperServer) -> None:
    ledger = MemoryLedger()
    settings = actor_settings(paper.url, account_snapshot_max_age=60)  # refreshed every 30 s
    async with running_actors(settings, ledger) as running:
        keeper = running.actors.account
        await keeper.current()  # the actor's first read is done
        await paper.call("DELETE", "/admin/requests")
        signal_id = await ledger.add_signal("MSFT")
        await ledger.add_approval(signal_id)
        execution = await settled(ledger, signal_id)
        assert execution.state is ExecutionState.SUBMITTED
        paths = [r["path"] for r in await requests(paper)]
        # The order went out on the kept snapshot; the account was read only after it (the
        # refresh our own order triggers).
        first_order = paths.index("/orders/bracket")
        assert "/account" not in paths[:first_order]
        assert keeper.served >= 1
