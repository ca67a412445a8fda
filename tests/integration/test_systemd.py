"""sd_notify (CONTRACT section 10): the real `trade-executor run` process talks to a datagram
socket as systemd would see it; and SystemdNotifier on its own (abstract namespace, no socket)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ThreadedBridge
from trade_executor.config.sources import Settings
from trade_executor.service.systemd import (
    ServiceStatus,
    SystemdNotifier,
    status_line,
    watchdog_interval,
)

WAIT = 30.0  # generous: only a deadline for an outcome, never a measured duration


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(WAIT)
    try:
        yield sock, path
    finally:
        sock.close()


def receive(sock: socket.socket) -> dict[str, str]:
    """One datagram as KEY=value pairs (it may hold several lines)."""
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines() if line)


def run_command() -> list[str]:
    script = Path(sys.executable).with_name("trade-executor")
    return (
        [str(script), "run"] if script.exists() else [sys.executable, "-m", "trade_executor", "run"]
    )


def test_run_reports_ready_pets_the_watchdog_and_stops_on_sigterm(
    notify_socket: tuple[socket.socket, str], fresh_database_url: str, bridge: ThreadedBridge
) -> None:
    sock, path = notify_socket
    env = {k: v for k, v in os.environ.items() if k.upper() not in _setting_names()}
    env.pop("WATCHDOG_PID", None)
    env.update(
        NOTIFY_SOCKET=path,
        WATCHDOG_USEC="200000",  # petted every 0.1 s
        DATABASE_URL=fresh_database_url,  # empty: `run` migrates it
        IB_BRIDGE_URL=bridge.url,
        HTTP_PORT="0",
        EXECUTION_ENABLED="true",
        LOG_LEVEL="warning",
    )
    process = subprocess.Popen(
        run_command(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        messages: list[dict[str, str]] = []
        while not any("READY" in m for m in messages):
            messages.append(receive(sock))
        ready = messages[-1]
        assert ready["READY"] == "1"
        assert ready["STATUS"].startswith("active")
        # Nothing before READY claims the service is alive.
        assert not any("WATCHDOG" in m or "STOPPING" in m for m in messages[:-1])

        watchdogs = 0
        while watchdogs < 3:
            message = receive(sock)
            assert "STOPPING" not in message
            watchdogs += message.get("WATCHDOG") == "1"

        process.send_signal(signal.SIGTERM)
        after: list[dict[str, str]] = []
        while not any("STOPPING" in m for m in after):
            after.append(receive(sock))
        assert after[-1]["STOPPING"] == "1"
        output, _ = process.communicate(timeout=WAIT)
        assert process.returncode == 0, output.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_run_with_an_invalid_setting_exits_78_and_sends_nothing(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    env = {k: v for k, v in os.environ.items() if k.upper() not in _setting_names()}
    env.update(NOTIFY_SOCKET=path, DATABASE_URL="postgresql://x@127.0.0.1:9/db")
    env["MAX_RISK_PER_TRADE"] = "0"
    done = subprocess.run(run_command(), env=env, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 78
    assert "MAX_RISK_PER_TRADE" in done.stderr
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(4096)


def test_the_abstract_namespace_address() -> None:
    name = f"trade-executor-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(WAIT)
        notifier = SystemdNotifier("@" + name)
        assert notifier.enabled
        assert notifier.ready("active: executing approvals")
        assert receive(sock) == {"READY": "1", "STATUS": "active: executing approvals"}
        assert notifier.watchdog()
        assert receive(sock) == {"WATCHDOG": "1"}
        assert notifier.status("degraded: bridge unavailable")
        assert receive(sock) == {"STATUS": "degraded: bridge unavailable"}
        assert notifier.stopping()
        assert receive(sock) == {"STOPPING": "1", "STATUS": "stopping"}


def test_a_path_address(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    assert SystemdNotifier(path).notify("STATUS=hello", "EXTEND_TIMEOUT_USEC=1000000")
    assert receive(sock) == {"STATUS": "hello", "EXTEND_TIMEOUT_USEC": "1000000"}


def test_no_socket_means_no_messages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier.from_env()
    assert not notifier.enabled
    assert notifier.ready("x") is False
    # A socket that went away is not an error for the service: the send just fails.
    gone = SystemdNotifier(str(tmp_path / "nobody-listens.sock"))
    assert gone.enabled and gone.watchdog() is False


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert watchdog_interval() == 15.0  # half of WatchdogSec, as systemd advises
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None  # meant for another process
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_USEC", "garbage")
    assert watchdog_interval() is None


ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "trade-executor.service"


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (line.strip() for line in UNIT.read_text().splitlines()):
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_file_says_what_the_contract_asks() -> None:
    settings = unit_settings()
    expected = {
        "Type": "notify",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "78",
        "EnvironmentFile": "/etc/trade-executor/trade-executor.env",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "CapabilityBoundingSet": "",
    }
    for key, value in expected.items():
        assert settings.get(key) == [value], key
    assert "@system-service" in settings["SystemCallFilter"]
    assert int(settings["WatchdogSec"][0]) > 0
    assert settings["ExecStart"][0].endswith("trade-executor run")
    assert re.fullmatch(r"\d+[KMG]", settings["MemoryMax"][0])
    # Secrets as credentials, under the names config reads from $CREDENTIALS_DIRECTORY.
    credentials = dict(value.split(":", 1) for value in settings["LoadCredential"])
    assert set(credentials) == {"database_password", "api_token"}
    assert all(path.startswith("/etc/trade-executor/credentials/") for path in credentials.values())


def test_documentation_points_at_files_the_documented_install_creates() -> None:
    settings = unit_settings()
    runbook = (ROOT / "docs" / "RUNBOOK.md").read_text()
    # The runbook's install steps copy README.md and docs/*.md there.
    assert "install -m 0644 README.md docs/*.md /usr/share/doc/trade-executor/" in runbook
    assert settings["Documentation"]
    for uri in settings["Documentation"]:
        name = uri.removeprefix("file:/usr/share/doc/trade-executor/")
        assert name != uri and "/" not in name, uri
        assert (ROOT / name).is_file() or (ROOT / "docs" / name).is_file(), uri


def test_peer_authentication_role_is_named_like_the_unit() -> None:
    """DynamicUser= without User= runs the service as a user named like the unit; the runbook's
    PostgreSQL role (and pg_ident map) must use that name."""
    settings = unit_settings()
    assert "User" not in settings and settings["DynamicUser"] == ["yes"]
    runbook = (ROOT / "docs" / "RUNBOOK.md").read_text()
    user = UNIT.stem
    assert f'CREATE ROLE "{user}" LOGIN' in runbook
    assert re.search(rf"^local\s+\S+\s+{user}\s+peer", runbook, re.MULTILINE)


@pytest.mark.skipif(
    subprocess.run(["which", "systemd-analyze"], capture_output=True).returncode != 0,
    reason="systemd-analyze is not installed",
)
def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    """`systemd-analyze verify` exits 0 even on a misspelt key: any output is a failure. The
    ExecStart binary must exist, so the copy points it at this virtualenv's script."""
    script = Path(sys.executable).with_name("trade-executor")
    if not script.exists():
        pytest.skip("the trade-executor console script is not installed")
    unit = tmp_path / "trade-executor.service"
    unit.write_text(
        UNIT.read_text().replace("/opt/trade-executor/venv/bin/trade-executor", str(script))
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


# ---- STATUS= -----------------------------------------------------------------------------------


def test_status_says_dry_run_and_never_executing_in_it() -> None:
    line = status_line(ServiceStatus(role="active", execution_enabled=False, account="paper"))
    assert line.startswith("active: ")
    assert "DRY RUN" in line and "taking approvals" in line
    assert "live" not in line.lower()


def test_status_says_live_and_which_account() -> None:
    paper = status_line(ServiceStatus(role="active", execution_enabled=True, account="paper"))
    live = status_line(ServiceStatus(role="active", execution_enabled=True, account="live"))
    unknown = status_line(ServiceStatus(role="active", execution_enabled=True))
    assert "paper account" in paper and "LIVE account" not in paper
    assert "LIVE account" in live
    assert "account" not in unknown and "live orders" in unknown
    assert "DRY RUN" not in paper + live + unknown


def test_status_says_halted_by_whom_and_why_in_one_line() -> None:
    line = status_line(
        ServiceStatus(
            role="active",
            execution_enabled=True,
            account="paper",
            halted=True,
            halt_reason="breaker: failed: bridge_unavailable:\nconnect refused",
            halted_by="breaker",
        )
    )
    assert "HALTED by breaker: breaker: failed: bridge_unavailable: connect refused" in line
    assert "taking approvals" not in line and "\n" not in line
    long_reason = status_line(
        ServiceStatus(role="active", execution_enabled=True, halted=True, halt_reason="x" * 5000)
    )
    assert len(long_reason) < 300 and long_reason.endswith("...; approvals are rejected")


def test_status_of_a_standby_names_the_active_instance() -> None:
    line = status_line(
        ServiceStatus(role="standby", execution_enabled=True, leader="host-a pid 1234")
    )
    assert line.startswith("standby")
    assert "host-a pid 1234" in line and "taking approvals" not in line
    assert status_line(ServiceStatus(role="standby", execution_enabled=False)).startswith(
        "standby (waiting for the leader lock): DRY RUN"
    )


def test_status_names_what_degrades_the_service() -> None:
    line = status_line(
        ServiceStatus(
            role="active",
            execution_enabled=False,
            problems=("bridge unavailable", "reconcile break"),
        )
    )
    assert line.endswith("; degraded: bridge unavailable, reconcile break")
    assert "degraded" not in status_line(ServiceStatus(role="starting", execution_enabled=False))


def _setting_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields} | {"TRADE_EXECUTOR_ENV_FILE"}
