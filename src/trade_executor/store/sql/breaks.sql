-- SQL of the reconciliation with the broker (actors/reconciler.py) and its recorded breaks.

-- name: executions_for_reconcile
-- What the reconciler compares with the broker: executions in flight (their order may fill at
-- any moment), executions holding shares whose position is not known closed, and cancelled ones
-- whose order the broker still lists (IB can report Cancelled for an order that filled).
SELECT * FROM executions
WHERE state IN ('submitting', 'submitted', 'partially_filled', 'unknown')
   OR (state IN ('filled', 'cancelled') AND filled_qty > 0
       AND coalesce(position_state, '') <> 'closed')
   OR (state = 'cancelled' AND order_id = ANY($1::bigint[]))
ORDER BY created_at

-- name: open_breaks
SELECT kind, symbol, execution_id, order_id, detail, first_seen, last_seen, cleared_at
FROM trade_executor_reconcile_breaks WHERE cleared_at IS NULL ORDER BY first_seen, id

-- name: touch_break
-- A break seen again: refresh it (the execution_id comparison must treat NULL as equal).
UPDATE trade_executor_reconcile_breaks
SET last_seen = $4, order_id = $5, detail = $6::jsonb
WHERE cleared_at IS NULL AND kind = $1 AND symbol = $2 AND execution_id IS NOT DISTINCT FROM $3

-- name: insert_break
INSERT INTO trade_executor_reconcile_breaks
    (kind, symbol, execution_id, order_id, detail, first_seen, last_seen)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $6)

-- name: clear_break
UPDATE trade_executor_reconcile_breaks SET cleared_at = $4
WHERE cleared_at IS NULL AND kind = $1 AND symbol = $2 AND execution_id IS NOT DISTINCT FROM $3

-- name: lock_breaks
LOCK TABLE trade_executor_reconcile_breaks IN SHARE ROW EXCLUSIVE MODE
