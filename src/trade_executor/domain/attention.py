"""Which executions need an operator (CONTRACT section 5, "no execution is stranded"): `unknown`
ones, and those left in a non-final state past the bound the service keeps them to.

Written once for `status` (which must say what the running service would) and the
`trade_executor_executions_needing_operator` gauge. Pure: no clock of its own, no I/O.

Bounds: `received` is decided within seconds; `submitting` ends within IB_BRIDGE_TIMEOUT plus
the reconcile window; `submitted`/`partially_filled` end within ORDER_POLL_TIMEOUT plus a grace
(only when the timeout cancels: with ORDER_TIMEOUT_ACTION=leave a working order may rightly
stay working). Each bound carries GRACE on top, so a slow but healthy service is not flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from trade_executor.domain.execution import Execution
from trade_executor.domain.states import ExecutionState

S = ExecutionState
GRACE = timedelta(seconds=60)
RECEIVED_BOUND = timedelta(seconds=60)

# The Settings defaults (CONTRACT section 3), for a service that did not publish its own.
_DEFAULTS: dict[str, Any] = {
    "ib_bridge_timeout": 15.0,
    "reconcile_interval": 60.0,
    "order_poll_timeout": 120.0,
    "order_poll_interval": 10.0,
    "order_timeout_action": "cancel",
}


@dataclass(frozen=True, slots=True)
class Bounds:
    received: timedelta
    submitting: timedelta
    working: timedelta | None  # None: working orders have no bound (ORDER_TIMEOUT_ACTION=leave)

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | object) -> Bounds:
        """From a Settings object or a mapping (the limits a running service published);
        a value missing from it takes the documented default."""

        def seconds(name: str) -> float:
            raw = values.get(name) if isinstance(values, Mapping) else getattr(values, name, None)
            try:
                return float(Decimal(str(raw))) if raw is not None else float(_DEFAULTS[name])
            except (InvalidOperation, ValueError):
                return float(_DEFAULTS[name])

        if isinstance(values, Mapping):
            action = values.get("order_timeout_action", _DEFAULTS["order_timeout_action"])
        else:
            action = getattr(values, "order_timeout_action", _DEFAULTS["order_timeout_action"])
        poll = seconds("order_poll_interval")
        working = timedelta(seconds=seconds("order_poll_timeout") + 2 * poll) + GRACE
        return cls(
            received=RECEIVED_BOUND,
            submitting=timedelta(
                seconds=seconds("ib_bridge_timeout") + seconds("reconcile_interval")
            )
            + GRACE,
            working=None if str(action).lower() == "leave" else working,
        )


# (CONTRACT v3) An intent a crash left behind whose absence at the bridge could not be proven:
# final (never re-sent, risk released), but a person must check TWS for the order.
RECOVERY_NOT_PLACED = "not_placed: recovery: "


def needs_operator(execution: Execution, bounds: Bounds, now: datetime) -> str | None:
    """Why an operator must settle `execution`, or None if the service can."""
    state = execution.state
    if state is S.UNKNOWN:
        return f"unknown: {execution.reason}" if execution.reason else "unknown"
    if state is S.FAILED and (execution.reason or "").startswith(RECOVERY_NOT_PLACED):
        return f"check the broker for the order: failed: {execution.reason}"
    if state.is_final:
        return None
    if state is S.RECEIVED:
        since, bound = execution.created_at, bounds.received
    elif state is S.SUBMITTING:
        since, bound = execution.attempted_at or execution.updated_at, bounds.submitting
    elif bounds.working is not None:
        since, bound = execution.submitted_at or execution.updated_at, bounds.working
    else:
        return None
    if since is None or now - since <= bound:
        return None
    waited = int((now - since).total_seconds())
    return f"{state.value} for {waited} s (bound {int(bound.total_seconds())} s)"


def needing_operator(
    executions: Iterable[Execution], bounds: Bounds, now: datetime
) -> list[tuple[Execution, str]]:
    """Each execution that needs an operator, with why, in the given order (once each). Pass
    today's executions too for the `failed: not_placed: recovery:` ones (listed on their day)."""
    found = []
    seen: set[object] = set()
    for execution in executions:
        if execution.id in seen:
            continue
        seen.add(execution.id)
        why = needs_operator(execution, bounds, now)
        if why is not None:
            found.append((execution, why))
    return found
