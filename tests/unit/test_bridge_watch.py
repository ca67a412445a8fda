"""The bridge watched in the background: an outage is logged when it starts and when it ends,
not at every check, and the `bridge_up` gauge follows it."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from tests.support import PaperServer
from trade_executor.broker.client import BrokerClient
from trade_executor.observability.metrics import Metrics
from trade_executor.service.bridge_watch import BridgeWatch

pytestmark = pytest.mark.anyio


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    paper: PaperServer,
) -> None:
    metrics = Metrics()
    watch = BridgeWatch(paper.url, metrics)
    async with BrokerClient(paper.url, 2, read_retries=0) as client:
        with capture_logs() as logs:
            await watch.check(client)
            assert watch.up is True and metrics.bridge_up._value.get() == 1
            await paper.set_faults(unavailable_rate=1.0)  # answers, but not connected to IB
            for _ in range(5):
                await watch.check(client)
            assert watch.up is False and metrics.bridge_up._value.get() == 0
            await paper.set_faults(unavailable_rate=0.0)
            await watch.check(client)
            await watch.check(client)
    events = [entry["event"] for entry in logs if entry["event"].startswith("bridge.")]
    assert events == ["bridge.down", "bridge.up"]
    assert watch.up is True and watch.problem is None
