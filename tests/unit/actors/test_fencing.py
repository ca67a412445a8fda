"""Fencing on the memory store (CONTRACT section 5, "Fencing"), on asyncio and trio.

A deposed leader (its store fenced with an epoch the database no longer has) must change nothing:
its claim inserts no execution, its intent write leaves the row `received`, and it never POSTs.
The actors run as `build_actors` wires them, against the paper bridge over real HTTP, whose
request log is the judge of "never POSTs".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import anyio
import pytest
from structlog.testing import capture_logs

from tests.support import PaperServer
from trade_executor.actors.executor import Executor
from trade_executor.actors.supervisor import Supervisor
from trade_executor.actors.wiring import build_actors
from trade_executor.broker.client import BrokerClient
from trade_executor.config import Settings, load_settings
from trade_executor.domain.execution import Changes
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.metrics import Metrics
from trade_executor.store.errors import Fenced
from trade_executor.store.protocol import Claimed, ClaimOutcome
from trade_executor.testing import MemoryStore

pytestmark = pytest.mark.anyio

DEADLINE = 15.0  # guards against a hang only


def settings_for(paper: PaperServer) -> Settings:
    return load_settings(
        database_url=None,
        ib_bridge_url=paper.url,
        execution_enabled=True,
        max_daily_loss=100000,
        order_poll_interval=0.1,
        sweep_interval=600,
        listener_health_interval=0.2,
        shutdown_grace=1,
        http_port=0,
    )


@asynccontextmanager
async def leading(settings: Settings, store: MemoryStore) -> AsyncIterator[Executor]:
    """The actors of one instance that took over (its store fenced with the new epoch)."""
    store.fence(store.take_over())
    async with BrokerClient(settings.ib_bridge_url, settings.ib_bridge_timeout) as broker:
        actors = build_actors(settings, store, broker, Metrics(), store.notifications.connect)
        async with anyio.create_task_group() as tg:
            await actors.start(tg, Supervisor(backoff_base=0.01))
            yield actors.executor
            tg.cancel_scope.cancel()


async def posts(paper: PaperServer) -> list[dict[str, Any]]:
    log = await paper.call("GET", "/admin/requests")
    return [r for r in log["requests"] if r["method"] == "POST"]


async def until_logged(
    logs: list[MutableMapping[str, Any]], event: str
) -> MutableMapping[str, Any]:
    with anyio.fail_after(DEADLINE):
        while True:
            for entry in logs:
                if entry.get("event") == event:
                    return entry
            await anyio.sleep(0.01)


# -- the store alone --------------------------------------------------------------------------


async def test_a_fenced_claim_inserts_nothing() -> None:
    store = MemoryStore()
    store.fence(store.take_over())
    signal_id = store.add_signal("FENCA")
    approval_id = store.add_approval(signal_id, notify=False)
    store.take_over()  # another instance leads now

    with pytest.raises(Fenced) as raised:
        await store.claim(approval_id, uuid4(), "te-fenced-claim")

    assert (raised.value.epoch, raised.value.current) == (1, 2)
    assert store.executions == [] and store.events == []


async def test_the_current_epoch_claims_and_writes_its_intent() -> None:
    """The control: the same calls succeed while the epoch still leads."""
    store = MemoryStore()
    store.take_over()
    store.fence(store.take_over())
    signal_id = store.add_signal("FENCB")
    outcome = await store.claim(store.add_approval(signal_id, notify=False), uuid4(), "te-ok")
    assert isinstance(outcome, Claimed)
    intent = await store.apply(outcome.execution.id, Transition.BEGIN_SUBMIT, Changes(quantity=1))
    assert intent.state is ExecutionState.SUBMITTING


async def test_a_fenced_intent_changes_nothing() -> None:
    store = MemoryStore()
    store.fence(store.take_over())
    signal_id = store.add_signal("FENCC")
    outcome = await store.claim(store.add_approval(signal_id, notify=False), uuid4(), "te-c")
    assert isinstance(outcome, Claimed)
    events_before = store.events
    store.take_over()

    with pytest.raises(Fenced):
        await store.apply(outcome.execution.id, Transition.BEGIN_SUBMIT, Changes(quantity=133))

    assert store.execution_of(signal_id) == outcome.execution  # state, quantity: all unchanged
    assert store.events == events_before
    # Fencing guards claims and intents only: a deposed leader may still record what the broker
    # already has (its answer to an order it sent before the takeover).
    rejected = await store.apply(outcome.execution.id, Transition.REJECT, Changes(reason="x"))
    assert rejected.state is ExecutionState.REJECTED


# -- the executor -----------------------------------------------------------------------------


async def test_a_deposed_executor_claims_nothing_and_posts_nothing(paper: PaperServer) -> None:
    store = MemoryStore()
    with capture_logs() as logs:
        async with leading(settings_for(paper), store):
            store.take_over()  # another instance took over; this one has not noticed yet
            signal_id = store.add_signal("FEND")
            store.add_approval(signal_id)
            fenced = await until_logged(logs, "approval.fenced")

    assert fenced["log_level"] == "warning"
    assert store.execution_of(signal_id) is None
    assert await posts(paper) == []
    assert not [e for e in logs if e["log_level"] in ("error", "critical")], logs


class TakenOverAfterClaim(MemoryStore):
    """Another instance takes over right after this one's claim commits: the claim stands, the
    intent write that follows is fenced."""

    async def claim(
        self, approval_id: UUID, execution_id: UUID, client_order_id: str
    ) -> ClaimOutcome:
        outcome = await super().claim(approval_id, execution_id, client_order_id)
        self.take_over()
        return outcome


async def test_a_fenced_intent_sends_nothing_and_leaves_the_row_received(
    paper: PaperServer,
) -> None:
    store = TakenOverAfterClaim()
    with capture_logs() as logs:
        async with leading(settings_for(paper), store) as executor:
            signal_id = store.add_signal("FENE")
            store.add_approval(signal_id)
            fenced = await until_logged(logs, "execution.fenced")
            reserved = executor.riskbook.daily_risk_used(datetime.now(UTC))

    assert fenced["log_level"] == "warning"
    execution = store.execution_of(signal_id)
    assert execution is not None
    assert execution.state is ExecutionState.RECEIVED  # left for the new leader
    assert execution.reason is None and execution.quantity is None
    assert [e.kind for e in store.events_of(execution.id)] == ["execution.claimed"]
    assert await posts(paper) == []
    assert reserved == Decimal(0)  # the deposed instance's reservation was released
    assert not [e for e in logs if e["log_level"] in ("error", "critical")], logs
