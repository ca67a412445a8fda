"""SQL of the store, as named constants. Every value is a bind parameter; every price is cast
through `numeric` so that a legacy `DOUBLE PRECISION` column still receives an exact Decimal."""

from trade_executor.domain.execution import CHANGE_FIELDS
from trade_executor.store.named import NamedQuery

READ_APPROVAL = """
SELECT a.id, a.signal_id, a.approved, a.approved_at, a.approved_by, a.created_at, a.order_id
FROM trade_approvals a WHERE a.id = $1
"""

READ_SIGNAL = """
SELECT id, symbol, strategy_id, signal_type, confidence::numeric AS confidence,
       entry_price::numeric AS entry_price, stop_loss::numeric AS stop_loss,
       take_profit::numeric AS take_profit, reasoning, generated_at, expires_at, status, created_at
FROM strategy_signals WHERE id = $1
"""

# Fencing (CONTRACT section 5): true while `executor_control.leader_epoch` is still the epoch this
# instance took over with. FOR SHARE makes it exact under concurrency: a takeover's epoch UPDATE
# waits until every claim or intent that passed the check has committed (so the new leader's
# recovery sees them), and a check that meets the takeover in flight waits for it and re-reads
# the new epoch (and fails). Used inside the same statement as the write it guards.
FENCE_HOLDS = (
    "EXISTS (SELECT 1 FROM executor_control WHERE id = 1 AND leader_epoch = {epoch} FOR SHARE)"
)

# The claim, in one statement: re-read the approval and its signal and insert the execution
# (received) with its first event. The unique signal_id makes a second claim insert nothing.
# $4: the claimer's leadership epoch (NULL: unfenced, e.g. a test of the store alone); a fenced
# claim inserts nothing and answers fence_ok = false.
CLAIM = """
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
    SELECT $2, s.id, a.id, 'received', $3, left(upper(btrim(s.symbol, E' \\t\\n\\r\\f\\v')), 64),
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
"""

EXECUTION_BY_ID = "SELECT * FROM executions WHERE id = $1"
EXECUTION_BY_SIGNAL = "SELECT * FROM executions WHERE signal_id = $1"
EXECUTIONS_IN_STATES = "SELECT * FROM executions WHERE state = ANY($1::text[]) ORDER BY created_at"
EXECUTIONS_ON_DAY = "SELECT * FROM executions WHERE trading_day = $1 ORDER BY created_at"
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

# The first approval of each signal (DISTINCT ON), then the oldest of those first.
PENDING_APPROVALS = """
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
"""


def _apply_text(*, fenced: bool = False) -> str:
    """One statement moves an execution, appends its event and (for a poller's news) updates
    its trade row: one round trip, atomic. Its SET list is generated from `Changes`, so a new
    field reaches the database without an edit here. NULL keeps a field; a NULL :target keeps
    the state. The guard `state = ANY(:sources)` is re-checked under the row lock, so a
    conflicting concurrent update makes this change nothing and return no row. In SET, `state`
    still means the old value. `fenced`: the update also requires the leadership epoch
    `:fence_epoch` (FENCE_HOLDS), for the intent write."""
    sets = ",\n        ".join(f"{name} = COALESCE(:{name}, {name})" for name in CHANGE_FIELDS)
    fence = f"\n      AND {FENCE_HOLDS.format(epoch=':fence_epoch')}" if fenced else ""
    return f"""
WITH updated AS (
    UPDATE executions SET
        state = COALESCE(:target, state),
        {sets},
        updated_at = now(),
        finished_at = CASE WHEN COALESCE(:target, state) = ANY(:final_states::text[])
                           THEN COALESCE(finished_at, now()) ELSE finished_at END
    WHERE id = :execution_id AND state = ANY(:sources::text[]){fence}
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
                    ELSE jsonb_set(trades.risk, '{{status}}', to_jsonb(:broker_status::text)) END,
        updated_at = now()
    FROM updated
    WHERE trades.id = updated.id::text AND updated.order_id IS NOT NULL
      AND (:filled_qty::int IS NOT NULL OR :broker_status::text IS NOT NULL)
)
SELECT * FROM updated
"""


APPLY = NamedQuery.parse(_apply_text())
# The intent write (Transition.BEGIN_SUBMIT) of a fenced store: a deposed leader's changes nothing.
APPLY_FENCED = NamedQuery.parse(_apply_text(fenced=True))

READ_LEADER_EPOCH = "SELECT leader_epoch FROM executor_control WHERE id = 1"

# The state of an execution, to tell a refused transition from a missing execution.
EXECUTION_STATE = "SELECT state FROM executions WHERE id = $1"

INSERT_EVENT = """
INSERT INTO execution_events (execution_id, kind, detail) VALUES ($1, $2, $3::jsonb)
"""

UPSERT_TRADE = """
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
"""

LINK_APPROVALS = """
UPDATE trade_approvals SET order_id = $2 WHERE signal_id = $1 AND approved
"""

APPROVAL_FOR_SIGNAL = """
SELECT id FROM trade_approvals WHERE signal_id = $1 AND approved
ORDER BY approved_at NULLS LAST, created_at LIMIT 1
"""

INSERT_APPROVAL = """
INSERT INTO trade_approvals (signal_id, approved, approved_at, approved_by)
VALUES ($1, true, now(), $2) RETURNING id
"""

SIGNAL_LOCK = "SELECT 1 FROM strategy_signals WHERE id = $1 FOR UPDATE"

TRADE_FOR_SIGNAL = """
SELECT t.id AS trade_id, t.signal_id, e.order_id, t.symbol, t.direction, e.quantity,
       t.entry::numeric AS entry_price, t.stop::numeric AS stop_loss,
       e.take_profit, s.strategy_id, e.state AS status, e.broker_status,
       e.filled_qty, e.avg_fill_price, e.risk_amount, e.risk_percent, e.position_value,
       e.submitted_at, e.reason
FROM trades t JOIN executions e ON e.id::text = t.id
LEFT JOIN strategy_signals s ON s.id = t.signal_id
WHERE t.signal_id = $1
"""

READ_CONTROL = "SELECT halted, reason, changed_at, changed_by FROM executor_control WHERE id = 1"

SET_CONTROL = """
INSERT INTO executor_control (id, halted, reason, changed_at, changed_by)
VALUES (1, $1, $2, now(), $3)
ON CONFLICT (id) DO UPDATE SET halted = $1, reason = $2, changed_at = now(), changed_by = $3
"""

# `close` from another shell: the running service's exits carry it out (actors/exits).
ANNOUNCE_CLOSE = "SELECT pg_notify('trade_executor_control', $1::text)"

# The control channel's payload names the execution an operator changed.
ANNOUNCE_CHANGE = """
SELECT pg_notify('trade_executor_control', json_build_object('execution_id', $1::text)::text)
"""


# -- drop-in on jax-trading-assistant (CONTRACT sections 4 and 5) ---------------------------------
# Columns the original added to its own tables in later migrations (strategy_signals.instance_id
# and artifact_id) are read through `to_jsonb(row) ->> 'name'`, which is NULL where a column does
# not exist: one statement serves our own schema and both of the original's.

# The claim of a status approval: the signal must still be `approved` and recorded in
# signal_status_approvals. Same shape of answer as CLAIM (a_* from the status record), fenced
# the same way by $4.
CLAIM_STATUS = """
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
"""

READ_STATUS_APPROVAL = """
SELECT r.signal_id, r.approved_at FROM signal_status_approvals r WHERE r.signal_id = $1
"""

# Status approvals whose signal is still approved and has no execution, oldest first.
PENDING_STATUS_APPROVALS = """
SELECT r.signal_id
FROM signal_status_approvals r
JOIN strategy_signals s ON s.id = r.signal_id
WHERE s.status = 'approved'
  AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.signal_id = r.signal_id)
ORDER BY r.approved_at
LIMIT $1
"""

# Which of the original's HEAD tables exist (in the search path, as every other query sees it).
ORIGINAL_TABLES = """
SELECT to_regclass('strategy_instances') IS NOT NULL AS strategy_instances,
       to_regclass('artifact_approvals') IS NOT NULL AS artifact_approvals,
       to_regclass('strategy_artifacts') IS NOT NULL AS strategy_artifacts,
       to_regclass('order_intents') IS NOT NULL AS order_intents,
       to_regclass('fills') IS NOT NULL AS fills,
       to_regclass('audit_events') IS NOT NULL AS audit_events
"""

# Evidence of an order the original placed for a signal. "Not ours": a trade row whose id is no
# execution of ours, an approval order id that is not our execution's order id.
_ORIGINAL_ORDER_BASE = """
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
"""
ORIGINAL_ORDER = _ORIGINAL_ORDER_BASE + "LIMIT 1"
ORIGINAL_ORDER_WITH_INTENTS = (
    _ORIGINAL_ORDER_BASE
    + """UNION ALL
SELECT 'order_intents row ' || oi.id::text || ' (broker order ' || (oi.metadata ->> 'brokerOrderId')
       || ')'
FROM order_intents oi
WHERE oi.signal_id = $1
  AND COALESCE(oi.metadata ->> 'brokerOrderId', '') <> ''
  AND oi.metadata ->> 'executionId' IS NULL
LIMIT 1
"""
)

# The original's trades since a moment (the start of our trading day): its daily-risk query sums
# `risk->>'amount'` the same way.
ORIGINAL_TRADES_SINCE = """
SELECT t.id, t.symbol, COALESCE((t.risk ->> 'amount')::numeric, 0) AS risk_amount,
       t.order_status, t.created_at
FROM trades t
WHERE t.created_at >= $1
  -- by signal_id first: its unique index makes this one probe per trade
  AND NOT EXISTS (SELECT 1 FROM executions e
                  WHERE e.signal_id = t.signal_id AND e.id::text = t.id)
ORDER BY t.created_at
"""

SIGNAL_PROVENANCE = """
SELECT (to_jsonb(s) ->> 'instance_id')::uuid AS instance_id,
       (to_jsonb(s) ->> 'artifact_id')::uuid AS artifact_id
FROM strategy_signals s WHERE s.id = $1
"""

READ_INSTANCE = """
SELECT id, enabled, session_timezone, flatten_by_close_time, config::text AS config
FROM strategy_instances WHERE id = $1
"""

# Today's trades of one instance: its `trades` rows (the original's and ours), and our executions
# that have none (a dry run, an order being sent, an answer lost). `open`: its symbol is held.
INSTANCE_USAGE = """
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
"""

# The original's gate (its GetSignal): an artifact_approvals row in APPROVED or ACTIVE.
ARTIFACT_STATE = """
SELECT state::text AS state FROM artifact_approvals WHERE artifact_id = $1
ORDER BY (state::text IN ('APPROVED', 'ACTIVE')) DESC LIMIT 1
"""

# Provenance copied from the signal onto our trade row, as the original's StoreTrade does.
TRADE_PROVENANCE = """
UPDATE trades t SET
    instance_id = COALESCE(t.instance_id, (to_jsonb(s) ->> 'instance_id')::uuid),
    artifact_id = COALESCE(t.artifact_id, (to_jsonb(s) ->> 'artifact_id')::uuid)
FROM strategy_signals s
WHERE t.id = $1 AND s.id = t.signal_id
"""
TRADE_ARTIFACT_HASH = """
UPDATE trades t SET artifact_hash = a.hash
FROM strategy_artifacts a
WHERE t.id = $1 AND t.artifact_hash IS NULL AND a.id = t.artifact_id
"""

# order_intents: written with BEGIN_SUBMIT (before the POST), in its transaction.
INSERT_ORDER_INTENT = """
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
"""

# ... and kept up to date: the broker's status (our state where the broker has none to give),
# its order id and the fills so far, in the metadata keys the original uses.
UPDATE_ORDER_INTENT = """
UPDATE order_intents oi SET
    status = CASE WHEN e.state IN ('failed', 'unknown', 'rejected') OR e.broker_status IS NULL
                  THEN e.state ELSE e.broker_status END,
    metadata = oi.metadata || jsonb_strip_nulls(jsonb_build_object(
        'brokerOrderId', e.order_id::text, 'filledQty', e.filled_qty,
        'avgFillPrice', e.avg_fill_price, 'state', e.state, 'reason', e.reason)),
    updated_at = now()
FROM executions e
WHERE e.id = $1 AND oi.signal_id = e.signal_id AND oi.metadata ->> 'executionId' = $1::text
"""

FILL_BEFORE = "SELECT filled_qty, avg_fill_price FROM executions WHERE id = $1 FOR UPDATE"

# One fills row per increase of the entry's filled quantity: the delta and its own price.
INSERT_FILL = """
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
"""

INSERT_AUDIT = """
INSERT INTO audit_events (id, correlation_id, category, action, outcome, message, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
"""

# An id or an id prefix (`ops.ids`) is a range of uuids: two index range scans (BitmapOr).
FIND_EXECUTIONS = """
SELECT * FROM executions
WHERE id BETWEEN $1 AND $2 OR signal_id BETWEEN $1 AND $2
ORDER BY created_at LIMIT $3
"""

EXECUTION_EVENTS = """
SELECT id, execution_id, at, kind, detail FROM execution_events WHERE execution_id = $1 ORDER BY id
"""

# The running service's answer to a change of the kill switch (`halt`/`resume` wait for it).
ACKNOWLEDGE_CONTROL = """
SELECT pg_notify('trade_executor_control_ack',
                 json_build_object('changed_at', $1::timestamptz, 'halted', $2::boolean,
                                   'instance', $3::text)::text)
"""

# ---- reconciliation with the broker (actors/reconciler.py) ----------------------------------

# What the reconciler compares with the broker: executions in flight (their order may fill at
# any moment), executions holding shares whose position is not known closed, and cancelled ones
# whose order the broker still lists (IB can report Cancelled for an order that filled).
EXECUTIONS_FOR_RECONCILE = """
SELECT * FROM executions
WHERE state IN ('submitting', 'submitted', 'partially_filled', 'unknown')
   OR (state IN ('filled', 'cancelled') AND filled_qty > 0
       AND coalesce(position_state, '') <> 'closed')
   OR (state = 'cancelled' AND order_id = ANY($1::bigint[]))
ORDER BY created_at
"""

OPEN_BREAKS = """
SELECT kind, symbol, execution_id, order_id, detail, first_seen, last_seen, cleared_at
FROM trade_executor_reconcile_breaks WHERE cleared_at IS NULL ORDER BY first_seen, id
"""
# A break seen again: refresh it (the execution_id comparison must treat NULL as equal).
TOUCH_BREAK = """
UPDATE trade_executor_reconcile_breaks
SET last_seen = $4, order_id = $5, detail = $6::jsonb
WHERE cleared_at IS NULL AND kind = $1 AND symbol = $2 AND execution_id IS NOT DISTINCT FROM $3
"""
INSERT_BREAK = """
INSERT INTO trade_executor_reconcile_breaks
    (kind, symbol, execution_id, order_id, detail, first_seen, last_seen)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $6)
"""
CLEAR_BREAK = """
UPDATE trade_executor_reconcile_breaks SET cleared_at = $4
WHERE cleared_at IS NULL AND kind = $1 AND symbol = $2 AND execution_id IS NOT DISTINCT FROM $3
"""
LOCK_BREAKS = "LOCK TABLE trade_executor_reconcile_breaks IN SHARE ROW EXCLUSIVE MODE"
