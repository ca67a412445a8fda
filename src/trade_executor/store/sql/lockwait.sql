-- Waiting for a lock, and who holds it (store/lockwait.py).

-- name: set_lock_timeout
-- How long each statement of this session may wait for a lock (as `SET lock_timeout`, for the
-- session): $1 as text, e.g. '1000ms'.
SELECT set_config('lock_timeout', $1, false)

-- name: blockers
SELECT pid, application_name, usename, state, xact_start
FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids($1)) ORDER BY xact_start NULLS LAST, pid
