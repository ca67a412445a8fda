"""SQL of the exits (actors/exits): the positions they follow, the original's flatten times, an
exit's note on the trade list, and `close` from another shell.

The text is in store/sql/exits.sql."""

from trade_executor.store.sqlfiles import load

_SQL = load("exits.sql")

POSITIONS_TO_FOLLOW = _SQL.text("positions_to_follow")
INSTANCE_FLATTEN_READY = _SQL.text("instance_flatten_ready")
INSTANCE_FLATTEN_TIMES = _SQL.text("instance_flatten_times")
SET_TRADE_NOTES = _SQL.text("set_trade_notes")
ANNOUNCE_CLOSE = _SQL.text("announce_close")
