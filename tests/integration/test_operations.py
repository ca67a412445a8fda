"""The operations called as functions (`trade_executor.ops`), without argparse, stdout or a
process: what the HTTP API, the console and a test see. Each returns its result type or a
`Refusal` (one sentence; `not_found` when nothing matched), and a refusal changes nothing:
not the ledger, not the bridge. PostgreSQL and the paper bridge over HTTP are real."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import anyio
import pytest
from structlog.testing import capture_logs

from tests.support import ThreadedBridge, make_settings, running_service
from tests.support.ledgers import PgLedger, seed_execution
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.states import ExecutionState, IllegalTransition, Transition
from trade_executor.ops import Context, Refusal, Resolved, close, protect, resolve
from trade_executor.store.notifications import CONTROL_CHANNEL, connect_notifications

pytestmark = pytest.mark.anyio

DEADLINE = 10.0


@pytest.fixture
async def ledger(db_url: str) -> AsyncIterator[PgLedger]:
    async with PgLedger.emptied(db_url) as emptied:
        yield emptied


def context(ledger: PgLedger, bridge: ThreadedBridge) -> Context:
    return Context(ledger.store, make_settings(ledger.url, bridge))


async def open_position(ledger: PgLedger, symbol: str) -> Execution:
    """A filled entry of 133 `symbol` whose position the ledger holds open (the bridge, which
    saw no order, holds none)."""
    filled = await seed_execution(ledger, ExecutionState.FILLED, datetime.now(UTC).date())
    await ledger.pool.execute(
        "UPDATE executions SET symbol = $2, position_state = 'open', avg_fill_price = 150"
        " WHERE id = $1",
        filled.id,
        symbol,
    )
    return filled


async def event_kinds(ledger: PgLedger, execution_id: UUID) -> list[str]:
    return [kind for kind, _ in await ledger.events(execution_id)]


# -- resolve --------------------------------------------------------------------------------------


async def test_resolve_settles_an_unknown_execution_and_tells_the_running_service(
    ledger: PgLedger, bridge: ThreadedBridge
) -> None:
    lost = await seed_execution(ledger, ExecutionState.UNKNOWN, datetime.now(UTC).date())
    source = await connect_notifications(ledger.url)
    try:
        done = await resolve(context(ledger, bridge), str(lost.id)[:8], "failed", by="ops")
        assert done == Resolved(lost.id, "failed", ())
        assert done.message == f"execution {lost.id} resolved as failed"
        with anyio.fail_after(DEADLINE):
            note = await source.notifications.receive()
    finally:
        await source.aclose()
    assert note.channel == CONTROL_CHANNEL
    assert json.loads(note.payload) == {"kind": "execution_changed", "execution_id": str(lost.id)}
    resolved = await ledger.store.get_execution(lost.id)
    assert resolved is not None and resolved.state is ExecutionState.FAILED
    assert resolved.reason == "resolved_failed by ops"


async def test_resolve_refusals_change_nothing(ledger: PgLedger, bridge: ThreadedBridge) -> None:
    ctx = context(ledger, bridge)
    done = await seed_execution(ledger, ExecutionState.FILLED, datetime.now(UTC).date())
    before = await event_kinds(ledger, done.id)

    final = await resolve(ctx, str(done.id), "failed", by="ops")
    assert final == Refusal(
        f"execution {done.id} is filled, not unknown or past its bound: a final execution "
        "cannot be resolved"
    )
    missing = await resolve(ctx, "0123abcd", "failed", by="ops")
    assert isinstance(missing, Refusal) and missing.not_found
    assert missing.message.startswith("execution 0123abcd not found")
    assert await resolve(ctx, str(done.id), "submitted", by="ops") == Refusal(
        "--as submitted needs the broker's --order-id"
    )
    assert await resolve(ctx, str(done.id), "exploded", by="ops") == Refusal(
        "cannot resolve as 'exploded': give one of failed, submitted, filled, cancelled"
    )
    both = await resolve(ctx, str(done.id), "filled", by="ops", exit_price=Decimal("150"))
    assert both == Refusal("give either --as or --exit-price, not both")
    assert isinstance(await resolve(ctx, "not-an-id", "failed", by="ops"), Refusal)

    unchanged = await ledger.store.get_execution(done.id)
    assert unchanged is not None and unchanged.state is ExecutionState.FILLED
    assert await event_kinds(ledger, done.id) == before


async def test_resolve_says_what_the_bridge_said_of_an_order_that_does_not_match(
    ledger: PgLedger, bridge: ThreadedBridge
) -> None:
    lost = await seed_execution(ledger, ExecutionState.UNKNOWN, datetime.now(UTC).date())
    from trade_executor.broker.client import BrokerClient
    from trade_executor.domain.models import Action, OrderRequest, OrderType

    async with BrokerClient(bridge.url, 5) as client:
        placed = await client.place(
            OrderRequest("MSFT", Action.BUY, 7, OrderType.LMT, Decimal("150"), None)
        )
    done = await resolve(
        context(ledger, bridge), str(lost.id), "cancelled", by="ops", order_id=placed.order_id
    )
    assert isinstance(done, Refusal)
    assert len(done.said) == 1 and done.said[0].startswith(f"order {placed.order_id} at the bridge")
    assert done.message.endswith("not resolved")
    unchanged = await ledger.store.get_execution(lost.id)
    assert unchanged is not None and unchanged.state is ExecutionState.UNKNOWN


# -- close ----------------------------------------------------------------------------------------


async def test_close_refuses_when_nothing_is_open(ledger: PgLedger, bridge: ThreadedBridge) -> None:
    ctx = context(ledger, bridge)
    none = await close(ctx, "aapl", "test", by="ops", wait=0)
    assert none == Refusal("no open position for AAPL", not_found=True)
    assert await close(ctx, None, "test", by="ops", wait=0) == Refusal(
        "no open positions", not_found=True
    )


async def test_close_refuses_a_ledger_the_broker_contradicts_and_asks_nothing(
    ledger: PgLedger, bridge: ThreadedBridge
) -> None:
    position = await open_position(ledger, "CLSD")
    before = await event_kinds(ledger, position.id)
    source = await connect_notifications(ledger.url)
    try:
        done = await close(context(ledger, bridge), "CLSD", "test", by="ops", wait=0)
        assert done == Refusal(
            "close CLSD refused: the ledger holds 133 and the broker holds 0 (check the broker; "
            "--force acts on the broker's 0)"
        )
        # Nothing asked of the running service: the control channel stayed silent.
        await ledger.pool.execute("SELECT pg_notify($1, 'marker')", CONTROL_CHANNEL)
        with anyio.fail_after(DEADLINE):
            note = await source.notifications.receive()
    finally:
        await source.aclose()
    assert note.payload == "marker"
    assert await event_kinds(ledger, position.id) == before  # no position.close_requested
    assert not [r for r in bridge.requests() if r["path"].endswith("/close")]


class Exits:
    """This process's exits as the HTTP API reaches them (`ops.close.Closer`): `active` False
    is a standby, which cannot close. Records what it was asked."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.asked: list[tuple[str | None, str, str]] = []

    async def close_positions(
        self, symbol: str | None, reason: str, requested_by: str, wait: float
    ) -> list[Execution] | None:
        self.asked.append((symbol, reason, requested_by))
        return [] if self.active else None


async def test_close_through_this_processs_exits_checks_the_broker_first(
    ledger: PgLedger, bridge: ThreadedBridge
) -> None:
    ctx = context(ledger, bridge)
    exits, standby = Exits(active=True), Exits(active=False)
    assert await close(ctx, "NONE", "t", by="api", wait=0, via=exits) == Refusal(
        "no open position for NONE", not_found=True
    )
    assert await close(ctx, None, "t", by="api", wait=0, via=standby) == Refusal(
        "this instance is not the active one", not_ready=True
    )
    await open_position(ledger, "VIAX")
    refused = await close(ctx, "viax", "t", by="api", wait=0, via=exits)
    assert isinstance(refused, Refusal) and not refused.not_found
    assert refused.message.startswith("close VIAX refused: the ledger holds 133")
    assert exits.asked == [("NONE", "t", "api")]  # the refused close was never asked for


# -- protect --------------------------------------------------------------------------------------


async def test_protect_refusals_place_nothing(ledger: PgLedger, bridge: ThreadedBridge) -> None:
    ctx = context(ledger, bridge)
    assert await protect(ctx, "none", by="ops") == Refusal(
        "no open position for NONE", not_found=True
    )
    position = await open_position(ledger, "PRTC")
    done = await protect(ctx, "prtc", by="ops", stop=Decimal("140"))
    assert done == Refusal(
        "protect PRTC refused: the ledger holds 133 and the broker holds 0 (check the broker; "
        "--force acts on the broker's 0)"
    )
    forced = await protect(ctx, "PRTC", by="ops", force=True)
    assert forced == Refusal("protect PRTC refused: the broker holds no PRTC")
    assert not [r for r in bridge.requests() if r["path"].endswith("/protect")]
    unchanged = await ledger.store.get_execution(position.id)
    assert unchanged is not None and unchanged.child_order_ids == position.child_order_ids


# -- the announcement travels with the change -----------------------------------------------------


async def test_a_resolve_releases_the_running_services_riskbook_through_its_notification(
    db_url: str, bridge: ThreadedBridge
) -> None:
    """Nothing else re-reads the row: the deadline scan and the sweeps are an hour apart, so
    only the notification sent in the resolve's own transaction can free AAPL and its risk."""
    settings = make_settings(db_url, bridge, max_daily_loss=1000, sweep_interval=3600)
    today = datetime.now(UTC).date()
    async with PgLedger.emptied(db_url) as ledger:
        lost = await seed_execution(ledger, ExecutionState.UNKNOWN, today, symbol="AAPL")
        async with running_service(settings, scan_interval=3600) as service:
            assert service.actors is not None
            book = service.actors.executor.riskbook
            assert book.is_open("AAPL") and book.daily_risk_used(datetime.now(UTC)) > 0

            done = await resolve(Context(ledger.store, settings), str(lost.id), "failed", by="t")

            assert isinstance(done, Resolved)
            with anyio.fail_after(DEADLINE):  # a guard against a hang, not a measure of speed
                while book.is_open("AAPL") or book.daily_risk_used(datetime.now(UTC)):
                    await anyio.sleep(0.01)


async def test_apply_announces_at_its_commit_and_never_a_change_refused(
    ledger: PgLedger,
) -> None:
    lost = await seed_execution(ledger, ExecutionState.UNKNOWN, datetime.now(UTC).date())
    done = await seed_execution(ledger, ExecutionState.FILLED, datetime.now(UTC).date())
    source = await connect_notifications(ledger.url)
    try:
        with pytest.raises(IllegalTransition):
            await ledger.store.apply(
                done.id, Transition.RESOLVE_FAILED, Changes(reason="x"), announce=True
            )
        await ledger.store.apply(
            lost.id, Transition.RESOLVE_FAILED, Changes(reason="resolved"), announce=True
        )
        with anyio.fail_after(DEADLINE):
            note = await source.notifications.receive()
            # When the notification arrives the change is in: a re-read sees it.
            seen = await ledger.store.get_execution(lost.id)
            await ledger.pool.execute("SELECT pg_notify($1, 'marker')", CONTROL_CHANNEL)
            marker = await source.notifications.receive()
    finally:
        await source.aclose()
    assert json.loads(note.payload)["execution_id"] == str(lost.id)  # the refused one: silent
    assert seen is not None and seen.state is ExecutionState.FAILED
    assert marker.payload == "marker"


async def test_an_older_instances_resolve_without_kind_still_releases_the_riskbook(
    db_url: str, bridge: ThreadedBridge
) -> None:
    """A rolling switch-over: the resolve of a version before `kind` announces the execution
    in a payload of its own (`{"execution_id": ...}`, after its commit): the running service
    reads it by the old rule."""
    settings = make_settings(db_url, bridge, max_daily_loss=1000, sweep_interval=3600)
    async with PgLedger.emptied(db_url) as ledger:
        lost = await seed_execution(ledger, ExecutionState.UNKNOWN, datetime.now(UTC).date())
        async with running_service(settings, scan_interval=3600) as service:
            assert service.actors is not None
            book = service.actors.executor.riskbook
            assert book.is_open("AAPL")
            await ledger.store.apply(lost.id, Transition.RESOLVE_FAILED, Changes(reason="old"))
            with capture_logs() as logs:
                await ledger.notify(CONTROL_CHANNEL, json.dumps({"execution_id": str(lost.id)}))
                with anyio.fail_after(DEADLINE):
                    while book.is_open("AAPL") or book.daily_risk_used(datetime.now(UTC)):
                        await anyio.sleep(0.01)
    [said] = [e for e in logs if e["event"] == "listener.legacy_control_payload"]
    assert (said["log_level"], said["read_as"]) == ("info", "execution_changed")
