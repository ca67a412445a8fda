"""What the original service's own tables receive from us, as pure functions (the stores write
them in the decision's own transaction where the tables exist).

`fills`: one row per increase of an entry's filled quantity, with the delta and its own price.

`audit_events`: which decisions it records, and how (CONTRACT section 4): blocked,
duplicate and halted rejections, the kill switch and the breaker, an operator's `resolve`.
Pure: the store writes the row in the decision's own transaction where the table exists.

The original writes `category = 'execution'`, `action = 'idempotency_guard'`,
`outcome = 'blocked'` when it refuses a second order for a signal; an `already_executed`
rejection is recorded the same way, so its UI shows both services' refusals alike."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from trade_executor.domain.execution import Execution
from trade_executor.domain.states import Transition
from trade_executor.store.protocol import AuditEntry

SOURCE = "trade-executor"


def _rejection_kind(reason: str) -> tuple[str, str]:
    """(action, outcome) for a rejection reason."""
    if reason == "already_executed":
        return "idempotency_guard", "blocked"
    if reason == "risk: duplicate_symbol":
        return "risk_gate", "duplicate"
    if reason == "halted":
        return "trading_state", "halted"
    if reason.startswith("risk: "):
        return "risk_gate", "blocked"
    if reason in ("instance_disabled", "post_flatten", "artifact_not_approved"):
        return "instance_guardrail", "blocked"
    if reason == "live_trading_not_allowed":
        return "live_trading_guard", "blocked"
    return "validation", "blocked"  # invalid_signal, not_approved, stale, expired


def audit_for_transition(
    execution: Execution, transition: Transition, detail: dict[str, Any] | None
) -> AuditEntry | None:
    """The audit row a transition records, or None for one the original does not audit."""
    metadata: dict[str, Any] = {
        "source": SOURCE,
        "execution_id": str(execution.id),
        "signal_id": str(execution.signal_id),
        "symbol": execution.symbol,
        "state": execution.state.value,
        "reason": execution.reason,
    }
    if transition in (Transition.REJECT, Transition.HOLD_BACK):
        reason = execution.reason or ""
        action, outcome = _rejection_kind(reason)
        return AuditEntry(
            correlation_id=str(execution.signal_id),
            action=action,
            outcome=outcome,
            message=f"execution rejected: {reason}",
            metadata=metadata,
        )
    if transition.name.startswith("RESOLVE"):
        metadata.update({"order_id": execution.order_id, **(detail or {})})
        return AuditEntry(
            correlation_id=str(execution.signal_id),
            action="resolve",
            outcome=execution.state.value,
            message=f"operator resolved the execution as {execution.state.value}",
            metadata=metadata,
        )
    return None


def audit_for_control(halted: bool, reason: str | None, changed_by: str) -> AuditEntry:
    """The kill switch set or cleared; the breaker's halts (reason `breaker: ...`) apart."""
    if not halted:
        action, outcome = "resume", "resumed"
    elif (reason or "").startswith("breaker:"):
        action, outcome = "breaker", "halted"
    else:
        action, outcome = "halt", "halted"
    return AuditEntry(
        correlation_id="executor_control",
        action=action,
        outcome=outcome,
        message=f"{action}: {reason}" if reason else action,
        metadata={"source": SOURCE, "halted": halted, "reason": reason, "changed_by": changed_by},
    )


def fill_delta(
    qty_before: int | None,
    avg_before: Decimal | None,
    qty_after: int | None,
    avg_after: Decimal | None,
) -> tuple[int, Decimal] | None:
    """The quantity filled since the last record and its own average price (from the two
    cumulative averages), or None if nothing more filled."""
    q0, q1 = qty_before or 0, qty_after or 0
    if q1 <= q0:
        return None
    if avg_after is None:
        return q1 - q0, Decimal(0)
    if q0 == 0 or avg_before is None:
        return q1 - q0, Decimal(avg_after)
    price = (Decimal(q1) * Decimal(avg_after) - Decimal(q0) * Decimal(avg_before)) / (q1 - q0)
    return q1 - q0, price.quantize(Decimal("0.0001"))
