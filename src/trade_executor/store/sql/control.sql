-- The kill switch's row and the connected instances (store/operator.py).

-- name: read_control_row
SELECT * FROM executor_control WHERE id = 1

-- name: lock_control_row
SELECT * FROM executor_control WHERE id = 1 FOR UPDATE

-- name: write_switch
UPDATE executor_control SET halted = $1, reason = $2, changed_at = clock_timestamp(),
                            changed_by = $3
WHERE id = 1
RETURNING changed_at

-- name: insert_control_row
INSERT INTO executor_control (id) VALUES (1) ON CONFLICT (id) DO NOTHING

-- name: connected_instances
SELECT substr(application_name, length($1) + 1) AS instance, count(*) AS connections,
       min(backend_start) AS since, (array_agg(client_addr::text))[1] AS client_addr
FROM pg_stat_activity
WHERE datname = current_database() AND application_name LIKE $1 || '%:%'
GROUP BY application_name ORDER BY 1

-- name: database_now
SELECT clock_timestamp()
