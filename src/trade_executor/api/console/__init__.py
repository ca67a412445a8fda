"""The operator's web console at /console (CONTRACT section 6): server-rendered pages of what
the service sees (state, positions broker beside ledger, today's trades, what needs an
operator, breaks, budget and P&L, one execution's trail, a chart of the day's realized P&L),
and the operator's actions behind the API token (`routes`, `auth`, `actions`)."""

from trade_executor.api.console.routes import console_routes

__all__ = ["console_routes"]
