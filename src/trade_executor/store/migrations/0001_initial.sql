-- 0001: the tables of CONTRACT section 4.
--
-- Safe on an existing jax-trading-assistant database: strategy_signals, trade_approvals and
-- trades may already exist there with fewer columns and DOUBLE PRECISION prices. So every table is
-- CREATE ... IF NOT EXISTS followed by ADD COLUMN IF NOT EXISTS for each column: an existing
-- column is never dropped nor retyped (the store casts prices through numeric when it reads them).
-- Constraints and foreign keys appear only in CREATE TABLE, so a legacy table keeps its own.

-- gen_random_uuid() is built in from PostgreSQL 13; older servers need pgcrypto.
DO $$
BEGIN
    IF current_setting('server_version_num')::int < 130000 THEN
        CREATE EXTENSION IF NOT EXISTS pgcrypto;
    END IF;
END
$$;

-- Signals written by the strategy service. No CHECK on signal_type or prices: a bad signal must
-- be storable so that the executor can reject it with a reason.
CREATE TABLE IF NOT EXISTS strategy_signals (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    symbol        text,
    strategy_id   text,
    signal_type   text,
    confidence    numeric,
    entry_price   numeric,
    stop_loss     numeric,
    take_profit   numeric,
    reasoning     text,
    generated_at  timestamptz DEFAULT now(),
    expires_at    timestamptz,
    status        text DEFAULT 'pending',
    created_at    timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE strategy_signals
    ADD COLUMN IF NOT EXISTS symbol        text,
    ADD COLUMN IF NOT EXISTS strategy_id   text,
    ADD COLUMN IF NOT EXISTS signal_type   text,
    ADD COLUMN IF NOT EXISTS confidence    numeric,
    ADD COLUMN IF NOT EXISTS entry_price   numeric,
    ADD COLUMN IF NOT EXISTS stop_loss     numeric,
    ADD COLUMN IF NOT EXISTS take_profit   numeric,
    ADD COLUMN IF NOT EXISTS reasoning     text,
    ADD COLUMN IF NOT EXISTS generated_at  timestamptz DEFAULT now(),
    ADD COLUMN IF NOT EXISTS expires_at    timestamptz,
    ADD COLUMN IF NOT EXISTS status        text DEFAULT 'pending',
    ADD COLUMN IF NOT EXISTS created_at    timestamptz NOT NULL DEFAULT now();

-- Approvals written by people (or the HTTP API). order_id: the broker's order id once placed.
CREATE TABLE IF NOT EXISTS trade_approvals (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    signal_id           uuid REFERENCES strategy_signals (id),
    approved            boolean NOT NULL DEFAULT false,
    approved_at         timestamptz,
    approved_by         text,
    modification_notes  text,
    order_id            varchar(64),
    created_at          timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE trade_approvals
    ADD COLUMN IF NOT EXISTS signal_id           uuid,
    ADD COLUMN IF NOT EXISTS approved            boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS approved_at         timestamptz,
    ADD COLUMN IF NOT EXISTS approved_by         text,
    ADD COLUMN IF NOT EXISTS modification_notes  text,
    ADD COLUMN IF NOT EXISTS order_id            varchar(64),
    ADD COLUMN IF NOT EXISTS created_at          timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS trade_approvals_signal_id_idx ON trade_approvals (signal_id);
-- The catch-up sweep looks for approved rows only.
CREATE INDEX IF NOT EXISTS trade_approvals_approved_at_idx
    ON trade_approvals (approved_at) WHERE approved;

-- One row per placed (or dry-run) order, in the original service's shape.
CREATE TABLE IF NOT EXISTS trades (
    id              text PRIMARY KEY,
    signal_id       uuid,
    symbol          text,
    direction       text,
    entry           numeric,
    stop            numeric,
    targets         jsonb,
    strategy_id     text,
    notes           text,
    risk            jsonb,
    order_status    text,
    filled_qty      integer DEFAULT 0,
    avg_fill_price  numeric,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz DEFAULT now()
);
ALTER TABLE trades
    ADD COLUMN IF NOT EXISTS signal_id       uuid,
    ADD COLUMN IF NOT EXISTS symbol          text,
    ADD COLUMN IF NOT EXISTS direction       text,
    ADD COLUMN IF NOT EXISTS entry           numeric,
    ADD COLUMN IF NOT EXISTS stop            numeric,
    ADD COLUMN IF NOT EXISTS targets         jsonb,
    ADD COLUMN IF NOT EXISTS strategy_id     text,
    ADD COLUMN IF NOT EXISTS notes           text,
    ADD COLUMN IF NOT EXISTS risk            jsonb,
    ADD COLUMN IF NOT EXISTS order_status    text,
    ADD COLUMN IF NOT EXISTS filled_qty      integer DEFAULT 0,
    ADD COLUMN IF NOT EXISTS avg_fill_price  numeric,
    ADD COLUMN IF NOT EXISTS created_at      timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS updated_at      timestamptz DEFAULT now();
-- Only where no index on trades (signal_id) exists yet: the original's migrations create
-- idx_trades_signal_id, and a second one only slows its writes (0007 drops ours where both exist).
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = 'trades'::regclass AND i.indnatts = 1 AND a.attname = 'signal_id'
          AND i.indpred IS NULL AND i.indexprs IS NULL
    ) THEN
        CREATE INDEX IF NOT EXISTS trades_signal_id_idx ON trades (signal_id);
    END IF;
END
$$;

-- The executor's own ledger: one row per signal taken up. The UNIQUE signal_id is what makes a
-- second claim of the same signal fail in PostgreSQL itself. No FK to strategy_signals: the
-- ledger stays valid whatever happens to the legacy tables.
CREATE TABLE IF NOT EXISTS executions (
    id               uuid PRIMARY KEY,
    signal_id        uuid NOT NULL UNIQUE,
    approval_id      uuid,
    state            text NOT NULL CHECK (state IN (
                         'received', 'submitting', 'submitted', 'partially_filled', 'filled',
                         'cancelled', 'rejected', 'failed', 'dry_run', 'unknown')),
    reason           text,
    symbol           text,
    action           text,
    order_type       text,
    client_order_id  text NOT NULL UNIQUE,
    order_id         bigint,
    child_order_ids  bigint[] NOT NULL DEFAULT '{}',
    quantity         integer,
    entry_price      numeric,
    stop_loss        numeric,
    take_profit      numeric,
    risk_amount      numeric,
    risk_percent     numeric,
    position_value   numeric,
    filled_qty       integer NOT NULL DEFAULT 0,
    avg_fill_price   numeric,
    broker_status    text,
    trading_day      date,
    attempted_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    submitted_at     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
-- Start-up recovery and the pollers read only the executions not yet final.
CREATE INDEX IF NOT EXISTS executions_open_state_idx ON executions (state)
    WHERE state IN ('received', 'submitting', 'submitted', 'partially_filled', 'unknown');
CREATE INDEX IF NOT EXISTS executions_trading_day_idx ON executions (trading_day);

-- Append-only audit trail. clock_timestamp(): events of one transaction keep their real order.
CREATE TABLE IF NOT EXISTS execution_events (
    id            bigserial PRIMARY KEY,
    execution_id  uuid NOT NULL REFERENCES executions (id),
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind          text NOT NULL,
    detail        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS execution_events_execution_id_idx
    ON execution_events (execution_id, id);

-- The kill switch: exactly one row (id = 1).
CREATE TABLE IF NOT EXISTS executor_control (
    id          smallint PRIMARY KEY CHECK (id = 1),
    halted      boolean NOT NULL DEFAULT false,
    reason      text,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  text
);
INSERT INTO executor_control (id) VALUES (1) ON CONFLICT (id) DO NOTHING;
