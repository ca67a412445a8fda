-- The server a pool reached and its durability settings (store/server.py).

-- name: server_query
-- inet_server_addr() is NULL over a Unix socket; pg_is_in_recovery() is true on a standby.
SELECT host(inet_server_addr()) AS address, inet_server_port() AS port,
       pg_is_in_recovery() AS in_recovery, current_setting('server_version') AS version

-- name: durability_query
-- The session's own synchronous_commit (a role or database may override the server's), the
-- synchronous standbys asked for, and those streaming now. pg_stat_replication's columns other
-- than pid are NULL for a role without pg_read_all_stats: then the state cannot be seen.
SELECT current_setting('synchronous_commit') AS synchronous_commit,
       current_setting('synchronous_standby_names') AS standby_names,
       count(r.pid) AS standbys,
       count(*) FILTER (WHERE r.sync_state IN ('sync', 'quorum')) AS synchronous,
       count(r.pid) FILTER (WHERE r.sync_state IS NULL) AS hidden
FROM (SELECT 1) AS one LEFT JOIN pg_stat_replication AS r ON true
