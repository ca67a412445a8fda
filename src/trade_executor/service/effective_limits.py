"""The limits and switches a running service applies, as the JSON it records in
`executor_control.limits` at each takeover, so that `status` in another shell (whose environment
may differ) reports the service's values rather than its own.

Layout (version 1): money and ratios as decimal strings (exact), counts as integers, intervals
in seconds as numbers, switches as booleans or their setting's text; `off` lists the limits set
to 0 (off, CONTRACT section 3). Readers ignore keys they do not know.
"""

from __future__ import annotations

from typing import Any

from trade_executor.config.sources import OFF_WHEN_ZERO, Settings

LIMITS_FORMAT = 1


def effective_limits(settings: Settings) -> dict[str, Any]:
    """Every risk limit and switch `status` shows, JSON-ready."""
    return {
        "format": LIMITS_FORMAT,
        "execution_enabled": settings.execution_enabled,
        "allow_live_trading": settings.allow_live_trading,
        "max_risk_per_trade": str(settings.max_risk_per_trade),
        "min_position_size": settings.min_position_size,
        "max_position_size": settings.max_position_size,
        "max_position_value_pct": str(settings.max_position_value_pct),
        "max_open_positions": settings.max_open_positions,
        "max_daily_loss": str(settings.max_daily_loss),
        "max_daily_realized_loss": str(settings.max_daily_realized_loss),
        "max_consecutive_failures": settings.max_consecutive_failures,
        "bridge_max_messages_per_second": settings.bridge_max_messages_per_second,
        "default_order_type": str(settings.default_order_type),
        "order_protection": settings.order_protection,
        "order_poll_interval": settings.order_poll_interval,
        "order_poll_timeout": settings.order_poll_timeout,
        "order_timeout_action": settings.order_timeout_action,
        "reconcile_interval": settings.reconcile_interval,
        "approval_max_age": settings.approval_max_age,
        "approval_sources": sorted(settings.approval_sources),
        "instance_guardrails": settings.instance_guardrails,
        "require_artifact_approval": settings.require_artifact_approval,
        "trading_day_timezone": settings.trading_day_timezone,
        "flatten_at": settings.flatten_at.strftime("%H:%M") if settings.flatten_at else None,
        "off": [name for name in OFF_WHEN_ZERO if getattr(settings, name) == 0],
    }
