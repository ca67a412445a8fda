"""SQL of our own ledger: the executions, their events and trade rows, the approvals we add.

The text is in store/sql/ledger.sql."""

from trade_executor.store.sqlfiles import load

_SQL = load("ledger.sql")

READ_APPROVAL = _SQL.text("read_approval")
READ_SIGNAL = _SQL.text("read_signal")
EXECUTION_BY_ID = _SQL.text("execution_by_id")
EXECUTION_BY_SIGNAL = _SQL.text("execution_by_signal")
EXECUTIONS_IN_STATES = _SQL.text("executions_in_states")
EXECUTION_IDS_IN_STATES = _SQL.text("execution_ids_in_states")
LEDGER_GAUGES = _SQL.text("ledger_gauges")
EXECUTIONS_ON_DAY = _SQL.text("executions_on_day")
APPLY = _SQL.named("apply")
APPLY_FENCED = _SQL.named("apply_fenced")
READ_LEADER_EPOCH = _SQL.text("read_leader_epoch")
EXECUTION_STATE = _SQL.text("execution_state")
INSERT_EVENT = _SQL.text("insert_event")
UPSERT_TRADE = _SQL.text("upsert_trade")
LINK_APPROVALS = _SQL.text("link_approvals")
APPROVAL_FOR_SIGNAL = _SQL.text("approval_for_signal")
INSERT_APPROVAL = _SQL.text("insert_approval")
SIGNAL_LOCK = _SQL.text("signal_lock")
TRADE_FOR_SIGNAL = _SQL.text("trade_for_signal")
