"""Reconciliation's breaks as the operator hears of them (review finding: `reconcile.break` at
error on every pass, 54 lines in 12 minutes for a few breaks, and a counter of passes): each new
break once at error and counted once, then a warning at most every reminder interval while it
lasts, a line when it clears, and a gauge of the breaks open by kind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from trade_executor.actors.break_report import BreakReport
from trade_executor.actors.messages import Message
from trade_executor.actors.reconciler import Reconciler
from trade_executor.config.sources import load_settings
from trade_executor.domain.models import BridgeHealth, BrokerOrder, Position
from trade_executor.observability.metrics import Metrics
from trade_executor_dev.testing import MemoryStore

# The core's tests run on trio too (tests/conftest.py, `both_backends`).
pytestmark = pytest.mark.both_backends

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Held:
    """A broker with positions the test sets and no orders: every position is unexplained."""

    def __init__(self, *positions: Position) -> None:
        self.held = list(positions)

    async def health(self) -> BridgeHealth:
        return BridgeHealth("ok", True)  # connected to IB: the reconciler concludes from it

    async def orders(self) -> list[BrokerOrder]:
        return []

    async def positions(self) -> list[Position]:
        return list(self.held)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sample(metrics: Metrics, name: str, kind: str) -> float:
    return metrics.registry.get_sample_value(name, {"kind": kind}) or 0.0


def counted(metrics: Metrics) -> float:
    return sample(metrics, "trade_executor_reconcile_breaks_total", "unexplained_position")


def open_now(metrics: Metrics) -> float:
    return sample(metrics, "trade_executor_reconcile_breaks_open", "unexplained_position")


@pytest.mark.anyio
async def test_a_lasting_break_is_an_error_once_then_rate_limited_reminders() -> None:
    metrics, clock, broker = Metrics(), Clock(), Held(Position("MSFT", 5))
    reconciler = Reconciler(
        load_settings(database_url=None, reconcile_interval=60),
        MemoryStore(),
        broker,  # type: ignore[arg-type]
        metrics,
        list[Message]().append,
        clock=lambda: NOW,
        confirm_delay=0,
        break_report=BreakReport(metrics, reminder_interval=900, clock=clock),
    )
    with capture_logs() as logs:
        for minute in range(0, 32):  # a pass a minute for 32 minutes: the break lasts
            clock.now = 60.0 * minute
            await reconciler.reconcile_once()
        assert counted(metrics) == 1 and open_now(metrics) == 1
        broker.held.append(Position("AMZN", 3))  # a second break, new
        await reconciler.reconcile_once()
        assert counted(metrics) == 2 and open_now(metrics) == 2
        broker.held = []  # both fixed
        await reconciler.reconcile_once()

    errors = [line for line in logs if line["log_level"] == "error"]
    assert [(line["event"], line["symbol"]) for line in errors] == [
        ("reconcile.break", "MSFT"),
        ("reconcile.break", "AMZN"),
    ]
    reminders = [line for line in logs if line["event"] == "reconcile.break_open"]
    assert [(line["log_level"], line["symbol"], line["passes"]) for line in reminders] == [
        ("warning", "MSFT", 15),  # minute 15
        ("warning", "MSFT", 15),  # minute 30
    ]
    cleared = [line["symbol"] for line in logs if line["event"] == "reconcile.break_cleared"]
    assert sorted(cleared) == ["AMZN", "MSFT"]
    assert counted(metrics) == 2  # breaks, not passes
    assert open_now(metrics) == 0


def test_open_gauge_exists_at_zero_for_every_kind_from_start() -> None:
    metrics = Metrics()
    for kind in ("unexplained_position", "missing_position", "unprotected_position"):
        assert (
            metrics.registry.get_sample_value(
                "trade_executor_reconcile_breaks_open", {"kind": kind}
            )
            == 0
        )
