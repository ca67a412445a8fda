"""`status` and the running executor agree on today's risk used, whatever state an execution is in.

For every `ExecutionState` (and a cancel after a partial fill), an execution of today in that state
is put in the ledger, the actors are started on it (start-up recovery takes it up, as after a
crash or a restart), and once the executor has settled what recovery settles, the executor's own
RiskBook and the `status` command, run against the same database, report the same risk used.
The expected amount is written down per state, so two equally wrong answers fail too.
"""

from __future__ import annotations

import argparse
import io
import re
from contextlib import redirect_stdout
from datetime import UTC, datetime
from decimal import Decimal

import anyio.to_thread
import pytest

from tests.support import PaperServer
from tests.support.ledgers import (
    PgLedger,
    RunningActors,
    actor_settings,
    reaches,
    running_actors,
    seed_execution,
    settled,
)
from trade_executor.broker.client import BrokerClient
from trade_executor.cli.commands import status_command
from trade_executor.config.limits import risk_limits
from trade_executor.config.sources import Settings
from trade_executor.domain.models import Action, OrderRequest, OrderType
from trade_executor.domain.riskbook import RiskBook
from trade_executor.domain.states import ExecutionState

pytestmark = pytest.mark.anyio

S = ExecutionState
RISK = Decimal("665.00")  # 133 shares, entry 150, stop 145

# (state put in the ledger, shares filled, today's risk used once the executor has taken it up)
CASES = [
    (S.RECEIVED, 0, RISK),  # decided again at start-up: placed (nothing fills at this bridge)
    (S.SUBMITTING, 0, Decimal(0)),  # not in the bridge's list: failed not_placed, risk released
    (S.SUBMITTED, 0, RISK),
    (S.PARTIALLY_FILLED, 50, RISK),
    (S.FILLED, 133, RISK),
    (S.CANCELLED, 0, Decimal(0)),
    (S.CANCELLED, 50, RISK),  # cancelled after a fill: the filled part was at risk
    (S.REJECTED, 0, Decimal(0)),
    (S.FAILED, 0, Decimal(0)),
    (S.DRY_RUN, 0, RISK),  # CONTRACT v2: a dry run holds its budget for its day, as live would
    (S.UNKNOWN, 0, RISK),  # perhaps at the broker: counted until an operator resolves it
]


def test_every_state_is_covered() -> None:
    assert {state for state, _, _ in CASES} == set(ExecutionState)


def status_risk_used(settings: Settings) -> Decimal:
    """`trade-executor status`'s "daily risk used", from its own code."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert status_command(settings, argparse.Namespace()) == 0
    # "of BUDGET" follows only when a running service published its budget (not here).
    found = re.search(r"^daily risk used\s+(\S+)", out.getvalue(), re.MULTILINE)
    assert found is not None, out.getvalue()
    return Decimal(found.group(1))


async def placed_order(paper: PaperServer) -> int:
    """An order working at the bridge (nothing fills), for an execution that is at the broker."""
    async with BrokerClient(paper.url, 5) as broker:
        placed = await broker.place(
            OrderRequest("AAPL", Action.BUY, 133, OrderType.LMT, Decimal("150"), None, "seeded")
        )
    return placed.order_id


@pytest.mark.parametrize(
    ("state", "filled", "expected"),
    CASES,
    ids=[f"{state.value}-{filled}" for state, filled, _ in CASES],
)
async def test_status_and_the_executor_agree_on_todays_risk(
    db_url: str, paper: PaperServer, state: ExecutionState, filled: int, expected: Decimal
) -> None:
    settings = actor_settings(paper.url, database_url=db_url, max_daily_loss=1000)
    now = datetime.now(UTC)
    today = RiskBook(risk_limits(settings), settings.timezone).trading_day(now)
    await paper.set_faults(fill_mode="never")
    async with PgLedger.emptied(db_url) as ledger:
        order_id = await placed_order(paper) if state.is_working else None
        seeded = await seed_execution(ledger, state, today, order_id=order_id, filled_qty=filled)
        running: RunningActors
        async with running_actors(settings, ledger) as running:
            await settled(ledger, seeded.signal_id)  # what recovery settles, it has settled
            status_view = await anyio.to_thread.run_sync(status_risk_used, settings)
            # The row commits before the executor's RiskBook follows it (same task, right
            # after): give it that moment, bounded, then compare.
            book = running.actors.executor.riskbook
            with anyio.move_on_after(5):
                while book.daily_risk_used(datetime.now(UTC)) != status_view:
                    await anyio.sleep(0.01)
            executor_view = book.daily_risk_used(datetime.now(UTC))

    assert executor_view == status_view == expected


async def test_status_and_the_executor_agree_while_the_executor_trades(
    db_url: str, paper: PaperServer
) -> None:
    """The same agreement when the executor itself moves the executions along (its RiskBook
    kept by its own reservations, commits and fills, not rebuilt)."""
    settings = actor_settings(paper.url, database_url=db_url, max_daily_loss=1000)
    await paper.set_faults(fill_mode="never")
    views: list[tuple[str, Decimal, Decimal]] = []
    async with PgLedger.emptied(db_url) as ledger, running_actors(settings, ledger) as running:
        book = running.actors.executor.riskbook

        async def compare(when: str) -> None:
            executor_view = book.daily_risk_used(datetime.now(UTC))
            status_view = await anyio.to_thread.run_sync(status_risk_used, settings)
            views.append((when, executor_view, status_view))

        first = await ledger.add_signal("AAPL")
        await ledger.add_approval(first)
        placed = await settled(ledger, first)
        await compare(placed.state.value)
        await paper.set_faults(fill_mode="normal")
        assert placed.order_id in await paper.set_price("AAPL", "149")
        await reaches(ledger, first, "filled")
        await compare("filled")
        wrong = await ledger.add_signal("MSFT", stop="155")  # stop above a BUY's entry
        await ledger.add_approval(wrong)
        assert (await settled(ledger, wrong)).state is S.REJECTED
        await compare("rejected")
        await paper.set_faults(fill_mode="never")
        second = await ledger.add_signal("NVDA")  # 335 of the budget left: 67 shares
        await ledger.add_approval(second)
        assert (await settled(ledger, second)).quantity == 67
        await compare("submitted with the rest of the budget")

    assert views == [
        ("submitted", RISK, RISK),
        ("filled", RISK, RISK),
        ("rejected", RISK, RISK),
        ("submitted with the rest of the budget", Decimal("1000.00"), Decimal("1000.00")),
    ]
