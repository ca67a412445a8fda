"""What an operator meets first, in one sentence (CONTRACT section 2): every command against a
database that does not exist, a login that is refused and a schema not migrated prints exactly
one sentence on stderr (the whole stderr is compared) and exits 1, never a traceback; `run` the
same from a real process, and for a port in use; `execute` without API_TOKEN says so, and its
exit codes tell 401, 404, 409 and 422 apart; a reader that goes away (`| head`) ends quietly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg
import pytest

from tests.support import (
    ENV_VARIABLES,
    ThreadedBridge,
    insert_signal,
    make_settings,
    running_service,
)
from trade_executor.cli.main import main
from trade_executor.ops.execute import (
    EX_ALREADY_EXECUTED,
    EX_NOT_AUTHORISED,
    EX_NOT_FOUND,
    EX_REJECTED,
)

DEAD_BRIDGE = "http://127.0.0.1:9"

# Every command that reads or writes the database, as an operator types it.
DATABASE_COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["show", "3f2a"],
    ["halt", "--reason", "maintenance", "--by", "ops"],
    ["resume", "--by", "ops"],
    ["resolve", "3f1e0c1a-0000-4000-8000-000000000000", "--as", "failed"],
]


@pytest.fixture(autouse=True)
def a_dead_bridge(clean_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IB_BRIDGE_URL", DEAD_BRIDGE)


def with_path(url: str, database: str, user: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


def server(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}"


@pytest.fixture
def missing_database(pg_server_url: str) -> tuple[str, str]:
    name = f"te_missing_{uuid.uuid4().hex[:12]}"
    url = with_path(pg_server_url, name)
    sentence = (
        f'trade-executor: database "{name}" does not exist on {server(url)}: '
        "create it (createdb), then run trade-executor migrate\n"
    )
    return url, sentence


@pytest.fixture
def refused_login(pg_server_url: str) -> tuple[str, str]:
    user = f"nobody_{uuid.uuid4().hex[:8]}"
    url = with_path(pg_server_url, "postgres", user=user)
    sentence = (
        f"trade-executor: the database at {server(url)}/postgres refused the login as "
        f'"{user}" (role "{user}" does not exist): check DATABASE_URL and DATABASE_PASSWORD\n'
    )
    return url, sentence


@pytest.fixture
def unmigrated(fresh_database_url: str) -> tuple[str, str]:
    name = urlsplit(fresh_database_url).path.lstrip("/")
    sentence = (
        f"trade-executor: the database {server(fresh_database_url)}/{name} has no "
        "trade-executor schema, or an older one: run trade-executor migrate\n"
    )
    return fresh_database_url, sentence


CASES = ["missing_database", "refused_login", "unmigrated"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("argv", DATABASE_COMMANDS, ids=lambda argv: " ".join(argv[:2]))
def test_every_database_command_says_one_sentence_and_exits_1(
    case: str,
    argv: list[str],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, sentence = request.getfixturevalue(case)
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err == sentence
    assert captured.out == ""


@pytest.mark.parametrize("case", ["missing_database", "refused_login"])
def test_migrate_says_one_sentence_and_exits_1(
    case: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, sentence = request.getfixturevalue(case)
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["migrate"]) == 1
    captured = capsys.readouterr()
    assert captured.err == sentence
    assert captured.out == ""


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("trade-executor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trade_executor"]


def run_process(
    argv: list[str], timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in ENV_VARIABLES}
    clean.pop("NOTIFY_SOCKET", None)
    clean.update({"IB_BRIDGE_URL": DEAD_BRIDGE, "HTTP_PORT": "0", **env})
    return subprocess.run(
        [*console_script(), *argv], capture_output=True, text=True, env=clean, timeout=timeout
    )


@pytest.mark.parametrize("case", ["missing_database", "refused_login"])
def test_run_says_one_sentence_and_exits_1(case: str, request: pytest.FixtureRequest) -> None:
    """A real process: stderr is the sentence alone; the JSON log says it too, no traceback."""
    url, sentence = request.getfixturevalue(case)
    done = run_process(["run"], DATABASE_URL=url)
    assert done.returncode == 1
    assert done.stderr == sentence
    assert '"event": "supervisor.failed"' in done.stdout
    assert "Traceback" not in done.stdout


def test_run_with_its_port_in_use_says_so(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_process(["run"], DATABASE_URL=db_url, HTTP_PORT=str(port))
    assert done.returncode == 1
    assert done.stderr == (
        f"trade-executor: HTTP_PORT {port} on 127.0.0.1 is already in use "
        "(another instance on this host?): stop it or set another HTTP_PORT\n"
    )
    assert "Traceback" not in done.stdout


def test_a_reader_that_goes_away_ends_check_config_quietly() -> None:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in ENV_VARIABLES}
    clean["DATABASE_URL"] = "postgresql://trader@db.internal/trading"
    command = " ".join(console_script())
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command} check-config | head -3"],
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
    )
    assert len(done.stdout.splitlines()) == 3
    assert done.stderr == ""  # no BrokenPipeError, no "Exception ignored"


def test_env_file_is_accepted_after_the_command(tmp_path: Path) -> None:
    env_file = tmp_path / "te.env"
    env_file.write_text(
        "DATABASE_URL=postgresql://trader@db.internal/trading\nMAX_DAILY_LOSS=2500\n"
    )
    done = run_process(["check-config", "--env-file", str(env_file)])
    assert done.returncode == 0, done.stderr
    assert "MAX_DAILY_LOSS=2500" in done.stdout.splitlines()


# -- execute ------------------------------------------------------------------------------------


def test_execute_without_an_api_token_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["execute", str(uuid.uuid4()), "--approved-by", "dave", "--url", "http://127.0.0.1:9"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "trade-executor: API_TOKEN is not set in this command's configuration: execute needs "
        "the running service's token (set API_TOKEN, or pass --env-file with it)\n"
    )
    assert captured.out == ""


@pytest.mark.anyio
async def test_execute_exit_codes_tell_the_refusals_apart(
    db_url: str,
    bridge: ThreadedBridge,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = await insert_signal(conn, "CODE")
    wrong_side = await insert_signal(conn, "SIDE", "BUY", "150", "155", "160")  # stop above entry
    async with running_service(make_settings(db_url, bridge)) as service:
        url = f"http://127.0.0.1:{service.http_port}"

        async def execute(signal_id: uuid.UUID, token: str) -> tuple[int, str]:
            monkeypatch.setenv("API_TOKEN", token)
            argv = ["execute", str(signal_id), "--approved-by", "cli", "--url", url]
            code = await anyio.to_thread.run_sync(main, argv)
            out = capsys.readouterr().out
            return code, next(line for line in out.splitlines() if line.startswith('{"'))

        assert (await execute(good, "wrong-token"))[0] == EX_NOT_AUTHORISED
        assert (await execute(uuid.uuid4(), "test-token"))[0] == EX_NOT_FOUND
        code, answer = await execute(good, "test-token")
        assert code == 0, answer
        # Prices as exact JSON numbers, as the service sent them: never 150.0 or 665.0.
        assert '"risk_amount":665.00' in answer and '"entry_price":150' in answer
        assert '"entry_price":150.0,' not in answer
        assert (await execute(good, "test-token"))[0] == EX_ALREADY_EXECUTED
        code, answer = await execute(wrong_side, "test-token")
        assert code == EX_REJECTED
        assert "invalid_signal" in answer
