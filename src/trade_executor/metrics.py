"""Prometheus metrics (CONTRACT section 6), on a registry of their own per service instance."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.approvals_received = Counter(
            "trade_executor_approvals_received", "Approvals claimed for execution", registry=r
        )
        self.executions = Counter(
            "trade_executor_executions",
            "Executions by the state they ended in",
            ["state"],
            registry=r,
        )
        self.risk_rejections = Counter(
            "trade_executor_risk_rejections", "Risk rejections by gate", ["gate"], registry=r
        )
        self.orders_submitted = Counter(
            "trade_executor_orders_submitted", "Orders accepted by the bridge", registry=r
        )
        self.bridge_latency = Histogram(
            "trade_executor_bridge_request_seconds",
            "IB bridge request latency",
            ["endpoint", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.approval_to_submit = Histogram(
            "trade_executor_approval_to_submit_seconds",
            "From the approval being seen to the bridge accepting the order",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.open_pollers = Gauge(
            "trade_executor_open_pollers", "Order pollers running", registry=r
        )
        self.daily_risk_used = Gauge(
            "trade_executor_daily_risk_used", "Risk committed and reserved today", registry=r
        )

    def observe_bridge(self, endpoint: str, outcome: str, seconds: float) -> None:
        self.bridge_latency.labels(endpoint=endpoint, outcome=outcome).observe(seconds)

    def set_daily_risk(self, amount: Decimal) -> None:
        self.daily_risk_used.set(float(amount))  # a gauge is a float by nature: display only

    def render(self) -> bytes:
        return generate_latest(self.registry)
