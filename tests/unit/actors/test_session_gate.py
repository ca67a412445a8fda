"""Entries only inside the trading session (issue 19, finding 7; CONTRACT section 5, "Trading
session"): with OUTSIDE_SESSION=reject an approval outside the session ends `rejected:
market_closed` before any broker call; inside it, it is sent. The executor's and the store's
clock is injected, so the moments are New York's, whenever the suite runs.

Before, orders went out at any hour: nothing knew the session or the exchange's holidays.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import anyio
import pytest

from tests.support import PaperServer
from tests.support.ledgers import actor_settings
from trade_executor.actors.supervisor import Supervisor
from trade_executor.broker.client import BrokerClient
from trade_executor.domain.execution import Execution
from trade_executor.observability.metrics import Metrics
from trade_executor.service.wiring import build_actors
from trade_executor_dev.testing import MemoryStore

pytestmark = pytest.mark.anyio

NY = ZoneInfo("America/New_York")
CASES = [
    ("2026-12-12 11:00", "rejected"),  # a Saturday
    ("2026-12-25 11:00", "rejected"),  # Christmas Day
    ("2026-12-08 16:01", "rejected"),
    ("2026-12-08 09:29", "rejected"),
    ("2026-12-24 13:00", "rejected"),  # Christmas Eve closes at 13:00
    ("2026-12-08 09:30", "submitted"),
]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 8, 12, tzinfo=NY).astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now


async def decided(paper: PaperServer, moment: str, outside_session: str) -> Execution:
    """The execution of one approval made at `moment` (New York), once decided."""
    clock = Clock()
    clock.now = datetime.fromisoformat(moment).replace(tzinfo=NY).astimezone(UTC)
    store = MemoryStore(clock=clock)
    settings = actor_settings(paper.url, outside_session=outside_session, trading_session="XNYS")
    async with BrokerClient(settings.ib_bridge_url, settings.ib_bridge_timeout) as broker:
        actors = build_actors(
            settings, store, broker, Metrics(), store.notifications.connect, clock=clock
        )
        async with anyio.create_task_group() as tg:
            await actors.start(tg, Supervisor(backoff_base=0.01))
            signal_id = store.add_signal("SESS")
            store.add_approval(signal_id)
            with anyio.fail_after(10):  # guards against a hang only
                while (found := store.execution_of(signal_id)) is None or found.state.value in (
                    "received",
                    "submitting",
                ):
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert found is not None
    return found


@pytest.mark.parametrize(("moment", "expected"), CASES)
async def test_outside_the_session_an_approval_is_rejected_market_closed_before_the_bridge(
    paper: PaperServer, moment: str, expected: str
) -> None:
    found = await decided(paper, moment, "reject")
    assert found.state.value == expected, (found.state, found.reason)
    posts = [o for o in await paper.recorded_orders() if o["symbol"] == "SESS"]
    if expected == "rejected":
        assert found.reason == "market_closed"
        assert posts == []
    else:
        assert len([o for o in posts if o.get("parent_id") in (None, 0)]) == 1


async def test_outside_session_send_sends_on_a_saturday(paper: PaperServer) -> None:
    found = await decided(paper, "2026-12-12 11:00", "send")
    assert found.state.value == "submitted", (found.state, found.reason)
