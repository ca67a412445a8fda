"""Two real PostgreSQL servers on loopback: a primary and a streaming standby made from it with
`pg_basebackup`, each in a temporary directory on a free port (never the shared 5432). For the
failover test (tests/chaos/test_failover.py): the primary is SIGKILLed as in a crash, the standby
promoted with `pg_ctl promote`, as Patroni would.

`synchronous=True` names the standby in `synchronous_standby_names` (a commit returns once the
standby has flushed it); `False` leaves replication asynchronous. Under root the servers run as
an unprivileged user, as `trade_executor_dev.devdb.server` does.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from trade_executor_dev.devdb.server import (
    EmbeddedPostgresError,
    _portable_copy,
    _Runner,
    _unprivileged_user,
    find_bindir,
)

STANDBY_NAME = "standby1"


def free_port() -> int:
    """A loopback port free now (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Node:
    """One server of the pair."""

    name: str
    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None


class PgPair:
    """A primary and its standby. `kill_primary` and `promote_standby` are the failover."""

    def __init__(self, bindir: Path, root: Path, user: str | None, *, synchronous: bool) -> None:
        self.bindir = bindir
        self.root = root
        self.synchronous = synchronous
        self._runner = _Runner(user, root / "pair.log")
        self.primary = Node("primary", root / "primary", free_port())
        self.standby = Node("standby", root / "standby", free_port())
        self._started: list[Node] = []
        self._user = user

    def multi_host_url(self, database: str) -> str:
        """The DATABASE_URL of the service: both servers, the writable one chosen."""
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
            f"/{database}?target_session_attrs=read-write"
        )

    # ---- building ------------------------------------------------------------------------

    def _mkdir(self, path: Path) -> None:
        path.mkdir(parents=True)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _options(self, node: Node, *extra: str) -> str:
        return shlex.join(
            [
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={node.port}",
                "-c", f"unix_socket_directories={node.directory}",
                # fsync off: a SIGKILLed process leaves its writes in the OS's cache, which
                # survives; the durability under test is replication's, not the disk's.
                "-c", "fsync=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=100",
                "-c", "wal_level=replica",
                "-c", "max_wal_senders=5",
                "-c", "wal_keep_size=256MB",
                "-c", "hot_standby=on",
                "-c", "wal_receiver_status_interval=1",
                *extra,
            ]
        )  # fmt: skip

    def _pg_ctl_start(self, node: Node, options: str) -> None:
        self._runner.run(
            [
                str(self.bindir / "pg_ctl"), "-D", str(node.data),
                "-l", str(node.directory / "postgres.log"),
                "-o", options, "-w", "-t", "60", "start",
            ]
        )  # fmt: skip
        self._started.append(node)

    def start(self) -> None:
        self._mkdir(self.primary.directory)
        self._mkdir(self.standby.directory)
        self._runner.run(
            [
                str(self.bindir / "initdb"), "-D", str(self.primary.data), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync",
            ]
        )  # fmt: skip
        names = f"FIRST 1 ({STANDBY_NAME})" if self.synchronous else ""
        self._pg_ctl_start(
            self.primary,
            self._options(
                self.primary,
                "-c", f"synchronous_standby_names={names}",
                "-c", "synchronous_commit=on",
            ),
        )  # fmt: skip
        self._runner.run(
            [
                str(self.bindir / "pg_basebackup"),
                "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                "-D", str(self.standby.data), "-X", "stream", "--no-sync",
                "--write-recovery-conf",
            ]
        )  # fmt: skip
        conninfo = (
            f"host=127.0.0.1 port={self.primary.port} user=postgres application_name={STANDBY_NAME}"
        )
        # The standby names itself in the primary's synchronous_standby_names; in
        # postgresql.auto.conf (after pg_basebackup's line: the last wins), not on the command
        # line, so that ALTER SYSTEM can cut it off (`disconnect_standby`).
        with (self.standby.data / "postgresql.auto.conf").open("a") as auto:
            auto.write(f"primary_conninfo = '{conninfo}'\n")
        self._pg_ctl_start(self.standby, self._options(self.standby))

    # ---- the failover ----------------------------------------------------------------------

    def kill_primary(self) -> None:
        """SIGKILL the primary's postmaster and every one of its processes, as a crash does."""
        pid = self.primary.postmaster_pid()
        assert pid is not None, "the primary is not running"
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        for child in children:
            with suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        _wait_gone([pid, *children])
        self._started.remove(self.primary)

    def promote_standby(self) -> None:
        self._runner.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.standby.data), "-w", "-t", "60", "promote"]
        )

    def stop(self) -> None:
        for node in reversed(self._started):
            try:
                self._runner.run(
                    [str(self.bindir / "pg_ctl"), "-D", str(node.data), "-m", "immediate", "stop"],
                    timeout=30,
                )
            except EmbeddedPostgresError:
                pid = node.postmaster_pid()
                if pid is not None:
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        self._started.clear()


def _children(pid: int) -> list[int]:
    """The direct children of `pid` (PostgreSQL's backends and auxiliary processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _wait_gone(pids: list[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            # A zombie (reaped by nobody yet: its parent was killed too) counts as gone.
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except OSError:
                break
            time.sleep(0.01)


def server_binaries() -> Path | None:
    """initdb, pg_ctl, pg_basebackup and postgres in one directory, or None."""
    bindir = find_bindir()
    if bindir is None:
        return None
    needed = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
    return bindir if all((bindir / name).is_file() for name in needed) else None


@contextmanager
def pg_pair(*, synchronous: bool) -> Iterator[PgPair]:
    bindir = server_binaries()
    if bindir is None:
        raise EmbeddedPostgresError("no initdb/pg_ctl/pg_basebackup/postgres found")
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="trade-executor-pgpair-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        if not _Runner(user, root / "pair.log").can_execute(bindir / "postgres"):
            bindir = _portable_copy(bindir, root)
    pair = PgPair(bindir, root, user, synchronous=synchronous)
    try:
        pair.start()
        yield pair
    finally:
        pair.stop()
        shutil.rmtree(root, ignore_errors=True)
