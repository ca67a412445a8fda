"""(CONTRACT v3, section 5 "Ambiguity") SIGKILL between an intent's commit and its POST (the
`after_submitting` crash point), then a standby takes over (or a new instance starts): the
approval is not lost and never doubled.

- The bridge's session still lists our earlier order under its id: after reads spanning
  IB_BRIDGE_TIMEOUT plus the settle window, the order is proven absent, the execution is decided
  again and sent exactly once under its own client_order_id.
- The bridge restarted in between with another client id (our earlier working order no longer
  listed): absence cannot be proven, the execution ends `failed: not_placed: recovery: ...`
  (error-level `recovery.absence_unproven`), never re-sent.
In both the breaker is untouched: recovery after our own crash never counts toward it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import anyio
import asyncpg
import pytest

from tests.chaos.test_crash import events_of, symbol
from tests.support import ThreadedBridge, approve, insert_signal, wait_for
from tests.support.chaos import ENTRY, STOP, TARGET, ExecutorProcess, Harness, wait_settled

pytestmark = pytest.mark.anyio

FAST = {"IB_BRIDGE_TIMEOUT": "1", "MAX_CONSECUTIVE_FAILURES": "1"}


async def crash_after_second_intent(
    harness: Harness, conn: asyncpg.Connection, *, standby: bool = True
) -> tuple[uuid.UUID, uuid.UUID, ExecutorProcess | None]:
    """A first approval placed (working at the bridge), then a second killed after its intent;
    with `standby`, a second instance waiting to take over (returned)."""
    first = harness.start(fault="after_submitting", fault_after=1, environment=FAST)
    await first.wait_ready()
    waiting = None
    if standby:
        waiting = harness.start(environment=FAST)
        await waiting.wait_event("supervisor.standby")
    placed = await insert_signal(conn, symbol("E"), "BUY", ENTRY, STOP, TARGET)
    await approve(conn, placed)
    await wait_for(conn, "SELECT order_id IS NOT NULL FROM executions WHERE signal_id = $1", placed)
    crashed = await insert_signal(conn, symbol("C"), "BUY", ENTRY, STOP, TARGET)
    await approve(conn, crashed)
    assert await first.wait_exit() == -signal.SIGKILL, "the fault point did not fire"
    state = await conn.fetchval("SELECT state FROM executions WHERE signal_id = $1", crashed)
    assert state == "submitting"
    return placed, crashed, waiting


def posts_for(bridge: ThreadedBridge, client_order_id: str) -> int:
    return sum(1 for p in bridge.order_posts() if p["body"].get("order_ref") == client_order_id)


async def test_an_intent_proven_unsent_is_decided_again_and_sent_once(
    harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    _placed, crashed, second = await crash_after_second_intent(harness, conn)
    assert second is not None
    await second.wait_event("supervisor.took_over")  # the standby takes over
    [execution] = await wait_settled(conn, [crashed], timeout=40)
    control = await conn.fetchrow("SELECT halted, reason FROM executor_control")
    assert await second.stop() == 0

    assert execution["state"] in ("submitted", "partially_filled", "filled"), dict(execution)
    assert posts_for(bridge, execution["client_order_id"]) == 1  # sent once, after the proof
    kinds = await events_of(conn, crashed)
    assert kinds.count("order.not_sent") == 1 and kinds.count("order.submitting") == 2, kinds
    assert second.events("recovery.not_sent")
    assert control is not None and not control["halted"], dict(control or {})
    assert not second.events("executor.breaker_tripped")


async def test_without_proof_of_absence_it_fails_for_an_operator_and_is_never_resent(
    harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    # No standby here: the bridge must restart before the next instance reads its list.
    _placed, crashed, _ = await crash_after_second_intent(harness, conn, standby=False)
    # Another client id: the working orders are not listed by the new bridge session.
    bridge.admin("POST", "/admin/restart", {"client_id_changed": True})
    second = harness.start(environment=FAST)
    await second.wait_ready()
    [execution] = await wait_settled(conn, [crashed], timeout=40)
    control = await conn.fetchrow("SELECT halted, reason FROM executor_control")
    assert await second.stop() == 0

    assert execution["state"] == "failed", dict(execution)
    assert execution["reason"].startswith("not_placed: recovery: "), execution["reason"]
    assert posts_for(bridge, execution["client_order_id"]) == 0  # never re-sent
    unproven = second.events("recovery.absence_unproven")
    assert unproven and all(r["level"] == "error" for r in unproven)
    # MAX_CONSECUTIVE_FAILURES=1: one counted failure would have halted the service.
    assert control is not None and not control["halted"], dict(control or {})
    assert not second.events("executor.breaker_tripped")
    # Listed for an operator by `status` (and so counted by the needing-operator gauge).
    status = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-m", "trade_executor", "status", "--json"],
            env={**os.environ, "DATABASE_URL": harness.db_url, "IB_BRIDGE_URL": harness.bridge_url},
            capture_output=True,
            timeout=60,
        )
    )
    need = json.loads(status.stdout)["needing_operator"]
    assert [n["execution_id"] for n in need] == [str(execution["id"])], need
    assert need[0]["why"].startswith("check the broker for the order: "), need
