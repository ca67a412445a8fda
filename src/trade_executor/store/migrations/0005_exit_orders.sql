-- 0004: the exit order the service places for a position (`close`, flatten), written before the
-- POST so that a crash in between is settled by looking the order up, never by sending it again.
-- exit_order_id 0 = the close was sent (or is about to be) and its answer is not recorded yet.
-- Our own table only; every statement is safe to run again.
ALTER TABLE executions
    ADD COLUMN IF NOT EXISTS exit_order_id      bigint,
    ADD COLUMN IF NOT EXISTS exit_attempted_at  timestamptz;
