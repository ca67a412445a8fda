-- SQL of the report (CONTRACT section 2, `report`): the positions closed in a span of time, with
-- their signal's strategy and strategy instance. `instance_id` is read through `to_jsonb`, NULL on
-- a schema whose `strategy_signals` has no such column (see queries/original.py).

-- name: closed_between
-- $1, $2: [start, end) of closed_at; $3: a strategy id, or NULL for every strategy.
SELECT e.*, s.strategy_id AS report_strategy, (to_jsonb(s) ->> 'instance_id') AS report_instance
FROM executions e LEFT JOIN strategy_signals s ON s.id = e.signal_id
WHERE e.position_state = 'closed' AND e.closed_at >= $1 AND e.closed_at < $2
  AND ($3::text IS NULL OR s.strategy_id = $3::text)
ORDER BY e.closed_at, e.id
