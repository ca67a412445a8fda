"""Metrics the alert rules read as states and latencies (review findings): the halt's cause is a
gauge that drops to 0 at `resume` (the breaker alert read a counter's increase and kept firing 15
minutes after), and the latency buckets reach past IB_BRIDGE_TIMEOUT (the top bucket was 10 s,
below the 15 s default, so p99 of the jax bridge's normal 5-6 s brackets read 9.9 s)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trade_executor.config.sources import load_settings
from trade_executor.observability.metrics import Metrics


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def cause(metrics: Metrics) -> dict[str, float]:
    return {
        dict(labels)["cause"]: value
        for labels, value in samples(metrics, "trade_executor_halt_cause").items()
    }


def test_halt_cause_is_a_state_that_clears_on_resume() -> None:
    metrics = Metrics()
    assert cause(metrics) == {"operator": 0, "breaker": 0}  # exported from the start
    metrics.set_halted(False)
    metrics.set_halted(True, "breaker: 3 failures in a row")
    assert cause(metrics) == {"operator": 0, "breaker": 1}
    metrics.set_halted(False)  # resume
    assert cause(metrics) == {"operator": 0, "breaker": 0}
    metrics.set_halted(True, "maintenance")
    assert cause(metrics) == {"operator": 1, "breaker": 0}


def test_a_halt_restored_at_start_up_has_its_cause_too() -> None:
    metrics = Metrics()
    metrics.set_halted(True, "breaker: bridge_unavailable")  # first call: not counted again
    assert cause(metrics) == {"operator": 0, "breaker": 1}
    counted = samples(metrics, "trade_executor_halts_total")
    assert all(value == 0 for value in counted.values())


def bounds(metrics: Metrics, name: str) -> list[float]:
    found = {
        float(dict(labels)["le"])
        for labels in samples(metrics, f"{name}_bucket")
        if dict(labels)["le"] != "+Inf"
    }
    return sorted(found)


@pytest.mark.parametrize("timeout", [15.0, 5.0, 120.0, 300.0])
def test_latency_buckets_reach_beyond_the_bridge_timeout(timeout: float) -> None:
    metrics = Metrics(load_settings(ib_bridge_timeout=timeout))
    for name in (
        "trade_executor_approval_to_submit_seconds",
        "trade_executor_bridge_request_seconds",
    ):
        edges = bounds(metrics, name)
        assert timeout in edges, (name, edges)
        assert edges[-1] >= 2 * timeout, (name, edges)
        # the jax bridge's normal 5-6 s brackets fall between two buckets below 10 s
        assert 5.0 in edges and 7.5 in edges and 10.0 in edges, (name, edges)
