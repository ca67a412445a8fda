"""SQL of the report (CONTRACT section 2, `report`): the positions closed in a span of time, with
their signal's strategy and strategy instance. `instance_id` is read through `to_jsonb`, NULL on
a schema whose `strategy_signals` has no such column (see queries/original.py).

The text is in store/sql/report.sql."""

from trade_executor.store.sqlfiles import load

__all__ = ["CLOSED_BETWEEN"]

_SQL = load("report.sql")

CLOSED_BETWEEN = _SQL.text("closed_between")
