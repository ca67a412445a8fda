-- 0003: what version 2 of the contract needs, added to any of the three databases we meet: our
-- own (0001), one built by jax-trading-assistant's golang-migrate (its 13 migrations), one built by
-- its docker-compose init scripts (its migrations 1 to 7, see tests/fixtures/jax_compose_init.sql).
--
-- Rules for the original's tables (strategy_signals, trades): only ADD COLUMN IF NOT EXISTS of
-- nullable columns without foreign keys, and one trigger; nothing dropped, retyped or
-- constrained. Our own tables (executions, executor_control) may be widened.
-- Every statement is safe to run again (the file is re-run by hand in a test).

-- ---------------------------------------------------------------------------------------------
-- executions: quantities in bigint; where an approval came from; the position after the entry.

-- int -> bigint is a widening (every value fits). Guarded: re-running it would rewrite the table.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'executions'
          AND column_name = 'quantity' AND data_type = 'integer'
    ) THEN
        ALTER TABLE executions ALTER COLUMN quantity TYPE bigint;
    END IF;
END
$$;

-- A status approval (the original's UI sets strategy_signals.status) has no trade_approvals row.
ALTER TABLE executions ALTER COLUMN approval_id DROP NOT NULL;
ALTER TABLE executions
    ADD COLUMN IF NOT EXISTS approval_source text NOT NULL DEFAULT 'trade_approvals'
        CONSTRAINT executions_approval_source_check
        CHECK (approval_source IN ('trade_approvals', 'signal_status'));

-- The position an entry opened (CONTRACT section 4). NULL until the entry fills.
ALTER TABLE executions
    ADD COLUMN IF NOT EXISTS position_state text
        CONSTRAINT executions_position_state_check
        CHECK (position_state IN ('open', 'closed', 'unprotected')),
    ADD COLUMN IF NOT EXISTS exit_reason text
        CONSTRAINT executions_exit_reason_check
        CHECK (exit_reason IN ('stop_loss', 'take_profit', 'close', 'flatten', 'external')),
    ADD COLUMN IF NOT EXISTS exit_qty bigint,
    ADD COLUMN IF NOT EXISTS exit_avg_price numeric,
    ADD COLUMN IF NOT EXISTS realized_pnl numeric,
    ADD COLUMN IF NOT EXISTS r_multiple numeric,
    ADD COLUMN IF NOT EXISTS closed_at timestamptz;
-- Exits, reconciliation and `close` look at open positions only.
CREATE INDEX IF NOT EXISTS executions_open_position_idx ON executions (symbol)
    WHERE position_state IN ('open', 'unprotected');

-- ---------------------------------------------------------------------------------------------
-- executor_control: the leader (identity, fencing epoch, heartbeat) and the limits it runs with,
-- so that `status` in another shell reports what the running service sees.
ALTER TABLE executor_control
    ADD COLUMN IF NOT EXISTS leader_id            text,         -- e.g. "host:pid"
    ADD COLUMN IF NOT EXISTS leader_epoch         bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS leader_since         timestamptz,
    ADD COLUMN IF NOT EXISTS leader_heartbeat_at  timestamptz,
    ADD COLUMN IF NOT EXISTS limits               jsonb;

-- 0002's trigger fired on every update of the row; a heartbeat every few seconds would then
-- flood `trade_executor_control`. Only the kill switch's own columns announce a change.
DROP TRIGGER IF EXISTS executor_control_notify ON executor_control;
CREATE TRIGGER executor_control_notify
    AFTER UPDATE OF halted, reason, changed_at, changed_by ON executor_control
    FOR EACH ROW
    EXECUTE FUNCTION executor_control_notify();

-- ---------------------------------------------------------------------------------------------
-- trades: the original's provenance columns, copied from the signal (CONTRACT section 4). They
-- exist on the original's databases (artifact_* from its migration 6, instance_id from 8); added
-- here only where missing, without the original's foreign keys (their targets may not exist).
ALTER TABLE trades
    ADD COLUMN IF NOT EXISTS instance_id    uuid,
    ADD COLUMN IF NOT EXISTS artifact_id    uuid,
    ADD COLUMN IF NOT EXISTS artifact_hash  varchar(64);

-- ---------------------------------------------------------------------------------------------
-- Status approvals: the original's UI approves with
--     UPDATE strategy_signals SET status = 'approved' WHERE id = $1 AND status = 'pending' ...
-- and writes no trade_approvals row. The trigger below records each such change durably (the
-- catch-up sweep reads this table: a notification is only a hint) and announces it.
-- Exactly once per signal: the primary key keeps the first record, and only a new record
-- notifies. Signals already approved when this is installed get no row: they are history.
CREATE TABLE IF NOT EXISTS signal_status_approvals (
    signal_id    uuid PRIMARY KEY,
    approved_at  timestamptz NOT NULL DEFAULT now(),
    seen_at      timestamptz  -- set by the executor once it has taken the approval up
);
CREATE INDEX IF NOT EXISTS signal_status_approvals_unseen_idx
    ON signal_status_approvals (approved_at) WHERE seen_at IS NULL;

CREATE OR REPLACE FUNCTION strategy_signals_status_approved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO signal_status_approvals (signal_id) VALUES (NEW.id)
    ON CONFLICT (signal_id) DO NOTHING;
    IF FOUND THEN
        -- Same channel as trade_approvals; `source` tells the two payload shapes apart
        -- (trade_approvals' own stays {"approval_id", "signal_id"}).
        PERFORM pg_notify(
            'trade_approvals',
            json_build_object('signal_id', NEW.id, 'source', 'signal_status')::text
        );
    END IF;
    RETURN NULL;
END
$$;

-- SECURITY DEFINER: the UPDATE comes from the original's service, whose database role may have
-- no right on our table; its approve button must not start failing because of us. A definer
-- function needs a fixed search_path: this schema (where the table is) and nothing else.
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION strategy_signals_status_approved() SECURITY DEFINER'
        ' SET search_path = %I, pg_temp',
        current_schema()
    );
END
$$;

-- Only an UPDATE that makes the status 'approved': an INSERT of an already approved signal (an
-- import, a restore) is not a fresh decision, and approved -> approved is not a new one.
DROP TRIGGER IF EXISTS strategy_signals_status_approved ON strategy_signals;
CREATE TRIGGER strategy_signals_status_approved
    AFTER UPDATE OF status ON strategy_signals
    FOR EACH ROW
    WHEN (NEW.status = 'approved' AND OLD.status IS DISTINCT FROM 'approved')
    EXECUTE FUNCTION strategy_signals_status_approved();
