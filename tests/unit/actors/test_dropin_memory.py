"""Drop-in behaviour of the actors on the memory store, on asyncio AND trio: status approvals
(notified, missed, switched off by APPROVAL_SOURCES), the original's orders, guardrails failing
closed. (Our writes to the original's tables are PostgreSQL's: tests/integration/
test_dropin_original_tables.py and test_dropin.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from tests.support import PaperServer, ledgers
from tests.support.ledgers import MemoryLedger, actor_settings, running_actors
from trade_executor.config.sources import Settings
from trade_executor.domain.execution import Execution
from trade_executor.domain.guardrails import GuardrailFacts, InstanceRow
from trade_executor.domain.ledger import OriginalTrade
from trade_executor.domain.states import ExecutionState
from trade_executor.store.protocol import OriginalTables
from trade_executor_dev.testing import MemoryStore

pytestmark = pytest.mark.anyio

S = ExecutionState


Bridge = PaperServer


@dataclass(frozen=True)
class _Running:
    store: MemoryStore


def settings_for(paper: Bridge, **overrides: Any) -> Settings:
    return actor_settings(paper.url, **overrides)


@asynccontextmanager
async def running(settings: Settings, store: MemoryStore | None = None) -> AsyncIterator[_Running]:
    """The actors of `build_actors` on a memory store (a new one unless given)."""
    ledger = MemoryLedger(store)
    async with running_actors(settings, ledger):
        yield _Running(ledger.memory)


async def settled(store: MemoryStore, signal_id: UUID) -> Execution:
    return await ledgers.settled(MemoryLedger(store), signal_id)


async def test_a_status_approval_is_ordered_once(paper: Bridge) -> None:
    async with running(settings_for(paper)) as actors:
        store = actors.store
        signal_id = store.add_signal("STAT")
        store.approve_by_status(signal_id)
        store.add_approval(signal_id)  # and a row for the same signal
        execution = await settled(store, signal_id)

    assert execution.state is S.SUBMITTED
    assert [o["symbol"] for o in await paper.parent_orders()] == ["STAT"]
    assert [e.signal_id for e in store.executions] == [signal_id]


async def test_a_missed_status_approval_is_found_by_the_catch_up(paper: Bridge) -> None:
    store = MemoryStore()
    signal_id = store.add_signal("MISS")
    store.approve_by_status(signal_id, notify=False)  # approved while the service was down
    async with running(settings_for(paper), store=store):
        execution = await settled(store, signal_id)
    assert execution.state is S.SUBMITTED and execution.approval_source == "signal_status"
    assert execution.approval_id is None


async def test_approval_sources_switch_the_status_source_off(paper: Bridge) -> None:
    settings = settings_for(paper, approval_sources="trade_approvals", sweep_interval=0.05)
    async with running(settings) as actors:
        store = actors.store
        ignored = store.add_signal("IGN")
        store.approve_by_status(ignored)
        taken = store.add_signal("TAKE")
        store.add_approval(taken)
        await settled(store, taken)
        await settled(store, taken)  # a few sweeps later ...
    assert store.execution_of(ignored) is None  # ... the status approval is still not taken


async def test_a_signal_the_original_ordered_is_never_ordered(paper: Bridge) -> None:
    store = MemoryStore()
    signal_id = store.add_signal("DONE")
    store.original_orders[signal_id] = "trade_approvals.order_id 77"
    async with running(settings_for(paper), store=store):
        store.add_approval(signal_id)
        execution = await settled(store, signal_id)
    assert (execution.state, execution.reason) == (S.REJECTED, "already_executed")
    assert await paper.parent_orders() == []


async def test_an_unreadable_original_order_check_orders_nothing(paper: Bridge) -> None:
    async with running(settings_for(paper)) as actors:
        store = actors.store
        store.fail_next("original_order")
        signal_id = store.add_signal("UNSURE")
        store.add_approval(signal_id)
        execution = await settled(store, signal_id)
    assert execution.state is S.FAILED and (execution.reason or "").startswith("internal: ")
    assert await paper.parent_orders() == []


async def test_guardrails_fail_closed_when_they_cannot_be_read(paper: Bridge) -> None:
    store = MemoryStore()
    store.original = OriginalTables(strategy_instances=True)
    async with running(settings_for(paper), store=store):
        store.fail_next("guardrail_facts")
        signal_id = store.add_signal("GUARD")
        store.add_approval(signal_id)
        execution = await settled(store, signal_id)
    assert (execution.state, execution.reason) == (S.REJECTED, "instance_disabled")
    assert await paper.parent_orders() == []


async def test_a_disabled_instance_is_refused(paper: Bridge) -> None:
    store = MemoryStore()
    store.original = OriginalTables(strategy_instances=True)
    signal_id = store.add_signal("OFF")
    row = InstanceRow(uuid4(), False, "America/New_York", "15:55", {})
    store.guardrails[signal_id] = GuardrailFacts(
        instance_checked=True, instance_id=row.id, instance=row
    )
    async with running(settings_for(paper), store=store):
        store.add_approval(signal_id)
        execution = await settled(store, signal_id)
    assert (execution.state, execution.reason) == (S.REJECTED, "instance_disabled")


async def test_the_originals_trades_count_at_start(paper: Bridge) -> None:
    store = MemoryStore()
    store.original_trades.append(
        OriginalTrade("t1", "MSFT", Decimal(800), "Filled", datetime.now(UTC))
    )
    async with running(settings_for(paper, max_daily_loss=1000), store=store):
        signal_id = store.add_signal("AFTER")
        store.add_approval(signal_id)
        execution = await settled(store, signal_id)
    assert execution.risk_amount == Decimal(200) and execution.quantity == 40
