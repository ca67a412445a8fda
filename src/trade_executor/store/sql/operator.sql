-- SQL of the kill switch and the operator's reads (`halt`, `resume`, `show`, `resolve`).

-- name: read_control
SELECT halted, reason, changed_at, changed_by FROM executor_control WHERE id = 1

-- name: set_control
INSERT INTO executor_control (id, halted, reason, changed_at, changed_by)
VALUES (1, $1, $2, now(), $3)
ON CONFLICT (id) DO UPDATE SET halted = $1, reason = $2, changed_at = now(), changed_by = $3

-- name: announce_change
-- The control channel's payload names the execution an operator changed
-- (`store.control_payloads.execution_payload`).
SELECT pg_notify('trade_executor_control',
                 json_build_object('kind', 'execution_changed', 'execution_id', $1::text)::text)

-- name: find_executions
-- An id or an id prefix (`ops.ids`) is a range of uuids: two index range scans (BitmapOr).
SELECT * FROM executions
WHERE id BETWEEN $1 AND $2 OR signal_id BETWEEN $1 AND $2
ORDER BY created_at LIMIT $3

-- name: execution_events
SELECT id, execution_id, at, kind, detail FROM execution_events WHERE execution_id = $1 ORDER BY id

-- name: acknowledge_control
-- The running service's answer to a change of the kill switch (`halt`/`resume` wait for it).
SELECT pg_notify('trade_executor_control_ack',
                 json_build_object('changed_at', $1::timestamptz, 'halted', $2::boolean,
                                   'instance', $3::text)::text)

-- name: ping
-- The database answers.
SELECT 1
