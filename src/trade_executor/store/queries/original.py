"""SQL of the drop-in on jax-trading-assistant (CONTRACT sections 4 and 5): which of the original's
tables exist, its orders and trades, its guardrails' facts, and our writes to its tables.

Columns the original added to its own tables in later migrations (strategy_signals.instance_id
and artifact_id) are read through `to_jsonb(row) ->> 'name'`, which is NULL where a column does
not exist: one statement serves our own schema and both of the original's.

The text is in store/sql/original.sql."""

from trade_executor.store.sqlfiles import load

_SQL = load("original.sql")

ORIGINAL_TABLES = _SQL.text("original_tables")
ORIGINAL_ORDER = _SQL.text("original_order")
ORIGINAL_ORDER_WITH_INTENTS = _SQL.text("original_order_with_intents")
ORIGINAL_TRADES_SINCE = _SQL.text("original_trades_since")
SIGNAL_PROVENANCE = _SQL.text("signal_provenance")
READ_INSTANCE = _SQL.text("read_instance")
INSTANCE_USAGE = _SQL.text("instance_usage")
ARTIFACT_STATE = _SQL.text("artifact_state")
TRADE_PROVENANCE = _SQL.text("trade_provenance")
TRADE_ARTIFACT_HASH = _SQL.text("trade_artifact_hash")
INSERT_ORDER_INTENT = _SQL.text("insert_order_intent")
DELETE_ORDER_INTENT = _SQL.text("delete_order_intent")
UPDATE_ORDER_INTENT = _SQL.text("update_order_intent")
FILL_BEFORE = _SQL.text("fill_before")
INSERT_FILL = _SQL.text("insert_fill")
INSERT_AUDIT = _SQL.text("insert_audit")
