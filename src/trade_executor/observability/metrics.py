"""Prometheus metrics (CONTRACT section 6), on a registry of their own per service instance.

Guarantees, each checked by tests/test_metrics.py:
- Every labelled series an alert or dashboard can name exists from construction: executions by
  each outcome state (`unknown` included), risk rejections by each gate, reconcile breaks by each
  kind, halts by each cause, the role by each value, bridge latency by each known method, path
  and outcome. So `increase(...{state="unknown"}[10m]) > 0` sees the first `unknown` after a start:
  the series was scraped at 0 before it.
- No `_created` series: the exposition leaves them out for this registry alone (prometheus_client's
  `disable_created_metrics()` would change every registry of the process).
- Each configured limit is a gauge (`trade_executor_limit{limit="max_daily_loss"}`), so an alert
  compares usage with the limit the service really runs with, not a number copied into the rule.
- Process metrics (`process_*`, `python_*`) come from prometheus_client's own collectors.

Money is Decimal in the service; a gauge holds a float by nature, so the conversion happens here,
for display only, and nothing reads a value back from a metric.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from trade_executor import __version__
from trade_executor.domain.sizing import RiskGate
from trade_executor.domain.states import FINAL_STATES, ExecutionState

# Up to and beyond IB_BRIDGE_TIMEOUT (default 15 s): the jax bridge takes 5-6 s for a bracket, so
# the buckets between 5 and 60 s are what tell a slow normal answer from one that timed out.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10, 15, 20, 30, 60,
)  # fmt: skip


def latency_buckets(bridge_timeout: float | None) -> tuple[float, ...]:
    """LATENCY_BUCKETS, plus the configured IB_BRIDGE_TIMEOUT and twice it when those lie
    beyond them (it may be set up to 300 s): a request that hit the timeout is never lumped
    into +Inf with ones that waited far longer."""
    extra = () if bridge_timeout is None else (bridge_timeout, 2 * bridge_timeout)
    return tuple(sorted({*LATENCY_BUCKETS, *(b for b in extra if b > LATENCY_BUCKETS[-1])}))


# The states an execution is counted in: where it ends, and `unknown` (it waits for an operator).
EXECUTION_OUTCOMES: tuple[str, ...] = tuple(
    state.value
    for state in ExecutionState
    if state in FINAL_STATES or state is ExecutionState.UNKNOWN
)

# RiskGate's gates plus those CONTRACT section 4 adds in version 2 (realized loss, per instance).
RISK_GATES: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            *(gate.value for gate in RiskGate),
            "max_daily_realized_loss",
            "instance_max_trades_per_day",
            "instance_max_open_positions",
            "instance_max_daily_loss",
        ]
    )
)

# CONTRACT section 5, reconciliation: a position the ledger does not explain, a filled entry with
# no position at the broker, an open position with no working stop.
RECONCILE_BREAK_KINDS: tuple[str, ...] = (
    "unexplained_position",
    "missing_position",
    "unprotected_position",
    # IB reported `Cancelled` for an order that then showed fills (its error 10349).
    "fill_after_cancel",
)
# How long an order message waited for the pacing window (BRIDGE_MAX_MESSAGES_PER_SECOND).
PACING_BUCKETS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

HALT_CAUSES: tuple[str, ...] = ("operator", "breaker")
# Notifications (NOTIFY_EVENTS kinds, and `test` for notify-test) and what became of each.
NOTIFICATION_KINDS: tuple[str, ...] = (
    "filled",
    "closed",
    "halted",
    "breaker",
    "needs_operator",
    "reconcile_break",
    "live_refused",
    "daily_summary",
)
NOTIFICATION_OUTCOMES: tuple[str, ...] = ("sent", "failed", "dropped")
ROLES: tuple[str, ...] = ("active", "standby")

# The bridge endpoints the client calls (CONTRACT section 7), paths as templates: an order id or a
# symbol in a label would make a series per order.
BRIDGE_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("GET", "/health"),
    ("GET", "/account"),
    ("GET", "/positions"),
    ("GET", "/orders"),
    ("GET", "/orders/{id}"),
    ("POST", "/orders"),
    ("POST", "/orders/bracket"),
    ("DELETE", "/orders/{id}"),
    ("POST", "/positions/{symbol}/close"),
    ("POST", "/positions/{symbol}/protect"),
)
# BrokerClient's outcomes: see its docstring.
BRIDGE_OUTCOMES: tuple[str, ...] = (
    "ok",
    "timeout",
    "connect_error",
    "error",
    "rejected",
    "malformed",
)

# Settings exported as `trade_executor_limit{limit=<name>}`; 0 means "off" where CONTRACT section 3
# allows it. A name the given settings lack (an older configuration) is skipped.
LIMIT_NAMES: tuple[str, ...] = (
    "max_risk_per_trade",
    "min_position_size",
    "max_position_size",
    "max_position_value_pct",
    "max_open_positions",
    "max_daily_loss",
    "max_daily_realized_loss",
    "max_consecutive_failures",
    "bridge_max_messages_per_second",
    "approval_max_age",
)


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """`"GET /orders/{id}"` -> `("GET", "/orders/{id}")`; a label without a method gets `""`."""
    method, sep, path = endpoint.partition(" ")
    if sep and method.isalpha() and method.isupper():
        return method, path.strip()
    return "", endpoint.strip()


class _WithoutCreated:
    """The registry's exposition minus each counter's and histogram's `_created` sample."""

    _TYPES_WITH_CREATED = frozenset({"counter", "histogram", "summary", "gaugehistogram"})

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            if family.type not in self._TYPES_WITH_CREATED:
                yield family
                continue
            created = f"{family.name}_created"
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [sample for sample in family.samples if sample.name != created]
            yield kept


class Metrics:
    """The service's metrics. Attribute names are part of the API other modules use."""

    def __init__(self, settings: object | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        timeout = getattr(settings, "ib_bridge_timeout", None)
        buckets = latency_buckets(float(timeout) if timeout is not None else None)
        self.approvals_received = Counter(
            "trade_executor_approvals_received", "Approvals claimed for execution", registry=r
        )
        self.executions = Counter(
            "trade_executor_executions",
            "Executions by the state they ended in (unknown: waiting for an operator)",
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
            "IB bridge request latency by HTTP method, path template and outcome",
            ["method", "path", "outcome"],
            buckets=buckets,
            registry=r,
        )
        self.approval_to_submit = Histogram(
            "trade_executor_approval_to_submit_seconds",
            "From the approval being seen to the bridge accepting the order",
            buckets=buckets,
            registry=r,
        )
        self.pacing_wait = Histogram(
            "trade_executor_bridge_pacing_wait_seconds",
            "How long each order message waited for BRIDGE_MAX_MESSAGES_PER_SECOND (0: not at all)",
            buckets=PACING_BUCKETS,
            registry=r,
        )
        self.open_pollers = Gauge(
            "trade_executor_open_pollers", "Order pollers running", registry=r
        )
        self.daily_risk_used = Gauge(
            "trade_executor_daily_risk_used", "Risk committed and reserved today", registry=r
        )
        self.realized_pnl_today = Gauge(
            "trade_executor_realized_pnl_today",
            "Realized profit (negative: loss) of positions closed today",
            registry=r,
        )
        self.halted = Gauge(
            "trade_executor_halted", "1 while the kill switch is on (halt or breaker)", registry=r
        )
        self.halt_cause = Gauge(
            "trade_executor_halt_cause",
            "1 for the cause of the halt in force (operator or breaker), 0 for the other; both 0"
            " while running",
            ["cause"],
            registry=r,
        )
        self.halts = Counter(
            "trade_executor_halts",
            "Times the service went from running to halted, by cause",
            ["cause"],
            registry=r,
        )
        self.role = Gauge(
            "trade_executor_role",
            "1 for this instance's role (active or standby); both 0 while starting",
            ["role"],
            registry=r,
        )
        self.bridge_up = Gauge(
            "trade_executor_bridge_up",
            "1 while the bridge's background health check succeeds (0 until the first success)",
            registry=r,
        )
        self.live_trading_refused = Gauge(
            "trade_executor_live_trading_refused",
            "1 while the bridge's account is LIVE and ALLOW_LIVE_TRADING is false: every "
            "approval is rejected live_trading_not_allowed, no order is sent",
            registry=r,
        )
        self.database_commit_durable = Gauge(
            "trade_executor_database_commit_durable",
            "1 when the database's settings make a commit survive a standby's promotion "
            "(synchronous_commit on and a synchronous standby streaming); 0 when they do not, "
            "or until checked",
            registry=r,
        )
        self.executions_needing_operator = Gauge(
            "trade_executor_executions_needing_operator",
            "Executions only an operator can settle (unknown, or past their bound)",
            registry=r,
        )
        self.reconcile_breaks = Counter(
            "trade_executor_reconcile_breaks",
            "Breaks found by reconciliation with the broker, by kind, each once when it is new",
            ["kind"],
            registry=r,
        )
        self.reconcile_breaks_open = Gauge(
            "trade_executor_reconcile_breaks_open",
            "Breaks open after the last reconciliation pass, by kind",
            ["kind"],
            registry=r,
        )
        self.notifications = Counter(
            "trade_executor_notifications",
            "Notifications by kind and outcome: sent (a target accepted it), failed (a target "
            "refused it after every retry), dropped (a full queue made room for a newer one)",
            ["kind", "outcome"],
            registry=r,
        )
        self.limit = Gauge(
            "trade_executor_limit",
            "Each configured limit as the service applies it (0 = off where allowed)",
            ["limit"],
            registry=r,
        )
        self.build_info = Info("trade_executor_build", "The running version", registry=r)
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

        self._halted: bool | None = None
        for state in EXECUTION_OUTCOMES:
            self.executions.labels(state=state)
        for gate in RISK_GATES:
            self.risk_rejections.labels(gate=gate)
        for kind in RECONCILE_BREAK_KINDS:
            self.reconcile_breaks.labels(kind=kind)
            self.reconcile_breaks_open.labels(kind=kind).set(0)
        for cause in HALT_CAUSES:
            self.halts.labels(cause=cause)
            self.halt_cause.labels(cause=cause).set(0)
        for kind in NOTIFICATION_KINDS:
            for outcome in NOTIFICATION_OUTCOMES:
                self.notifications.labels(kind=kind, outcome=outcome)
        for role in ROLES:
            self.role.labels(role=role).set(0)
        for method, path in BRIDGE_ENDPOINTS:
            for outcome in BRIDGE_OUTCOMES:
                self.bridge_latency.labels(method=method, path=path, outcome=outcome)
        if settings is not None:
            self.set_limits(settings)

    # ---- bridge ---------------------------------------------------------------------------

    def observe_bridge(self, endpoint: str, outcome: str, seconds: float) -> None:
        """BrokerClient's `on_request` hook: `endpoint` like `"GET /orders/{id}"`."""
        method, path = split_endpoint(endpoint)
        self.bridge_latency.labels(method=method, path=path, outcome=outcome).observe(seconds)

    def observe_pacing_wait(self, seconds: float) -> None:
        """`broker.pacing.Pacer`'s `on_wait` hook: one observation per order message sent."""
        self.pacing_wait.observe(seconds)

    def set_bridge_up(self, up: bool) -> None:
        self.bridge_up.set(1 if up else 0)

    def set_live_trading_refused(self, refused: bool) -> None:
        self.live_trading_refused.set(1 if refused else 0)

    def set_commit_durable(self, durable: bool) -> None:
        self.database_commit_durable.set(1 if durable else 0)

    # ---- risk and trading state ---------------------------------------------------------------

    def set_daily_risk(self, amount: Decimal) -> None:
        self.daily_risk_used.set(float(amount))  # a gauge is a float by nature: display only

    def set_realized_pnl_today(self, amount: Decimal) -> None:
        self.realized_pnl_today.set(float(amount))

    def set_halted(self, halted: bool, reason: str | None = None) -> None:
        """The kill switch's state. A change from running to halted counts in `halts_total`,
        cause `breaker` when the reason starts `breaker:`, else `operator`. The first call (the
        state restored at start-up) sets the gauge without counting: that halt began earlier.
        `halt_cause` says which cause holds the halt now, 0 for both once resumed."""
        cause = "breaker" if (reason or "").startswith("breaker:") else "operator"
        if halted and self._halted is False:
            self.halts.labels(cause=cause).inc()
        self._halted = halted
        self.halted.set(1 if halted else 0)
        # A state, for alerts that must clear on `resume` (a counter's increase lingers).
        for name in HALT_CAUSES:
            self.halt_cause.labels(cause=name).set(1 if halted and name == cause else 0)

    def set_role(self, role: str | None) -> None:
        """`"active"`, `"standby"`, or None (starting, or between roles): one series at 1."""
        if role is not None and role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        for name in ROLES:
            self.role.labels(role=name).set(1 if name == role else 0)

    def set_needing_operator(self, count: int) -> None:
        self.executions_needing_operator.set(count)

    def notification(self, kind: str, outcome: str) -> None:
        """Count one notification's outcome for one target (`sent`, `failed`) or the queue
        (`dropped`)."""
        self.notifications.labels(kind=kind, outcome=outcome).inc()

    def reconcile_break(self, kind: str) -> None:
        """Count one new break (kinds: RECONCILE_BREAK_KINDS); `actors.break_report` calls it
        once per break, not once per pass that finds it again."""
        self.reconcile_breaks.labels(kind=kind).inc()

    def set_open_breaks(self, by_kind: Mapping[str, int]) -> None:
        """The breaks open after a pass, by kind; a kind absent from `by_kind` is 0."""
        for kind in dict.fromkeys([*RECONCILE_BREAK_KINDS, *by_kind]):
            self.reconcile_breaks_open.labels(kind=kind).set(by_kind.get(kind, 0))

    def set_limits(self, settings: object | Mapping[str, Any]) -> None:
        """Export each limit of LIMIT_NAMES found in `settings`: a Settings object (attributes)
        or a mapping (the service's effective limits as stored for `status`). A missing or None
        value is skipped, never exported as 0, which would read as "off"."""
        for name in LIMIT_NAMES:
            if isinstance(settings, Mapping):
                value = settings.get(name)
            else:
                value = getattr(settings, name, None)
            if value is None or isinstance(value, bool):
                continue
            self.limit.labels(limit=name).set(float(value))

    # ---- exposition ---------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition, without `_created` series."""
        return generate_latest(_WithoutCreated(self.registry))
