"""Bridge faults: 500s, 503s, timeouts, accept-then-drop, HTML. Each ends in the documented state
(`failed` with the reason when nothing can have been placed; adopted by reconciliation when the
order is found; `unknown` when it cannot be established) and never in a second order."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import asyncpg
import pytest

from tests.support import ThreadedBridge, approve, insert_signal
from tests.support.bridge_proxy import bridge_proxy
from tests.support.chaos import (
    ENTRY,
    STOP,
    TARGET,
    Harness,
    check_invariants,
    wait_settled,
)

pytestmark = pytest.mark.anyio

# Room for every outcome: `unknown` executions keep their risk and their symbol.
# 20 shares (2000.00 of buying power) a trade, so that buying power does not bind either.
ROOMY = {
    "MAX_OPEN_POSITIONS": "100",
    "MAX_DAILY_LOSS": "1000000",
    "MAX_POSITION_VALUE_PCT": "0.02",
}


def symbol(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:7].upper()


async def approvals(conn: asyncpg.Connection, n: int, prefix: str) -> list[uuid.UUID]:
    ids = []
    for _ in range(n):
        signal_id = await insert_signal(conn, symbol(prefix), "BUY", ENTRY, STOP, TARGET)
        await approve(conn, signal_id)
        ids.append(signal_id)
    return ids


async def still_live(conn: asyncpg.Connection, bridge: ThreadedBridge) -> None:
    """A valid approval after the fault is placed, once."""
    [signal_id] = await approvals(conn, 1, "OK")
    [execution] = await wait_settled(conn, [signal_id], timeout=30)
    assert execution["state"] in ("submitted", "partially_filled", "filled"), dict(execution)
    assert (
        sum(
            o["order_ref"] == execution["client_order_id"]
            for o in bridge.parent_orders(sent_refs=True)
        )
        == 1
    )


async def kinds_of(conn: asyncpg.Connection, execution_id: Any) -> list[str]:
    rows = await conn.fetch(
        "SELECT kind FROM execution_events WHERE execution_id = $1 ORDER BY id", execution_id
    )
    return [r["kind"] for r in rows]


@pytest.mark.parametrize(
    "faults",
    [
        {"error_rate": 1.0},
        {"unavailable_rate": 1.0},
        {"latency": 2.5},  # > IB_BRIDGE_TIMEOUT (1 s here)
        {"html": 1.0},
    ],
    ids=["500", "503", "timeout", "html"],
)
async def test_bridge_down_for_every_request_fails_cleanly(
    faults: dict[str, float], harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    """Every IB route misbehaves: the account read fails, so nothing can have been placed:
    `failed` with `bridge_unavailable: ...`, never retried, never sent."""
    process = harness.start(IB_BRIDGE_TIMEOUT="1")
    await process.wait_ready()
    bridge.set_faults(**faults)
    signal_ids = await approvals(conn, 2, "D")
    rows = await wait_settled(conn, signal_ids, timeout=60, process=process)
    bridge.set_faults(error_rate=0, unavailable_rate=0, latency=0, html=0)
    for row in rows:
        assert row["state"] == "failed", dict(row)
        assert row["reason"].startswith("bridge_unavailable: "), row["reason"]
    assert bridge.orders() == []
    await still_live(conn, bridge)
    assert await process.stop() == 0
    snapshot = await check_invariants(conn, bridge)
    assert len(snapshot.parents) == 1
    assert snapshot.states()["failed"] == 2  # never retried


async def test_accept_then_drop_is_adopted(
    harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    """The bridge places the order and the answer is lost: reconciliation finds it by order_ref
    and adopts it; it is never sent twice."""
    process = harness.start(IB_BRIDGE_TIMEOUT="1")
    await process.wait_ready()
    bridge.set_faults(drop_after_accept=1.0)
    signal_ids = await approvals(conn, 3, "X")
    rows = await wait_settled(conn, signal_ids, timeout=60, process=process)
    bridge.set_faults(drop_after_accept=0)
    for row in rows:
        assert row["state"] in ("submitted", "partially_filled", "filled"), dict(row)
        assert "order.adopted" in await kinds_of(conn, row["id"])  # recorded as ADOPT
    assert len(process.events("order.ambiguous")) == 3
    adopted = {r["execution_id"] for r in process.events("order.adopted")}
    assert adopted == {str(row["id"]) for row in rows}
    await still_live(conn, bridge)
    assert await process.stop() == 0
    snapshot = await check_invariants(conn, bridge)
    assert len(snapshot.parents) == 4


# mode -> (allowed states, orders at the bridge per signal, reason prefix if not placed)
POST_FAULTS: dict[str, tuple[set[str], set[int], str | None]] = {
    # A 5xx other than the documented 503: the outcome is unknown until the bridge's list is
    # read; it does not show the order (the proxy never forwarded it) -> failed: not_placed.
    "500": ({"failed"}, {0}, "not_placed: "),
    # (v3) A 503 "not connected" is ambiguous like any 5xx: located; the proxy never forwarded
    # it, so the list does not show it -> failed: not_placed.
    "503": ({"failed"}, {0}, "not_placed: "),
    # Placed, answer unreadable / connection reset: found by order_ref -> adopted.
    "html": ({"submitted", "partially_filled", "filled"}, {1}, None),
    "reset": ({"submitted", "partially_filled", "filled"}, {1}, None),
    # Placed after the client gave up: adopted if reconciliation sees it, else unknown. Either
    # way the order exists exactly once and is never re-sent.
    "late": ({"submitted", "partially_filled", "filled", "unknown"}, {1}, None),
}


@pytest.mark.parametrize("mode", sorted(POST_FAULTS))
async def test_fault_on_the_order_post(
    mode: str, harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    states, orders, reason = POST_FAULTS[mode]
    with bridge_proxy(bridge.url) as proxy:
        harness.bridge_url = proxy.url
        process = harness.start(IB_BRIDGE_TIMEOUT="1", environment=ROOMY)
        await process.wait_ready()
        proxy.set(mode, delay=1.8)
        signal_ids = await approvals(conn, 2, "P")
        rows = await wait_settled(conn, signal_ids, timeout=60, process=process)
        proxy.set(None)
        assert proxy.hits == 2  # one POST per signal, never a second
        if mode == "late":
            await _wait_orders(bridge, 2)
        refs = [o["order_ref"] for o in bridge.parent_orders(sent_refs=True)]
        for row in rows:
            assert row["state"] in states, dict(row)
            assert refs.count(row["client_order_id"]) in orders
            if reason is not None:
                assert row["reason"].startswith(reason), row["reason"]
        await still_live(conn, bridge)
        assert await process.stop() == 0
    snapshot = await check_invariants(conn, bridge, max_daily_loss=1000000, max_open_positions=100)
    if "unknown" in states:
        assert any(e["state"] == "unknown" for e in snapshot.executions) or mode == "late"
        assert process.events("execution.unknown") or mode == "late"
        assert all(r["level"] == "error" for r in process.events("execution.unknown"))


async def _wait_orders(bridge: ThreadedBridge, n: int) -> None:
    with anyio.fail_after(10):
        while len(bridge.parent_orders()) < n:
            await anyio.sleep(0.05)


@pytest.mark.parametrize("seed", [1, 2])
async def test_flaky_bridge_every_outcome_is_documented(
    seed: int, harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    """A bridge that fails a fraction of every kind of request, at random: each execution ends in
    a documented state with a documented reason, and no signal gets two orders. Failures in a
    row trip the circuit breaker: what follows is rejected `halted` and the switch says
    `breaker: <last reason>`."""
    process = harness.start(IB_BRIDGE_TIMEOUT="1", environment=ROOMY)
    await process.wait_ready()
    bridge.admin("POST", "/admin/reset")
    bridge.set_faults(error_rate=0.15, unavailable_rate=0.1, html=0.1, drop_after_accept=0.3)
    signal_ids = await approvals(conn, 16, f"F{seed}")
    rows = await wait_settled(conn, signal_ids, timeout=90, process=process)
    bridge.set_faults(error_rate=0, unavailable_rate=0, html=0, drop_after_accept=0)
    for row in rows:
        match row["state"]:
            case "failed":
                assert row["reason"].startswith(
                    ("bridge_unavailable: ", "broker_rejected: ", "not_placed: ")
                )
            case "unknown":
                assert row["reason"].startswith("ambiguous_submission")
            case "submitted" | "partially_filled" | "filled":
                assert row["order_id"] is not None
            case "rejected":
                assert row["reason"] == "halted", dict(row)
                halt = await conn.fetchrow("SELECT halted, reason FROM executor_control")
                assert halt is not None and halt["halted"]
                assert halt["reason"].startswith("breaker: "), dict(halt)
            case other:
                raise AssertionError(f"undocumented outcome {other}: {dict(row)}")
    await conn.execute("UPDATE executor_control SET halted = false, reason = NULL")  # resume
    await still_live(conn, bridge)
    assert await process.stop() == 0
    await check_invariants(conn, bridge, max_daily_loss=1000000, max_open_positions=100)
