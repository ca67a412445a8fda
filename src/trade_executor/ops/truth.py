"""The broker's truth for the operator commands: see `trade_executor.ops.broker_truth` (shared
with the HTTP API and the console, which may not import ops)."""

from trade_executor.ops.broker_truth import (
    BrokerUnreadable,
    BrokerView,
    Disagreement,
    broker_positions,
    check_broker,
    checks,
    read_broker,
)

__all__ = [
    "BrokerUnreadable",
    "BrokerView",
    "Disagreement",
    "broker_positions",
    "check_broker",
    "checks",
    "read_broker",
]
