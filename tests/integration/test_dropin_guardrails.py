"""The original's own guardrails on a database built like the original's (CONTRACT section 5):
each guard refuses what it should, lets through what it should, and fails closed when its query
errors. Real PostgreSQL, the paper bridge over HTTP, the real service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.integration.dropin_support import (
    DRAFT_ARTIFACT,
    approve_by_row,
    build_original_database,
    decided,
    insert_instance,
    zone_where_hour_in,
)
from tests.integration.dropin_support import insert_jax_signal as signal
from tests.support import ThreadedBridge, make_settings, running_service
from trade_executor.config.sources import Settings

pytestmark = pytest.mark.anyio

WORKING = ("submitted", "partially_filled", "filled")
MORNING = range(4, 12)  # a flatten time of 23:59 is hours away
AFTERNOON = range(14, 20)  # a flatten time of 12:00 has passed


@pytest.fixture
def jax_url(fresh_database_url: str) -> str:
    asyncio.run(build_original_database(fresh_database_url))
    return fresh_database_url


@pytest.fixture
async def jax(jax_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(jax_url)
    try:
        yield connection
    finally:
        await connection.close()


def roomy(url: str, bridge: ThreadedBridge, **overrides: object) -> Settings:
    """Global limits out of the way, so that only the instance's own limits bind."""
    return make_settings(url, bridge, max_daily_loss=100000, max_open_positions=50, **overrides)


async def test_each_guardrail(
    jax_url: str, jax: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    morning = zone_where_hour_in(MORNING)
    open_instance = await insert_instance(jax, timezone=morning)
    disabled = await insert_instance(jax, enabled=False, timezone=morning)
    flattened = await insert_instance(jax, timezone=zone_where_hour_in(AFTERNOON), flatten="12:00")
    one_trade = await insert_instance(jax, timezone=morning, config={"maxTradesPerDay": 1})
    one_open = await insert_instance(jax, timezone=morning, config={"maxOpenPositions": 1})
    # 665 of risk per trade (the worked example): a second one would pass 1000.
    small_loss = await insert_instance(jax, timezone=morning, config={"maxDailyLoss": 1000})

    cases = {
        "ok": await signal(jax, "GOOD", instance=open_instance),
        "disabled": await signal(jax, "DIS", instance=disabled),
        "flattened": await signal(jax, "FLAT", instance=flattened),
        "draft": await signal(jax, "DRAFT", artifact=DRAFT_ARTIFACT, instance=open_instance),
        "no_artifact": await signal(jax, "NOART", artifact=None, instance=open_instance),
    }
    pairs = {
        "trades": [await signal(jax, f"TR{i}", instance=one_trade) for i in range(2)],
        "open": [await signal(jax, f"OP{i}", instance=one_open) for i in range(2)],
        "loss": [await signal(jax, f"LS{i}", instance=small_loss) for i in range(2)],
    }
    everything = [*cases.values(), *(s for pair in pairs.values() for s in pair)]
    async with running_service(roomy(jax_url, bridge)):
        async with jax.transaction():  # all at once: the limits hold under concurrency
            for signal_id in everything:
                await approve_by_row(jax, signal_id)
        found = await decided(jax, everything)

    def reason(key: str) -> str | None:
        row = found[cases[key]]
        return str(row["reason"] if row["state"] == "rejected" else row["state"])

    assert found[cases["ok"]]["state"] in WORKING
    assert reason("disabled") == "instance_disabled"
    assert reason("flattened") == "post_flatten"
    assert reason("draft") == "artifact_not_approved"
    assert reason("no_artifact") == "artifact_not_approved"
    expected = {
        "trades": "risk: instance_max_trades_per_day",
        "open": "risk: instance_max_open_positions",
        "loss": "risk: instance_max_daily_loss",
    }
    for name, pair in pairs.items():
        rows = [found[s] for s in pair]
        assert sorted(r["state"] in WORKING for r in rows) == [False, True], name
        [refused] = [r for r in rows if r["state"] == "rejected"]
        assert refused["reason"] == expected[name]
    placed = {o["symbol"] for o in bridge.parent_orders()}
    assert placed.isdisjoint({"DIS", "FLAT", "DRAFT", "NOART"})


async def test_instance_guardrails_fail_closed(
    jax_url: str, jax: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    instance = await insert_instance(jax, timezone=zone_where_hour_in(MORNING))
    # The instances' query now errors (a column it reads is gone).
    await jax.execute("ALTER TABLE strategy_instances RENAME COLUMN config TO config_gone")
    async with running_service(roomy(jax_url, bridge)):
        refused = await signal(jax, "CLOSED", instance=instance)
        await approve_by_row(jax, refused)
        found = await decided(jax, [refused])
    assert found[refused]["reason"] == "instance_disabled"
    assert [o for o in bridge.parent_orders() if o["symbol"] == "CLOSED"] == []


async def test_artifact_gate_fails_closed(
    jax_url: str, jax: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    await jax.execute("ALTER TABLE artifact_approvals RENAME COLUMN state TO state_gone")
    settings = roomy(jax_url, bridge, instance_guardrails="off")
    async with running_service(settings):
        refused = await signal(jax, "ARTX")
        await approve_by_row(jax, refused)
        found = await decided(jax, [refused])
    assert found[refused]["reason"] == "artifact_not_approved"
    assert [o for o in bridge.parent_orders() if o["symbol"] == "ARTX"] == []


async def test_guardrails_off_let_the_same_signal_through(
    jax_url: str, jax: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    disabled = await insert_instance(jax, enabled=False, timezone=zone_where_hour_in(MORNING))
    settings = roomy(jax_url, bridge, instance_guardrails="off", require_artifact_approval="off")
    async with running_service(settings):
        through = await signal(jax, "OFF", artifact=DRAFT_ARTIFACT, instance=disabled)
        await approve_by_row(jax, through)
        found = await decided(jax, [through])
    assert found[through]["state"] in WORKING
