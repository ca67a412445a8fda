-- SQL of the exits (actors/exits): the positions they follow, the original's flatten times, an
-- exit's note on the trade list, and `close` from another shell.

-- name: positions_to_follow
-- Positions the exits follow: open ones (any day) and those closed since $1 (today's P&L).
SELECT * FROM executions
WHERE position_state IN ('open', 'unprotected') OR closed_at >= $1
ORDER BY created_at

-- name: instance_flatten_ready
-- The strategy instances' flatten times of some executions (the original's guardrails). Only
-- run where strategy_instances and strategy_signals.instance_id exist (INSTANCE_FLATTEN_READY).
SELECT to_regclass('strategy_instances') IS NOT NULL AND EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'strategy_signals'
      AND column_name = 'instance_id')

-- name: instance_flatten_times
SELECT e.id AS execution_id, i.id::text AS instance_id, i.flatten_by_close_time::text AS at,
       i.session_timezone::text AS zone
FROM executions e
JOIN strategy_signals s ON s.id = e.signal_id
JOIN strategy_instances i ON i.id = s.instance_id
WHERE e.id = ANY($1::uuid[])

-- name: set_trade_notes
-- How an exit shows on the original's trade list (see actors/exits/notes.py).
UPDATE trades SET notes = $2, updated_at = now() WHERE id = $1::text

-- name: announce_close
-- `close` from another shell: the running service's exits carry it out (actors/exits).
SELECT pg_notify('trade_executor_control', $1::text)
