-- SQL of claims: a `trade_approvals` row or a status approval becomes an execution, fenced
-- by the leadership epoch; and the approvals still waiting for one.

-- name: claim
-- The claim, in one statement: re-read the approval and its signal and insert the execution
-- (received) with its first event. The unique signal_id makes a second claim insert nothing.
-- $4: the claimer's leadership epoch (NULL: unfenced, e.g. a test of the store alone); a fenced
-- claim inserts nothing and answers fence_ok = false.
WITH fence AS (
    SELECT $4::bigint IS NULL
           OR EXISTS (SELECT 1 FROM executor_control WHERE id = 1 AND leader_epoch = $4 FOR SHARE)
           AS ok
), approval AS (
    SELECT id, signal_id, approved, approved_at, approved_by, created_at, order_id
    FROM trade_approvals WHERE id = $1
), signal AS (
    SELECT s.id, s.symbol, s.strategy_id, s.signal_type, s.confidence::numeric AS confidence,
           s.entry_price::numeric AS entry_price, s.stop_loss::numeric AS stop_loss,
           s.take_profit::numeric AS take_profit, s.reasoning, s.generated_at, s.expires_at,
           s.status, s.created_at
    FROM strategy_signals s JOIN approval a ON s.id = a.signal_id
), claimed AS (
    INSERT INTO executions (id, signal_id, approval_id, state, client_order_id, symbol, action)
    SELECT $2, s.id, a.id, 'received', $3, left(upper(btrim(s.symbol, E' \t\n\r\f\v')), 64),
           CASE WHEN s.signal_type IN ('BUY', 'SELL') THEN s.signal_type END
    FROM approval a JOIN signal s ON s.id = a.signal_id
    WHERE a.approved AND (SELECT ok FROM fence)
    ON CONFLICT (signal_id) DO NOTHING
    RETURNING *
), event AS (
    INSERT INTO execution_events (execution_id, kind, detail)
    SELECT c.id, 'execution.claimed',
           jsonb_build_object('approval_id', a.id, 'approved_by', a.approved_by)
    FROM claimed c, approval a
)
SELECT a.id AS a_id, a.signal_id AS a_signal_id, a.approved AS a_approved,
       a.approved_at AS a_approved_at, a.approved_by AS a_approved_by,
       a.created_at AS a_created_at, a.order_id AS a_order_id,
       s.id AS s_id, s.symbol AS s_symbol, s.strategy_id AS s_strategy_id,
       s.signal_type AS s_signal_type, s.confidence AS s_confidence,
       s.entry_price AS s_entry_price, s.stop_loss AS s_stop_loss,
       s.take_profit AS s_take_profit, s.reasoning AS s_reasoning,
       s.generated_at AS s_generated_at, s.expires_at AS s_expires_at, s.status AS s_status,
       s.created_at AS s_created_at,
       c.id AS e_id, c.symbol AS e_symbol, c.action AS e_action,
       c.created_at AS e_created_at, c.updated_at AS e_updated_at,
       (SELECT ok FROM fence) AS fence_ok
FROM approval a LEFT JOIN signal s ON true LEFT JOIN claimed c ON true

-- name: pending_approvals
-- The first approval of each signal (DISTINCT ON), then the oldest of those first.
SELECT approval_id, signal_id FROM (
    SELECT DISTINCT ON (a.signal_id) a.id AS approval_id, a.signal_id, a.approved_at,
           a.created_at
    FROM trade_approvals a
    JOIN strategy_signals s ON s.id = a.signal_id  -- an orphan approval has nothing to execute
    WHERE a.approved
      AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.signal_id = a.signal_id)
    ORDER BY a.signal_id, a.approved_at NULLS LAST, a.created_at
) AS first_approvals
ORDER BY approved_at NULLS LAST, created_at
LIMIT $1

-- name: claim_status
-- The claim of a status approval: the signal must still be `approved` and recorded in
-- signal_status_approvals. Same shape of answer as CLAIM (a_* from the status record), fenced
-- the same way by $4.
WITH fence AS (
    SELECT $4::bigint IS NULL
           OR EXISTS (SELECT 1 FROM executor_control WHERE id = 1 AND leader_epoch = $4 FOR SHARE)
           AS ok
), approval AS (
    SELECT r.signal_id, r.approved_at, r.seen_at
    FROM signal_status_approvals r WHERE r.signal_id = $1
), signal AS (
    SELECT s.id, s.symbol, s.strategy_id, s.signal_type, s.confidence::numeric AS confidence,
           s.entry_price::numeric AS entry_price, s.stop_loss::numeric AS stop_loss,
           s.take_profit::numeric AS take_profit, s.reasoning, s.generated_at, s.expires_at,
           s.status, s.created_at
    FROM strategy_signals s JOIN approval a ON s.id = a.signal_id
), claimed AS (
    INSERT INTO executions (id, signal_id, approval_id, approval_source, state, client_order_id,
                            symbol, action)
    SELECT $2, s.id, NULL, 'signal_status', 'received', $3, left(s.symbol, 64),
           CASE WHEN s.signal_type IN ('BUY', 'SELL') THEN s.signal_type END
    FROM signal s
    WHERE s.status = 'approved' AND (SELECT ok FROM fence)
    ON CONFLICT (signal_id) DO NOTHING
    RETURNING *
), seen AS (
    UPDATE signal_status_approvals r SET seen_at = now()
    FROM claimed c WHERE r.signal_id = c.signal_id
), event AS (
    INSERT INTO execution_events (execution_id, kind, detail)
    SELECT c.id, 'execution.claimed',
           jsonb_build_object('approval_source', 'signal_status', 'approved_at', a.approved_at)
    FROM claimed c, approval a
)
SELECT a.signal_id AS a_signal_id, a.approved_at AS a_approved_at,
       s.id AS s_id, s.symbol AS s_symbol, s.strategy_id AS s_strategy_id,
       s.signal_type AS s_signal_type, s.confidence AS s_confidence,
       s.entry_price AS s_entry_price, s.stop_loss AS s_stop_loss,
       s.take_profit AS s_take_profit, s.reasoning AS s_reasoning,
       s.generated_at AS s_generated_at, s.expires_at AS s_expires_at, s.status AS s_status,
       s.created_at AS s_created_at,
       c.id AS e_id, c.symbol AS e_symbol, c.action AS e_action,
       c.created_at AS e_created_at, c.updated_at AS e_updated_at,
       (SELECT ok FROM fence) AS fence_ok
FROM approval a LEFT JOIN signal s ON true LEFT JOIN claimed c ON true

-- name: read_status_approval
SELECT r.signal_id, r.approved_at FROM signal_status_approvals r WHERE r.signal_id = $1

-- name: pending_status_approvals
-- Status approvals whose signal is still approved and has no execution, oldest first.
SELECT r.signal_id
FROM signal_status_approvals r
JOIN strategy_signals s ON s.id = r.signal_id
WHERE s.status = 'approved'
  AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.signal_id = r.signal_id)
ORDER BY r.approved_at
LIMIT $1
