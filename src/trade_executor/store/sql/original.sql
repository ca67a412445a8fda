-- SQL of the drop-in on jax-trading-assistant (CONTRACT sections 4 and 5): which of the original's
-- tables exist, its orders and trades, its guardrails' facts, and our writes to its tables.
--
-- Columns the original added to its own tables in later migrations (strategy_signals.instance_id
-- and artifact_id) are read through `to_jsonb(row) ->> 'name'`, which is NULL where a column does
-- not exist: one statement serves our own schema and both of the original's.

-- name: original_tables
-- Which of the original's HEAD tables exist (in the search path, as every other query sees it).
SELECT to_regclass('strategy_instances') IS NOT NULL AS strategy_instances,
       to_regclass('artifact_approvals') IS NOT NULL AS artifact_approvals,
       to_regclass('strategy_artifacts') IS NOT NULL AS strategy_artifacts,
       to_regclass('order_intents') IS NOT NULL AS order_intents,
       to_regclass('fills') IS NOT NULL AS fills,
       to_regclass('audit_events') IS NOT NULL AS audit_events

-- name: original_order
SELECT 'trades row ' || t.id AS evidence
FROM trades t
WHERE t.signal_id = $1
  AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.signal_id = $1 AND e.id::text = t.id)
UNION ALL
SELECT 'trade_approvals.order_id ' || a.order_id
FROM trade_approvals a
WHERE a.signal_id = $1 AND a.order_id IS NOT NULL AND a.order_id <> ''
  AND NOT EXISTS (SELECT 1 FROM executions e
                  WHERE e.signal_id = a.signal_id AND e.order_id::text = a.order_id)
LIMIT 1

-- name: original_order_with_intents
SELECT 'trades row ' || t.id AS evidence
FROM trades t
WHERE t.signal_id = $1
  AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.signal_id = $1 AND e.id::text = t.id)
UNION ALL
SELECT 'trade_approvals.order_id ' || a.order_id
FROM trade_approvals a
WHERE a.signal_id = $1 AND a.order_id IS NOT NULL AND a.order_id <> ''
  AND NOT EXISTS (SELECT 1 FROM executions e
                  WHERE e.signal_id = a.signal_id AND e.order_id::text = a.order_id)
UNION ALL
SELECT 'order_intents row ' || oi.id::text || ' (broker order ' || (oi.metadata ->> 'brokerOrderId')
       || ')'
FROM order_intents oi
WHERE oi.signal_id = $1
  AND COALESCE(oi.metadata ->> 'brokerOrderId', '') <> ''
  AND oi.metadata ->> 'executionId' IS NULL
LIMIT 1

-- name: original_trades_since
-- The original's trades since a moment (the start of our trading day): its daily-risk query sums
-- `risk->>'amount'` the same way.
SELECT t.id, t.symbol, COALESCE((t.risk ->> 'amount')::numeric, 0) AS risk_amount,
       t.order_status, t.created_at
FROM trades t
WHERE t.created_at >= $1
  -- by signal_id first: its unique index makes this one probe per trade
  AND NOT EXISTS (SELECT 1 FROM executions e
                  WHERE e.signal_id = t.signal_id AND e.id::text = t.id)
ORDER BY t.created_at

-- name: signal_provenance
SELECT (to_jsonb(s) ->> 'instance_id')::uuid AS instance_id,
       (to_jsonb(s) ->> 'artifact_id')::uuid AS artifact_id
FROM strategy_signals s WHERE s.id = $1

-- name: read_instance
SELECT id, enabled, session_timezone, flatten_by_close_time, config::text AS config
FROM strategy_instances WHERE id = $1

-- name: instance_usage
-- Today's trades of one instance: its `trades` rows (the original's and ours), and our executions
-- that have none (a dry run, an order being sent, an answer lost). `open`: its symbol is held.
SELECT t.id AS key, t.symbol, COALESCE((t.risk ->> 'amount')::numeric, 0) AS risk_amount,
       CASE WHEN e.id IS NOT NULL
            THEN e.state IN ('submitting', 'submitted', 'partially_filled', 'unknown')
                 OR e.position_state IN ('open', 'unprotected')
            ELSE COALESCE(t.order_status, '') NOT IN
                 ('Filled', 'Cancelled', 'ApiCancelled', 'Inactive', 'Rejected')
       END AS open
FROM trades t LEFT JOIN executions e ON e.signal_id = t.signal_id AND e.id::text = t.id
WHERE t.instance_id = $1 AND t.created_at >= $2
UNION ALL
SELECT e.id::text, e.symbol, COALESCE(e.risk_amount, 0), true
FROM executions e JOIN strategy_signals s ON s.id = e.signal_id
WHERE (to_jsonb(s) ->> 'instance_id')::uuid = $1
  AND e.trading_day = $3
  AND e.state IN ('submitting', 'unknown', 'dry_run')
  AND NOT EXISTS (SELECT 1 FROM trades t WHERE t.id = e.id::text)

-- name: artifact_state
-- The original's gate (its GetSignal): an artifact_approvals row in APPROVED or ACTIVE.
SELECT state::text AS state FROM artifact_approvals WHERE artifact_id = $1
ORDER BY (state::text IN ('APPROVED', 'ACTIVE')) DESC LIMIT 1

-- name: trade_provenance
-- Provenance copied from the signal onto our trade row, as the original's StoreTrade does.
UPDATE trades t SET
    instance_id = COALESCE(t.instance_id, (to_jsonb(s) ->> 'instance_id')::uuid),
    artifact_id = COALESCE(t.artifact_id, (to_jsonb(s) ->> 'artifact_id')::uuid)
FROM strategy_signals s
WHERE t.id = $1 AND s.id = t.signal_id

-- name: trade_artifact_hash
UPDATE trades t SET artifact_hash = a.hash
FROM strategy_artifacts a
WHERE t.id = $1 AND t.artifact_hash IS NULL AND a.id = t.artifact_id

-- name: insert_order_intent
-- order_intents: written with BEGIN_SUBMIT (before the POST), in its transaction.
INSERT INTO order_intents (instance_id, signal_id, symbol, side, quantity, order_type,
                           limit_price, stop_price, status, metadata)
SELECT (to_jsonb(s) ->> 'instance_id')::uuid, e.signal_id, e.symbol, e.action, e.quantity,
       e.order_type,
       CASE WHEN e.order_type = 'LMT' THEN e.entry_price END,
       CASE WHEN e.order_type = 'STP' THEN e.entry_price END,
       'pending',
       jsonb_build_object('source', 'trade-executor', 'executionId', e.id::text,
                          'clientOrderId', e.client_order_id, 'stopLoss', e.stop_loss,
                          'takeProfit', e.take_profit)
FROM executions e LEFT JOIN strategy_signals s ON s.id = e.signal_id
WHERE e.id = $1

-- name: delete_order_intent
-- An intent proven never sent (recovery after a crash, CONTRACT v3) is decided again: its row goes.
DELETE FROM order_intents oi WHERE oi.metadata ->> 'executionId' = $1::uuid::text

-- name: update_order_intent
-- ... and kept up to date: the broker's status (our state where the broker has none to give),
-- its order id and the fills so far, in the metadata keys the original uses.
UPDATE order_intents oi SET
    status = CASE WHEN e.state IN ('failed', 'unknown', 'rejected') OR e.broker_status IS NULL
                  THEN e.state ELSE e.broker_status END,
    metadata = oi.metadata || jsonb_strip_nulls(jsonb_build_object(
        'brokerOrderId', e.order_id::text, 'filledQty', e.filled_qty,
        'avgFillPrice', e.avg_fill_price, 'state', e.state, 'reason', e.reason)),
    updated_at = now()
FROM executions e
WHERE e.id = $1 AND oi.signal_id = e.signal_id AND oi.metadata ->> 'executionId' = $1::text

-- name: fill_before
SELECT filled_qty, avg_fill_price FROM executions WHERE id = $1 FOR UPDATE

-- name: insert_fill
-- One fills row per increase of the entry's filled quantity: the delta and its own price.
INSERT INTO fills (intent_id, trade_id, broker_order_id, symbol, side, filled_qty,
                   avg_fill_price, status, metadata)
SELECT (SELECT oi.id FROM order_intents oi
        WHERE oi.signal_id = e.signal_id AND oi.metadata ->> 'executionId' = e.id::text
        ORDER BY oi.created_at DESC LIMIT 1),
       (SELECT t.id FROM trades t WHERE t.id = e.id::text),
       e.order_id::text, e.symbol, e.action, $2::numeric, $3::numeric,
       COALESCE(e.broker_status, e.state),
       jsonb_build_object('source', 'trade-executor', 'executionId', e.id::text,
                          'cumulativeQty', e.filled_qty, 'cumulativeAvgPrice', e.avg_fill_price)
FROM executions e WHERE e.id = $1

-- name: insert_audit
INSERT INTO audit_events (id, correlation_id, category, action, outcome, message, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
