-- The schema version of a database (store/schema_version.py).

-- name: table_exists
SELECT to_regclass($1) IS NOT NULL

-- name: latest
SELECT max(version) FROM trade_executor_migrations
