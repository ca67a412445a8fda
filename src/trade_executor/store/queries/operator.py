"""SQL of the kill switch and the operator's reads (`halt`, `resume`, `show`, `resolve`).

The text is in store/sql/operator.sql."""

from trade_executor.store.sqlfiles import load

_SQL = load("operator.sql")

READ_CONTROL = _SQL.text("read_control")
SET_CONTROL = _SQL.text("set_control")
ANNOUNCE_CHANGE = _SQL.text("announce_change")
FIND_EXECUTIONS = _SQL.text("find_executions")
EXECUTION_EVENTS = _SQL.text("execution_events")
ACKNOWLEDGE_CONTROL = _SQL.text("acknowledge_control")
PING = _SQL.text("ping")
