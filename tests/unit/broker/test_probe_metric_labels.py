"""The bridge latency series of a start-up's capability probes carry the probed endpoint's own
method and path (review finding: `method=""` and `path="probe POST /orders/bracket"`, a series
no dashboard or alert selects on and one a label matcher on `method` silently misses)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ThreadedBridge
from trade_executor.broker import BrokerClient
from trade_executor.broker import capabilities as caps
from trade_executor.observability.metrics import BRIDGE_ENDPOINTS, Metrics

pytestmark = pytest.mark.anyio


async def test_probes_are_observed_under_their_endpoint(bridge: ThreadedBridge) -> None:
    metrics = Metrics()
    async with BrokerClient(bridge.url, 5.0, on_request=metrics.observe_bridge) as broker:
        found = await broker.capabilities()
    assert found.detected_by == "probes"  # the paper bridge serves no OpenAPI document

    observed: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == "trade_executor_bridge_request_seconds_count" and sample.value:
                key = (sample.labels["method"], sample.labels["path"])
                observed[key] = observed.get(key, 0) + sample.value
    for method, path in observed:
        assert method in ("GET", "POST", "DELETE"), (method, path)
        assert path.startswith("/") and " " not in path, (method, path)
    known = set(BRIDGE_ENDPOINTS) | {("GET", "/openapi.json")}
    assert set(observed) <= known, set(observed) - known
    # each probed endpoint once, under the template its real requests use
    for endpoint in caps.PROBED:
        assert observed[(endpoint.method, endpoint.metric_label.partition(" ")[2])] >= 1, endpoint
