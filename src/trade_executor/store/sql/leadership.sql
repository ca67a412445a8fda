-- Leadership: the takeover, the heartbeat and the leader's row (store/leadership.py).

-- name: try_leader_lock
-- The leader's session lock: only the session holding it may take over.
SELECT pg_try_advisory_lock($1)

-- name: take_over
-- The takeover. Upsert: the row exists from migration 0001, but a hand-cleaned table must not
-- leave a leader without an epoch.
INSERT INTO executor_control AS c
    (id, leader_epoch, leader_id, leader_since, leader_heartbeat_at, limits)
VALUES (1, 1, $1, now(), now(), $2::jsonb)
ON CONFLICT (id) DO UPDATE SET
    leader_epoch = c.leader_epoch + 1,
    leader_id = EXCLUDED.leader_id,
    leader_since = EXCLUDED.leader_since,
    leader_heartbeat_at = EXCLUDED.leader_heartbeat_at,
    limits = EXCLUDED.limits
RETURNING leader_epoch, leader_since

-- name: heartbeat
-- The heartbeat changes only the leader's own row: another epoch or identity there means that
-- another instance took over.
UPDATE executor_control SET leader_heartbeat_at = now()
WHERE id = 1 AND leader_epoch = $1 AND leader_id = $2
RETURNING leader_epoch

-- name: read_leader
SELECT leader_id, leader_epoch, leader_since, leader_heartbeat_at, limits
FROM executor_control WHERE id = 1
