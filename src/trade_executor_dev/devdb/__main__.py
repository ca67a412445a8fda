"""`python -m trade_executor_dev.devdb [--] COMMAND...`: run COMMAND with TEST_DATABASE_URL
pointing at a PostgreSQL server (`devdb.server_for_tests`), and exit with its exit code."""

from __future__ import annotations

import os
import subprocess
import sys

from trade_executor_dev.devdb import URL_VARIABLE, server_for_tests
from trade_executor_dev.devdb.server import EmbeddedPostgresError


def main(argv: list[str]) -> int:
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        print("usage: python -m trade_executor_dev.devdb [--] COMMAND...", file=sys.stderr)
        return 2
    try:
        with server_for_tests() as url:
            env = {**os.environ, URL_VARIABLE: url}
            return subprocess.run(command, env=env, check=False).returncode  # noqa: S603
    except EmbeddedPostgresError as error:
        print(f"devdb: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
