-- Breaks found by reconciliation with the broker (CONTRACT section 5): what `status` lists and
-- what /health reports as degraded. One row per break (kind, symbol, execution); a break seen
-- again at a later pass updates `last_seen`; one no longer seen gets `cleared_at`. Kept, never
-- deleted: the history of what disagreed and for how long.
CREATE TABLE IF NOT EXISTS trade_executor_reconcile_breaks (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL,
    symbol        text NOT NULL,
    execution_id  uuid,
    order_id      bigint,
    detail        jsonb NOT NULL DEFAULT '{}',
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    cleared_at    timestamptz
);
CREATE INDEX IF NOT EXISTS trade_executor_reconcile_breaks_open_idx
    ON trade_executor_reconcile_breaks (kind, symbol) WHERE cleared_at IS NULL;
