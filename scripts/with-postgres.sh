#!/usr/bin/env bash
# Runs "$@" with TEST_DATABASE_URL pointing at a reachable PostgreSQL server:
#   1. TEST_DATABASE_URL if already set;
#   2. else a server on 127.0.0.1:5432 if one answers (user postgres);
#   3. else a throwaway server started from the distribution's binaries in a temporary
#      directory, stopped and removed when the command ends.
# Tests create (and drop) their own database on that server, so any of the three is safe.
set -euo pipefail

py=${PYTHON:-.venv/bin/python}

answers() {  # answers DSN -> exit 0 if a server accepts a connection there
  "$py" - "$1" <<'PY'
import asyncio, sys
import asyncpg
async def main() -> None:
    conn = await asyncpg.connect(sys.argv[1], timeout=3)
    await conn.close()
try:
    asyncio.run(main())
except Exception:
    sys.exit(1)
PY
}

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  exec "$@"
fi

local_dsn="postgresql://postgres@127.0.0.1:5432/postgres"
if answers "$local_dsn"; then
  export TEST_DATABASE_URL="$local_dsn"
  exec "$@"
fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "with-postgres: no server reachable and no PostgreSQL binaries found." >&2
  echo "with-postgres: install them (apt-get install postgresql) or set TEST_DATABASE_URL." >&2
  exit 1
fi

tmp=$(mktemp -d /tmp/trade-executor-pg.XXXXXX)
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" = "0" ]; then
  chown postgres: "$tmp"
  as_pg=(runuser -u postgres --)
fi
cleanup() {
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
echo "with-postgres: starting a throwaway server on 127.0.0.1:$port in $tmp" >&2
"${as_pg[@]}" "$bindir/initdb" -D "$tmp/data" -U postgres --auth=trust -E UTF8 >/dev/null
"${as_pg[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/log" -w \
  -o "-h 127.0.0.1 -p $port -k $tmp -c max_connections=300 -c fsync=off" start >/dev/null
export TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/postgres"
"$@"
