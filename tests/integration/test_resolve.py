"""`resolve` (CONTRACT sections 2 and 5, "operator settlement") against a migrated database and
a paper bridge: each state it accepts, each refusal (one sentence, exit 1; a malformed id exit
2), the order id checked at the bridge, id prefixes, and the running executor applying the
change (risk released or kept, symbol freed) without a restart.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import anyio
import asyncpg
import pytest

from tests.integration.actors.test_deadlines_pg import left_submitting, pg_actors, settings_for
from tests.support import ThreadedBridge, threaded_bridge
from trade_executor.cli.main import main
from trade_executor.domain.models import Action, OrderRequest, OrderType
from trade_executor.observability.logging import configure_logging
from trade_executor.store.postgres import PgStore, create_pool

LONG_AGO = timedelta(hours=1)


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture(autouse=True)
def live_log_stream() -> Iterator[None]:
    """`main()` points the logs at the stderr of its own test; a later test's actors must not
    log to that closed stream, nor lose their info lines to this module's warning level."""
    configure_logging("console", "warning", stream=sys.stderr)
    yield
    configure_logging("json", "info")


@pytest.fixture
def paper() -> Iterator[ThreadedBridge]:
    with threaded_bridge() as bridge:
        yield bridge


@pytest.fixture
def db(db_url: str, paper: ThreadedBridge, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("IB_BRIDGE_URL", paper.url)
    return db_url


def run(db: str, work: Any) -> Any:
    """`work(conn, store)` on a connection and a store of `db`, in a fresh event loop."""

    async def main_() -> Any:
        conn = await asyncpg.connect(db)
        pool = await create_pool(db, min_size=1, max_size=2)
        try:
            return await work(conn, PgStore(pool))
        finally:
            await pool.close()
            await conn.close()

    return asyncio.run(main_())


def execution_in(
    db: str,
    state: str,
    *,
    age: timedelta = timedelta(0),
    symbol: str = "RSLV",
    execution_id: UUID | None = None,
) -> Any:
    """An execution of `symbol` (BUY 133 @ 150) brought to `state` through the store's own
    transitions, its clock moved back by `age`."""

    async def work(conn: asyncpg.Connection, store: PgStore) -> Any:
        from trade_executor.domain.execution import Changes
        from trade_executor.domain.states import Transition

        intent = await left_submitting(conn, store, symbol, execution_id)
        if state == "unknown":
            await store.apply(intent.id, Transition.LOSE_TRACK, Changes(reason="lost"))
        elif state in ("submitted", "partially_filled", "failed"):
            await store.apply(
                intent.id,
                Transition.ACCEPT if state != "failed" else Transition.FAIL,
                Changes(order_id=999, submitted_at=datetime.now(UTC), reason="x"),
            )
            if state == "partially_filled":
                await store.apply(intent.id, Transition.PARTIAL_FILL, Changes(filled_qty=10))
        elif state == "received":
            await conn.execute(
                "UPDATE executions SET state = 'received', attempted_at = NULL WHERE id = $1",
                intent.id,
            )
        moved = datetime.now(UTC) - age
        await conn.execute(
            "UPDATE executions SET created_at = $2,"
            " attempted_at = CASE WHEN attempted_at IS NULL THEN NULL ELSE $2::timestamptz END,"
            " submitted_at = CASE WHEN submitted_at IS NULL THEN NULL ELSE $2::timestamptz END,"
            " updated_at = $2 WHERE id = $1",
            intent.id,
            moved,
        )
        return await store.get_execution(intent.id)

    return run(db, work)


def row(db: str, execution_id: UUID) -> asyncpg.Record:
    async def work(conn: asyncpg.Connection, store: PgStore) -> asyncpg.Record:
        found = await conn.fetchrow("SELECT * FROM executions WHERE id = $1", execution_id)
        assert found is not None
        return found

    found: asyncpg.Record = run(db, work)
    return found


def place_at_bridge(bridge: ThreadedBridge, symbol: str, quantity: int = 133) -> int:
    from trade_executor.broker.client import BrokerClient

    async def place() -> int:
        async with BrokerClient(bridge.url, 5) as client:
            placed = await client.place(
                OrderRequest(symbol, Action.BUY, quantity, OrderType.LMT, Decimal("150"), None)
            )
            return placed.order_id

    return asyncio.run(place())


# -- what it accepts -------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["failed", "cancelled", "filled"])
def test_an_unknown_execution_is_resolved(
    db: str, outcome: str, capsys: pytest.CaptureFixture[str]
) -> None:
    execution = execution_in(db, "unknown")
    price = ["--fill-price", "150.02"] if outcome == "filled" else []
    assert main(["resolve", str(execution.id), "--as", outcome, "--by", "carol", *price]) == 0
    assert f"resolved as {outcome}" in capsys.readouterr().out
    after = row(db, execution.id)
    assert after["state"] == outcome
    assert after["reason"] == f"resolved_{outcome} by carol"
    assert after["finished_at"] is not None
    if outcome == "filled":
        assert after["filled_qty"] == 133  # the operator says it filled: the whole quantity
        assert after["avg_fill_price"] == Decimal("150.02")  # never "filled 133 @ -"


def test_resolved_as_filled_without_a_price_is_refused(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20, finding 1: `resolve --as filled` without `--order-id` recorded "filled 264 @
    -". It now needs the entry's price."""
    execution = execution_in(db, "unknown")
    assert main(["resolve", str(execution.id), "--as", "filled"]) == 1
    err = capsys.readouterr().err
    assert "--as filled needs the entry's price: give --fill-price P" in err
    assert "Traceback" not in err
    assert row(db, execution.id)["state"] == "unknown"


def test_resolved_as_submitted_with_a_matching_order(
    db: str, paper: ThreadedBridge, capsys: pytest.CaptureFixture[str]
) -> None:
    execution = execution_in(db, "unknown", symbol="MATCH")
    order_id = place_at_bridge(paper, "MATCH")
    argv = ["resolve", str(execution.id)[:8], "--as", "submitted", "--order-id", str(order_id)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"order {order_id} at the bridge: BUY 133 MATCH" in out  # what was checked, shown
    after = row(db, execution.id)
    assert (after["state"], after["order_id"]) == ("submitted", order_id)


def test_a_signal_id_prefix_names_the_execution(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    execution = execution_in(db, "unknown")
    assert main(["resolve", str(execution.signal_id)[:13], "--as", "failed"]) == 0
    assert row(db, execution.id)["state"] == "failed"


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("submitting", "failed"),
        ("submitting", "submitted"),
        ("submitted", "cancelled"),
        ("partially_filled", "cancelled"),
        ("submitted", "filled"),
    ],
)
def test_a_state_past_its_bound_is_resolved(
    db: str, paper: ThreadedBridge, state: str, outcome: str
) -> None:
    execution = execution_in(db, state, age=LONG_AGO, symbol=f"P{state[:6].upper()}")
    argv = ["resolve", str(execution.id), "--as", outcome]
    if outcome == "filled":
        argv += ["--fill-price", "150"]
    if outcome == "submitted":
        argv += ["--order-id", str(place_at_bridge(paper, execution.symbol))]
    assert main(argv) == 0
    after = row(db, execution.id)
    assert after["state"] == outcome
    if state == "partially_filled":
        assert after["filled_qty"] == 10  # what filled stays filled (its risk stays too)


# -- what it refuses -------------------------------------------------------------------------------


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("state", "bound"),
    [
        ("submitting", "IB_BRIDGE_TIMEOUT (15 s) plus the reconcile window (300 s)"),
        ("submitted", "ORDER_POLL_TIMEOUT (120 s) plus a grace of 30 s"),
        ("partially_filled", "ORDER_POLL_TIMEOUT (120 s) plus a grace of 30 s"),
    ],
)
def test_a_state_within_its_bound_is_refused_naming_the_bound(
    db: str, state: str, bound: str, capsys: pytest.CaptureFixture[str]
) -> None:
    execution = execution_in(db, state)
    err = refused(["resolve", str(execution.id), "--as", "failed"], capsys)
    assert f"is {state} and within its bound ({bound}" in err
    assert row(db, execution.id)["state"] == state


def test_final_and_received_executions_are_refused(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = execution_in(db, "failed", symbol="FIN")
    assert "is failed, not unknown" in refused(
        ["resolve", str(failed.id), "--as", "failed"], capsys
    )
    received = execution_in(db, "received", symbol="RCV", age=LONG_AGO)
    err = refused(["resolve", str(received.id), "--as", "failed"], capsys)
    assert "is received" in err


def test_submitted_cannot_be_resolved_as_submitted(
    db: str, paper: ThreadedBridge, capsys: pytest.CaptureFixture[str]
) -> None:
    execution = execution_in(db, "submitted", age=LONG_AGO, symbol="AGAIN")
    order_id = place_at_bridge(paper, "AGAIN")
    argv = ["resolve", str(execution.id), "--as", "submitted", "--order-id", str(order_id)]
    assert "cannot be resolved as submitted" in refused(argv, capsys)


@pytest.mark.parametrize(
    ("symbol", "quantity"), [("OTHER", 133), ("MISM", 50)], ids=["symbol", "quantity"]
)
def test_an_order_that_does_not_match_is_refused(
    db: str, paper: ThreadedBridge, symbol: str, quantity: int, capsys: pytest.CaptureFixture[str]
) -> None:
    execution = execution_in(db, "unknown", symbol="MISM")
    order_id = place_at_bridge(paper, symbol, quantity)
    argv = ["resolve", str(execution.id), "--as", "cancelled", "--order-id", str(order_id)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert f"order {order_id} at the bridge: BUY {quantity} {symbol}" in captured.out
    assert f"is BUY {quantity} {symbol} at the bridge, but execution" in captured.err
    assert row(db, execution.id)["state"] == "unknown"


def test_an_order_the_bridge_does_not_list_is_refused(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    execution = execution_in(db, "unknown")
    argv = ["resolve", str(execution.id), "--as", "cancelled", "--order-id", "777"]
    assert "order 777 is not in the bridge's order list" in refused(argv, capsys)


def test_unknown_and_ambiguous_ids(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    missing = uuid4()
    assert f"execution {missing} not found" in refused(
        ["resolve", str(missing), "--as", "failed"], capsys
    )
    for n in (1, 2):  # two executions whose ids start alike
        execution_in(
            db,
            "unknown",
            symbol=f"AMB{n}",
            execution_id=UUID(f"abcd0000-0000-4000-8000-00000000000{n}"),
        )
    err = refused(["resolve", "abcd", "--as", "failed"], capsys)
    assert "abcd is ambiguous" in err
    assert main(["resolve", "abcd0000-0000-4000-8000-000000000002", "--as", "failed"]) == 0


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not-a-uuid", "not an id"),
        ("3f1e0c1a-0000-0000-0000-0000000000001", "longer than a UUID"),
        ("3f", "too short"),
    ],
)
def test_a_malformed_id_is_bad_usage(
    db: str, text: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["resolve", text, "--as", "failed"])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


# -- the running service applies it ---------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("outcome", "frees"), [("failed", True), ("cancelled", True), ("filled", False)]
)
async def test_the_running_executor_applies_a_resolve(
    db: str, paper: ThreadedBridge, outcome: str, frees: bool
) -> None:
    settings = settings_for(db, paper)

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        from trade_executor.broker.locate import Unreachable

        return Unreachable("GET /orders: connection refused")

    conn = await asyncpg.connect(db)
    try:
        async with pg_actors(
            settings, prepare=lambda broker: broker.override("locate_submission", unreachable)
        ) as running:
            intent = await left_submitting(conn, running.store, "LIVE")
            with anyio.fail_after(15):
                while (await running.store.get_execution(intent.id)).state.value != "unknown":  # type: ignore[union-attr]
                    await anyio.sleep(0.02)
            book = running.actors.executor.riskbook
            now = datetime.now(UTC)
            assert book.is_open("LIVE") and book.daily_risk_used(now) == Decimal("665.00")

            price = ["--fill-price", "150"] if outcome == "filled" else []
            code = await anyio.to_thread.run_sync(
                main, ["resolve", str(intent.id), "--as", outcome, *price]
            )
            assert code == 0
            with anyio.fail_after(15):  # a guard against a hang, not a measure of speed
                while book.in_flight():
                    await anyio.sleep(0.02)
            assert book.is_open("LIVE") is not frees
            expected = Decimal(0) if frees else Decimal("665.00")
            assert book.daily_risk_used(now) == expected
    finally:
        await conn.close()
