"""The domain's limits and bounds built from the settings.

The domain takes no Settings (it would import configuration, and configuration imports the
domain's types): the values it needs are handed to it as its own small dataclasses, built here.
"""

from __future__ import annotations

from trade_executor.config.settings import Settings
from trade_executor.domain.bounds import (
    RECEIVED_BOUND,
    RECONCILE_WINDOW,
    StateBounds,
    working_grace,
)
from trade_executor.domain.sizing import RiskLimits


def risk_limits(settings: Settings) -> RiskLimits:
    """The risk gates' limits: MAX_RISK_PER_TRADE, the position bounds, the daily budgets."""
    return RiskLimits(
        max_risk_per_trade=settings.max_risk_per_trade,
        min_position_size=settings.min_position_size,
        max_position_size=settings.max_position_size,
        max_position_value_pct=settings.max_position_value_pct,
        max_open_positions=settings.max_open_positions,
        max_daily_loss=settings.max_daily_loss,
        max_daily_realized_loss=settings.max_daily_realized_loss,
    )


def state_bounds(
    settings: Settings,
    *,
    received: float = RECEIVED_BOUND,
    reconcile_window: float = RECONCILE_WINDOW,
) -> StateBounds:
    """How long each non-final state may last before the deadlines act on it."""
    grace = working_grace(settings.order_poll_interval)  # the pollers' own bound
    return StateBounds(
        received=received,
        submitting=settings.ib_bridge_timeout + reconcile_window,
        working=settings.order_poll_timeout + grace,
        ib_bridge_timeout=settings.ib_bridge_timeout,
        reconcile_window=reconcile_window,
        order_poll_timeout=settings.order_poll_timeout,
    )
