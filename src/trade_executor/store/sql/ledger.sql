-- SQL of our own ledger: the executions, their events and trade rows, the approvals we add.

-- name: read_approval
SELECT a.id, a.signal_id, a.approved, a.approved_at, a.approved_by, a.created_at, a.order_id
FROM trade_approvals a WHERE a.id = $1

-- name: read_signal
SELECT id, symbol, strategy_id, signal_type, confidence::numeric AS confidence,
       entry_price::numeric AS entry_price, stop_loss::numeric AS stop_loss,
       take_profit::numeric AS take_profit, reasoning, generated_at, expires_at, status, created_at
FROM strategy_signals WHERE id = $1

-- name: execution_by_id
SELECT * FROM executions WHERE id = $1

-- name: execution_by_signal
SELECT * FROM executions WHERE signal_id = $1

-- name: executions_in_states
SELECT * FROM executions WHERE state = ANY($1::text[]) ORDER BY created_at

-- name: execution_ids_in_states
-- The ids of `executions_in_states`, in the same order: what a periodic sweep needs.
SELECT id FROM executions WHERE state = ANY($1::text[]) ORDER BY created_at

-- name: ledger_gauges
-- The state gauges in one aggregate over today's executions and every one not yet final
-- (`Store.ledger_gauges`): `domain.attention.needs_operator` and `domain.ledger.todays_risk`,
-- written in SQL. $1 today, $2 now, $3 the recovery prefix of a `failed` reason, $4/$5/$6 the
-- bounds of received/submitting/working ($6 NULL: working orders have none), $7 the states not
-- final, $8 the states whose risk counts on the budget.
SELECT
  count(*) FILTER (WHERE
       state = 'unknown'
    OR (state = 'failed' AND trading_day = $1 AND left(reason, length($3)) = $3)
    OR (state = 'received' AND $2 - created_at > $4)
    OR (state = 'submitting' AND $2 - coalesce(attempted_at, updated_at) > $5)
    OR (state IN ('submitted', 'partially_filled') AND $6::interval IS NOT NULL
        AND $2 - coalesce(submitted_at, updated_at) > $6::interval)
  ) AS needing_operator,
  coalesce(sum(risk_amount) FILTER (WHERE coalesce(trading_day, $1) = $1
    AND (state = ANY($8::text[]) OR (state = 'cancelled' AND filled_qty > 0))), 0)
    AS daily_risk_used
FROM executions
WHERE state = ANY($7::text[]) OR trading_day = $1

-- name: executions_on_day
SELECT * FROM executions WHERE trading_day = $1 ORDER BY created_at

-- name: apply
-- One statement moves an execution, appends its event and (for a poller's news) updates its
-- trade row: one round trip, atomic. Its SET list names every field of `Changes`
-- (CHANGE_FIELDS; tests/unit/store/test_sql_files.py checks both apply queries against it).
-- NULL keeps a field; a NULL target keeps the state. The guard on the source states is
-- re-checked under the row lock, so a conflicting concurrent update makes this change nothing
-- and return no row. In SET, `state` still means the old value.
WITH updated AS (
    UPDATE executions SET
        state = COALESCE(:target, state),
        reason = COALESCE(:reason, reason),
        action = COALESCE(:action, action),
        order_type = COALESCE(:order_type, order_type),
        order_id = COALESCE(:order_id, order_id),
        child_order_ids = COALESCE(:child_order_ids, child_order_ids),
        quantity = COALESCE(:quantity, quantity),
        entry_price = COALESCE(:entry_price, entry_price),
        stop_loss = COALESCE(:stop_loss, stop_loss),
        take_profit = COALESCE(:take_profit, take_profit),
        risk_amount = COALESCE(:risk_amount, risk_amount),
        risk_percent = COALESCE(:risk_percent, risk_percent),
        position_value = COALESCE(:position_value, position_value),
        filled_qty = COALESCE(:filled_qty, filled_qty),
        avg_fill_price = COALESCE(:avg_fill_price, avg_fill_price),
        broker_status = COALESCE(:broker_status, broker_status),
        trading_day = COALESCE(:trading_day, trading_day),
        attempted_at = COALESCE(:attempted_at, attempted_at),
        submitted_at = COALESCE(:submitted_at, submitted_at),
        position_state = COALESCE(:position_state, position_state),
        exit_reason = COALESCE(:exit_reason, exit_reason),
        exit_qty = COALESCE(:exit_qty, exit_qty),
        exit_avg_price = COALESCE(:exit_avg_price, exit_avg_price),
        realized_pnl = COALESCE(:realized_pnl, realized_pnl),
        r_multiple = COALESCE(:r_multiple, r_multiple),
        closed_at = COALESCE(:closed_at, closed_at),
        exit_order_id = COALESCE(:exit_order_id, exit_order_id),
        exit_attempted_at = COALESCE(:exit_attempted_at, exit_attempted_at),
        reprotected_at = COALESCE(:reprotected_at, reprotected_at),
        updated_at = now(),
        finished_at = CASE WHEN COALESCE(:target, state) = ANY(:final_states::text[])
                           THEN COALESCE(finished_at, now()) ELSE finished_at END
    WHERE id = :execution_id AND state = ANY(:sources::text[])
    RETURNING *
), event AS (
    INSERT INTO execution_events (execution_id, kind, detail)
    SELECT id, :event, jsonb_build_object('state', state) || :detail::jsonb FROM updated
), trade AS (
    UPDATE trades SET
        order_status = COALESCE(:broker_status, trades.order_status),
        filled_qty = COALESCE(:filled_qty, trades.filled_qty),
        avg_fill_price = COALESCE(:avg_fill_price::numeric, trades.avg_fill_price),
        risk = CASE WHEN trades.risk IS NULL OR :broker_status IS NULL THEN trades.risk
                    ELSE jsonb_set(trades.risk, '{status}', to_jsonb(:broker_status::text)) END,
        updated_at = now()
    FROM updated
    WHERE trades.id = updated.id::text AND updated.order_id IS NOT NULL
      AND (:filled_qty::int IS NOT NULL OR :broker_status::text IS NOT NULL)
)
SELECT * FROM updated

-- name: apply_fenced
-- `apply` for the intent write (Transition.BEGIN_SUBMIT) of a fenced store: the update also
-- requires the leadership epoch this instance took over with (FOR SHARE, as the claims'
-- fence), so a deposed leader's changes nothing.
WITH updated AS (
    UPDATE executions SET
        state = COALESCE(:target, state),
        reason = COALESCE(:reason, reason),
        action = COALESCE(:action, action),
        order_type = COALESCE(:order_type, order_type),
        order_id = COALESCE(:order_id, order_id),
        child_order_ids = COALESCE(:child_order_ids, child_order_ids),
        quantity = COALESCE(:quantity, quantity),
        entry_price = COALESCE(:entry_price, entry_price),
        stop_loss = COALESCE(:stop_loss, stop_loss),
        take_profit = COALESCE(:take_profit, take_profit),
        risk_amount = COALESCE(:risk_amount, risk_amount),
        risk_percent = COALESCE(:risk_percent, risk_percent),
        position_value = COALESCE(:position_value, position_value),
        filled_qty = COALESCE(:filled_qty, filled_qty),
        avg_fill_price = COALESCE(:avg_fill_price, avg_fill_price),
        broker_status = COALESCE(:broker_status, broker_status),
        trading_day = COALESCE(:trading_day, trading_day),
        attempted_at = COALESCE(:attempted_at, attempted_at),
        submitted_at = COALESCE(:submitted_at, submitted_at),
        position_state = COALESCE(:position_state, position_state),
        exit_reason = COALESCE(:exit_reason, exit_reason),
        exit_qty = COALESCE(:exit_qty, exit_qty),
        exit_avg_price = COALESCE(:exit_avg_price, exit_avg_price),
        realized_pnl = COALESCE(:realized_pnl, realized_pnl),
        r_multiple = COALESCE(:r_multiple, r_multiple),
        closed_at = COALESCE(:closed_at, closed_at),
        exit_order_id = COALESCE(:exit_order_id, exit_order_id),
        exit_attempted_at = COALESCE(:exit_attempted_at, exit_attempted_at),
        reprotected_at = COALESCE(:reprotected_at, reprotected_at),
        updated_at = now(),
        finished_at = CASE WHEN COALESCE(:target, state) = ANY(:final_states::text[])
                           THEN COALESCE(finished_at, now()) ELSE finished_at END
    WHERE id = :execution_id AND state = ANY(:sources::text[])
      AND EXISTS (SELECT 1 FROM executor_control WHERE id = 1 AND leader_epoch = :fence_epoch FOR SHARE)
    RETURNING *
), event AS (
    INSERT INTO execution_events (execution_id, kind, detail)
    SELECT id, :event, jsonb_build_object('state', state) || :detail::jsonb FROM updated
), trade AS (
    UPDATE trades SET
        order_status = COALESCE(:broker_status, trades.order_status),
        filled_qty = COALESCE(:filled_qty, trades.filled_qty),
        avg_fill_price = COALESCE(:avg_fill_price::numeric, trades.avg_fill_price),
        risk = CASE WHEN trades.risk IS NULL OR :broker_status IS NULL THEN trades.risk
                    ELSE jsonb_set(trades.risk, '{status}', to_jsonb(:broker_status::text)) END,
        updated_at = now()
    FROM updated
    WHERE trades.id = updated.id::text AND updated.order_id IS NOT NULL
      AND (:filled_qty::int IS NOT NULL OR :broker_status::text IS NOT NULL)
)
SELECT * FROM updated

-- name: read_leader_epoch
SELECT leader_epoch FROM executor_control WHERE id = 1

-- name: execution_state
-- The state of an execution, to tell a refused transition from a missing execution.
SELECT state FROM executions WHERE id = $1

-- name: insert_event
INSERT INTO execution_events (execution_id, kind, detail) VALUES ($1, $2, $3::jsonb)

-- name: upsert_trade
INSERT INTO trades (id, signal_id, symbol, direction, entry, stop, targets, strategy_id, notes,
                    risk, order_status, filled_qty, avg_fill_price)
VALUES ($1, $2, $3, $4, $5::numeric, $6::numeric, jsonb_build_array($7::numeric), $8, $9,
        jsonb_build_object('amount', $10::numeric, 'percent', $11::numeric,
                           'position_value', $12::numeric, 'quantity', $13::int,
                           'order_id', $14::text, 'status', $15::text),
        $15, 0, NULL)
ON CONFLICT (id) DO UPDATE SET
    order_status = EXCLUDED.order_status,
    risk = EXCLUDED.risk,
    updated_at = now()

-- name: link_approvals
UPDATE trade_approvals SET order_id = $2 WHERE signal_id = $1 AND approved

-- name: approval_for_signal
SELECT id FROM trade_approvals WHERE signal_id = $1 AND approved
ORDER BY approved_at NULLS LAST, created_at LIMIT 1

-- name: insert_approval
INSERT INTO trade_approvals (signal_id, approved, approved_at, approved_by)
VALUES ($1, true, now(), $2) RETURNING id

-- name: signal_lock
SELECT 1 FROM strategy_signals WHERE id = $1 FOR UPDATE

-- name: trade_for_signal
SELECT t.id AS trade_id, t.signal_id, e.order_id, t.symbol, t.direction, e.quantity,
       t.entry::numeric AS entry_price, t.stop::numeric AS stop_loss,
       e.take_profit, s.strategy_id, e.state AS status, e.broker_status,
       e.filled_qty, e.avg_fill_price, e.risk_amount, e.risk_percent, e.position_value,
       e.submitted_at, e.reason
FROM trades t JOIN executions e ON e.id::text = t.id
LEFT JOIN strategy_signals s ON s.id = t.signal_id
WHERE t.signal_id = $1
