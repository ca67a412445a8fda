-- 0006: overnight protection (REPROTECT_AT_OPEN). `reprotected_at` is the session open a
-- position was protected again for, written before the POST, so it is done once per session
-- open, never twice across a restart of trade-executor.
-- Our own table only; every statement is safe to run again.
ALTER TABLE executions
    ADD COLUMN IF NOT EXISTS reprotected_at  timestamptz;
