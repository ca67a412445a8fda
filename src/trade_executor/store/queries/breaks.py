"""SQL of the reconciliation with the broker (actors/reconciler.py) and its recorded breaks.

The text is in store/sql/breaks.sql."""

from trade_executor.store.sqlfiles import load

_SQL = load("breaks.sql")

EXECUTIONS_FOR_RECONCILE = _SQL.text("executions_for_reconcile")
OPEN_BREAKS = _SQL.text("open_breaks")
TOUCH_BREAK = _SQL.text("touch_break")
INSERT_BREAK = _SQL.text("insert_break")
CLEAR_BREAK = _SQL.text("clear_break")
LOCK_BREAKS = _SQL.text("lock_breaks")
