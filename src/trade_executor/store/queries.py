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

# The claim, in one statement: re-read the approval and its signal and insert the execution
# (received) with its first event. The unique signal_id makes a second claim insert nothing.
CLAIM = """
WITH approval AS (
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
    WHERE a.approved
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
       c.created_at AS e_created_at, c.updated_at AS e_updated_at
FROM approval a LEFT JOIN signal s ON true LEFT JOIN claimed c ON true
"""

EXECUTION_BY_ID = "SELECT * FROM executions WHERE id = $1"
EXECUTION_BY_SIGNAL = "SELECT * FROM executions WHERE signal_id = $1"
EXECUTIONS_IN_STATES = "SELECT * FROM executions WHERE state = ANY($1::text[]) ORDER BY created_at"
EXECUTIONS_ON_DAY = "SELECT * FROM executions WHERE trading_day = $1 ORDER BY created_at"
# Operators name an execution by a prefix of its id or of its signal's id ($1: lower-case hex
# and dashes only, so it holds no LIKE wildcard).
EXECUTIONS_BY_PREFIX = """
SELECT * FROM executions
WHERE id::text LIKE $1 || '%' OR signal_id::text LIKE $1 || '%'
ORDER BY created_at LIMIT $2
"""

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


def _apply_text() -> str:
    """One statement moves an execution, appends its event and (for a poller's news) updates
    its trade row: one round trip, atomic. Its SET list is generated from `Changes`, so a new
    field reaches the database without an edit here. NULL keeps a field; a NULL :target keeps
    the state. The guard `state = ANY(:sources)` is re-checked under the row lock, so a
    conflicting concurrent update makes this change nothing and return no row. In SET, `state`
    still means the old value."""
    sets = ",\n        ".join(f"{name} = COALESCE(:{name}, {name})" for name in CHANGE_FIELDS)
    return f"""
WITH updated AS (
    UPDATE executions SET
        state = COALESCE(:target, state),
        {sets},
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
                    ELSE jsonb_set(trades.risk, '{{status}}', to_jsonb(:broker_status::text)) END,
        updated_at = now()
    FROM updated
    WHERE trades.id = updated.id::text AND updated.order_id IS NOT NULL
      AND (:filled_qty::int IS NOT NULL OR :broker_status::text IS NOT NULL)
)
SELECT * FROM updated
"""


APPLY = NamedQuery.parse(_apply_text())

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

# The control channel's payload names the execution an operator changed.
ANNOUNCE_CHANGE = """
SELECT pg_notify('trade_executor_control', json_build_object('execution_id', $1::text)::text)
"""
