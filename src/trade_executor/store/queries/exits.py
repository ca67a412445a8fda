"""SQL of the exits (actors/exits): the positions they follow, the original's flatten times, an
exit's note on the trade list, and `close` from another shell."""

# Positions the exits follow: open ones (any day) and those closed since $1 (today's P&L).
POSITIONS_TO_FOLLOW = """
SELECT * FROM executions
WHERE position_state IN ('open', 'unprotected') OR closed_at >= $1
ORDER BY created_at
"""
# The strategy instances' flatten times of some executions (the original's guardrails). Only
# run where strategy_instances and strategy_signals.instance_id exist (INSTANCE_FLATTEN_READY).
INSTANCE_FLATTEN_READY = """
SELECT to_regclass('strategy_instances') IS NOT NULL AND EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'strategy_signals'
      AND column_name = 'instance_id')
"""
INSTANCE_FLATTEN_TIMES = """
SELECT e.id AS execution_id, i.id::text AS instance_id, i.flatten_by_close_time::text AS at,
       i.session_timezone::text AS zone
FROM executions e
JOIN strategy_signals s ON s.id = e.signal_id
JOIN strategy_instances i ON i.id = s.instance_id
WHERE e.id = ANY($1::uuid[])
"""
# How an exit shows on the original's trade list (see actors/exits/notes.py).
SET_TRADE_NOTES = "UPDATE trades SET notes = $2, updated_at = now() WHERE id = $1::text"

# `close` from another shell: the running service's exits carry it out (actors/exits).
ANNOUNCE_CLOSE = "SELECT pg_notify('trade_executor_control', $1::text)"
