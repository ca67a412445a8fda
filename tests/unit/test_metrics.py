"""Metrics (CONTRACT section 6, version 2): series at 0 from start-up, no `_created`, the operator
gauges, the limits as configured, and docs/METRICS.md naming exactly what is exported."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trade_executor import __version__
from trade_executor.config.sources import Settings
from trade_executor.domain.sizing import RiskGate
from trade_executor.domain.states import ExecutionState
from trade_executor.observability.metrics import Metrics, split_endpoint

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "METRICS.md"

# CONTRACT section 4, `risk: <gate>`: version 1's gates and version 2's additions.
CONTRACT_GATES = (
    "max_open_positions",
    "max_daily_loss",
    "max_position_value",
    "buying_power",
    "below_min_size",
    "duplicate_symbol",
    "max_daily_realized_loss",
    "instance_max_trades_per_day",
    "instance_max_open_positions",
    "instance_max_daily_loss",
)


def scrape(metrics: Metrics) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_every_outcome_state_and_gate_is_a_series_at_zero_from_the_start() -> None:
    samples = scrape(Metrics())
    outcomes = [s for s in ExecutionState if s.is_final or s is ExecutionState.UNKNOWN]
    assert ExecutionState.UNKNOWN in outcomes and ExecutionState.FILLED in outcomes
    for state in outcomes:
        assert value(samples, "trade_executor_executions_total", state=state.value) == 0
    for gate in {*CONTRACT_GATES, *(g.value for g in RiskGate)}:
        assert value(samples, "trade_executor_risk_rejections_total", gate=gate) == 0
    for cause in ("operator", "breaker"):
        assert value(samples, "trade_executor_halts_total", cause=cause) == 0
    for role in ("active", "standby"):
        assert value(samples, "trade_executor_role", role=role) == 0
    for name in (
        "trade_executor_halted",
        "trade_executor_executions_needing_operator",
        "trade_executor_daily_risk_used",
        "trade_executor_realized_pnl_today",
        "trade_executor_bridge_up",
        "trade_executor_open_pollers",
    ):
        assert value(samples, name) == 0, name
    kinds = {labels for name, labels in samples if name == "trade_executor_reconcile_breaks_total"}
    assert len(kinds) >= 3


def test_bridge_latency_series_exist_per_method_path_and_outcome() -> None:
    samples = scrape(Metrics())
    series = {
        dict(labels)["method"] + " " + dict(labels)["path"]
        for name, labels in samples
        if name == "trade_executor_bridge_request_seconds_count"
    }
    # The endpoints CONTRACT section 7 lists, as the client labels them.
    for endpoint in (
        "GET /health",
        "GET /account",
        "GET /positions",
        "GET /orders",
        "GET /orders/{id}",
        "POST /orders",
        "POST /orders/bracket",
        "DELETE /orders/{id}",
    ):
        assert endpoint in series, endpoint
    assert not any("endpoint" in dict(labels) for _, labels in samples)
    assert (
        value(
            samples,
            "trade_executor_bridge_request_seconds_count",
            method="POST",
            path="/orders/bracket",
            outcome="timeout",
        )
        == 0
    )


def test_observe_bridge_keeps_its_signature_and_splits_the_endpoint() -> None:
    metrics = Metrics()
    metrics.observe_bridge("GET /orders/{id}", "ok", 0.2)
    metrics.observe_bridge("GET /orders/{id}", "ok", 0.4)
    metrics.observe_bridge("POST /orders", "timeout", 15.0)
    samples = scrape(metrics)
    labels = {"method": "GET", "path": "/orders/{id}", "outcome": "ok"}
    assert value(samples, "trade_executor_bridge_request_seconds_count", **labels) == 2
    assert value(samples, "trade_executor_bridge_request_seconds_sum", **labels) == pytest.approx(
        0.6
    )
    timeout = {"method": "POST", "path": "/orders", "outcome": "timeout"}
    assert value(samples, "trade_executor_bridge_request_seconds_count", **timeout) == 1


def test_split_endpoint() -> None:
    assert split_endpoint("DELETE /orders/{id}") == ("DELETE", "/orders/{id}")
    assert split_endpoint("POST /positions/{symbol}/close") == ("POST", "/positions/{symbol}/close")
    assert split_endpoint("/health") == ("", "/health")  # no method: the path is kept whole
    assert split_endpoint("get /x") == ("", "get /x")


def test_no_created_series_and_other_registries_are_untouched() -> None:
    metrics = Metrics()
    metrics.approvals_received.inc()
    metrics.executions.labels(state="filled").inc()
    metrics.approval_to_submit.observe(0.3)
    text = metrics.render().decode()
    assert "_created" not in text
    assert "trade_executor_approvals_received_total 1.0" in text
    # Per registry: a registry of someone else in the same process keeps its `_created`.
    other = CollectorRegistry()
    Counter("other_thing", "x", registry=other).inc()
    assert "other_thing_created" in generate_latest(other).decode()


def test_existing_names_keep_working() -> None:
    metrics = Metrics()
    metrics.executions.labels(state="unknown").inc()
    metrics.risk_rejections.labels(gate="max_daily_loss").inc()
    metrics.orders_submitted.inc()
    metrics.open_pollers.set(3)
    metrics.set_daily_risk(Decimal("925.00"))
    samples = scrape(metrics)
    assert value(samples, "trade_executor_executions_total", state="unknown") == 1
    assert value(samples, "trade_executor_risk_rejections_total", gate="max_daily_loss") == 1
    assert value(samples, "trade_executor_orders_submitted_total") == 1
    assert value(samples, "trade_executor_open_pollers") == 3
    assert value(samples, "trade_executor_daily_risk_used") == 925.0


def test_limits_are_those_of_the_settings_given() -> None:
    settings = Settings(max_daily_loss=Decimal("2500.50"), max_open_positions=7)
    samples = scrape(Metrics(settings))
    assert value(samples, "trade_executor_limit", limit="max_daily_loss") == 2500.5
    assert value(samples, "trade_executor_limit", limit="max_open_positions") == 7
    assert value(samples, "trade_executor_limit", limit="max_risk_per_trade") == float(
        settings.max_risk_per_trade
    )
    # A mapping (the effective limits the service stored) works too; a missing or None value is
    # not exported, since 0 would read as "off".
    metrics = Metrics()
    metrics.set_limits({"max_daily_loss": Decimal("0"), "max_open_positions": None})
    samples = scrape(metrics)
    assert value(samples, "trade_executor_limit", limit="max_daily_loss") == 0
    assert ("trade_executor_limit", (("limit", "max_open_positions"),)) not in samples
    assert not any(name == "trade_executor_limit" for name, _ in scrape(Metrics())), (
        "no limit is exported before the settings are known"
    )


def test_halts_count_transitions_by_cause_but_not_the_restored_state() -> None:
    metrics = Metrics()
    metrics.set_halted(True, "breaker: failed: bridge_unavailable")  # restored at start-up
    samples = scrape(metrics)
    assert value(samples, "trade_executor_halted") == 1
    assert value(samples, "trade_executor_halts_total", cause="breaker") == 0

    metrics.set_halted(False)
    metrics.set_halted(True, "breaker: unknown: no answer")
    metrics.set_halted(True, "breaker: a second reason")  # still halted: not a new halt
    metrics.set_halted(False)
    metrics.set_halted(True, "IB maintenance")
    samples = scrape(metrics)
    assert value(samples, "trade_executor_halted") == 1
    assert value(samples, "trade_executor_halts_total", cause="breaker") == 1
    assert value(samples, "trade_executor_halts_total", cause="operator") == 1


def test_role_is_one_series_at_one() -> None:
    metrics = Metrics()
    metrics.set_role("standby")
    samples = scrape(metrics)
    assert (
        value(samples, "trade_executor_role", role="standby"),
        value(samples, "trade_executor_role", role="active"),
    ) == (1, 0)
    metrics.set_role("active")
    samples = scrape(metrics)
    assert (
        value(samples, "trade_executor_role", role="standby"),
        value(samples, "trade_executor_role", role="active"),
    ) == (0, 1)
    with pytest.raises(ValueError):
        metrics.set_role("leader")


def test_operator_gauges_and_counters() -> None:
    metrics = Metrics()
    metrics.set_needing_operator(2)
    metrics.set_realized_pnl_today(Decimal("-412.35"))
    metrics.set_bridge_up(True)
    metrics.reconcile_break("unprotected_position")
    metrics.reconcile_break("unprotected_position")
    samples = scrape(metrics)
    assert value(samples, "trade_executor_executions_needing_operator") == 2
    assert value(samples, "trade_executor_realized_pnl_today") == -412.35
    assert value(samples, "trade_executor_bridge_up") == 1
    kind = {"kind": "unprotected_position"}
    assert value(samples, "trade_executor_reconcile_breaks_total", **kind) == 2


def test_build_info_and_process_metrics() -> None:
    samples = scrape(Metrics())
    [build] = [labels for name, labels in samples if name == "trade_executor_build_info"]
    assert dict(build)["version"] == __version__
    names = {name for name, _ in samples}
    assert "python_info" in names
    if Path("/proc/self/stat").exists():  # ProcessCollector reads /proc: Linux only
        assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
        assert value(samples, "process_open_fds") > 0


def test_docs_name_exactly_the_exported_families() -> None:
    """docs/METRICS.md's table rows name every trade_executor_* series, and none that is not."""
    exported: set[str] = set()
    for family in text_string_to_metric_families(Metrics(Settings()).render().decode()):
        for sample in family.samples:
            if sample.name.startswith("trade_executor_"):
                # A histogram is documented once, by its family name.
                exported.add(family.name if family.type == "histogram" else sample.name)
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith("| `")]
    documented = {m.group(1) for row in rows if (m := re.match(r"\| `(trade_executor_\w+)", row))}
    assert documented == exported
