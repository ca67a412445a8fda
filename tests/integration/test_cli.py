"""The command line (CONTRACT section 2): help, exit codes, check-config, and the operator
commands halt, resume, status and resolve against a migrated database.

Most tests call `main()` in this process (fast); one runs the installed console script to show
the same behaviour end to end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import ENV_VARIABLES, threaded_bridge
from trade_executor.cli.main import COMMANDS, main
from trade_executor.config.sources import Settings

EX_CONFIG = 78
EX_USAGE = 2
DEAD_BRIDGE = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("IB_BRIDGE_URL", DEAD_BRIDGE)
    return db_url


def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


# -- usage and help ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [*sorted(COMMANDS), "paper-bridge"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: trade-executor")
    assert command in out.splitlines()[0]


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in [*COMMANDS, "paper-bridge"]:
        assert command in out


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no command
        ["no-such-command"],
        ["halt"],  # --reason is required
        ["resolve", "3f1e0c1a-0000-0000-0000-000000000000"],  # --as is required
        ["resolve", "3f1e0c1a-0000-0000-0000-000000000000", "--as", "exploded"],  # bad choice
        ["execute", "some-id"],  # --approved-by is required
        ["status", "--unknown-flag"],
        ["paper-bridge", "--port", "not-a-port"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == EX_USAGE
    assert "usage:" in capsys.readouterr().err


# -- check-config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAX_RISK_PER_TRADE", "0"),
        ("MAX_RISK_PER_TRADE", "1.5"),
        ("DEFAULT_ORDER_TYPE", "FOK"),
        ("IB_BRIDGE_URL", "not a url"),
        ("DATABASE_URL", "mysql://user@host/db"),
        ("HTTP_PORT", "70000"),
        ("TRADING_DAY_TIMEZONE", "Mars/Olympus"),
    ],
)
def test_check_config_with_a_bad_value_exits_78_naming_it(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["check-config"]) == EX_CONFIG
    captured = capsys.readouterr()
    assert variable in captured.err
    assert captured.out == ""


def test_min_above_max_position_size_exits_78(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MIN_POSITION_SIZE", "50")
    monkeypatch.setenv("MAX_POSITION_SIZE", "10")
    assert main(["check-config"]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "MIN_POSITION_SIZE" in err and "MAX_POSITION_SIZE" in err


def test_check_config_prints_every_setting_and_no_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://trader:s3cr3t-Pa55@db.internal:5432/trading")
    monkeypatch.setenv("DATABASE_PASSWORD", "an0ther-Pa55")
    monkeypatch.setenv("API_TOKEN", "t0ken-value-123")
    monkeypatch.setenv("MAX_OPEN_POSITIONS", "7")
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    printed = dict(line.split("=", 1) for line in out.splitlines())
    assert set(printed) == {name.upper() for name in Settings.model_fields}
    assert printed["MAX_OPEN_POSITIONS"] == "7"
    assert printed["EXECUTION_ENABLED"] == "false"
    assert "db.internal:5432/trading" in printed["DATABASE_URL"]
    for secret in ("s3cr3t-Pa55", "an0ther-Pa55", "t0ken-value-123", "trader"):
        assert secret not in out


def test_env_file_is_read_and_a_missing_one_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / "trade-executor.env"
    env_file.write_text(
        "MAX_DAILY_LOSS=2500\nLOG_FORMAT=console\nDATABASE_URL=postgresql://u@db/trading\n"
    )
    assert main(["--env-file", str(env_file), "check-config"]) == 0
    out = capsys.readouterr().out
    assert "MAX_DAILY_LOSS=2500" in out and "LOG_FORMAT=console" in out

    assert main(["--env-file", str(tmp_path / "missing.env"), "check-config"]) == EX_CONFIG
    assert "missing.env" in capsys.readouterr().err


def test_the_example_env_file_is_valid_and_lists_every_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "trade-executor.env.example"
    # As shipped it lacks DATABASE_URL, so check-config refuses it, as `run` would.
    assert main(["--env-file", str(example), "check-config"]) == EX_CONFIG
    assert f"DATABASE_URL: required by run but is empty ({example}:" in capsys.readouterr().err
    monkeypatch.setenv("DATABASE_URL", "postgresql://trader@db.internal/trading")
    assert main(["--env-file", str(example), "check-config"]) == 0
    listed = {
        line.lstrip("#").split("=", 1)[0].strip().lower()
        for line in example.read_text().splitlines()
        if "=" in line and line.lstrip("#").split("=", 1)[0].strip().isupper()
    }
    assert listed == set(Settings.model_fields)
    # and its values are the defaults
    printed = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert printed == Settings().redacted()


def test_commands_that_need_the_database_exit_78_without_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["run"], ["migrate"], ["status"], ["halt", "--reason", "x"], ["resume"]):
        assert main(argv) == EX_CONFIG, argv
        assert "DATABASE_URL" in capsys.readouterr().err


def test_the_console_script_runs(tmp_path: Path) -> None:
    """The installed entry point, in a subprocess: help, and exit 78 on a bad setting."""
    script = Path(sys.executable).with_name("trade-executor")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "trade_executor"]
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARIABLES}
    helped = subprocess.run([*command, "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "check-config" in helped.stdout
    env["MAX_POSITION_VALUE_PCT"] = "0"
    bad = subprocess.run([*command, "check-config"], capture_output=True, text=True, env=env)
    assert bad.returncode == EX_CONFIG
    assert "MAX_POSITION_VALUE_PCT" in bad.stderr


# -- operator commands against a database ---------------------------------------------------------


def test_halt_status_resume(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["halt", "--reason", "broker maintenance", "--by", "alice"]) == 0
    assert "halted" in capsys.readouterr().out
    [row] = query(db, "SELECT halted, reason, changed_by FROM executor_control")
    assert (row["halted"], row["reason"], row["changed_by"]) == (
        True,
        "broker maintenance",
        "alice",
    )

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "yes: broker maintenance (by alice)" in out
    # No running service has published its budget: status says so rather than use this shell's.
    assert "daily risk used    0.00 (the service's budget is not known)" in out
    assert "unavailable" in out  # the bridge does not answer: said so, not a crash

    assert main(["resume", "--by", "bob"]) == 0
    assert capsys.readouterr().out.startswith("resumed")
    [row] = query(db, "SELECT halted, changed_by FROM executor_control")
    assert (row["halted"], row["changed_by"]) == (False, "bob")
    assert main(["status"]) == 0
    assert "halted             no" in capsys.readouterr().out


INSERT_EXECUTION = """
INSERT INTO executions (id, signal_id, state, reason, symbol, action, order_type, client_order_id,
                        quantity, entry_price, stop_loss, take_profit, risk_amount, position_value,
                        filled_qty, trading_day, attempted_at)
VALUES ($1, $2, $3, $4, $5, 'BUY', 'LMT', $6, $7, 150, 145, 160, $8, 19950, 0,
        (now() AT TIME ZONE 'America/New_York')::date, now())
"""


def insert_execution(
    db: str, state: str, symbol: str = "AAPL", quantity: int = 133, risk: str = "665.00"
) -> uuid.UUID:
    execution_id = uuid.uuid4()
    query(
        db,
        INSERT_EXECUTION,
        execution_id,
        uuid.uuid4(),
        state,
        "order.unknown: answer lost" if state == "unknown" else None,
        symbol,
        f"te-{execution_id.hex[:16]}",
        quantity,
        Decimal(risk),
    )
    return execution_id


def test_status_lists_executions_in_flight_and_the_budget_used(
    db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = insert_execution(db, "unknown", "MSFT", 10, "50.00")
    submitted = insert_execution(db, "submitted", "AAPL", 133, "665.00")
    insert_execution(db, "rejected", "TSLA", 5, "20.00")  # final: not in flight, no budget
    with threaded_bridge() as bridge:
        monkeypatch.setenv("IB_BRIDGE_URL", bridge.url)
        assert main(["status"]) == 0
    out = capsys.readouterr().out
    # `unknown` counts against the budget (its order may be working at the broker): fail closed.
    assert "daily risk used    715.00" in out  # the budget left: tests/integration/test_status_*
    assert "open positions     0" in out
    assert "executions in flight  2" in out
    assert str(unknown) in out and str(submitted) in out
    assert "TSLA" not in out


def test_resolve_an_unknown_execution_as_failed(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    execution_id = insert_execution(db, "unknown")
    assert main(["resolve", str(execution_id), "--as", "failed", "--by", "carol"]) == 0
    assert "resolved as failed" in capsys.readouterr().out
    [row] = query(
        db, "SELECT state, reason, finished_at FROM executions WHERE id = $1", execution_id
    )
    assert row["state"] == "failed"
    assert "carol" in row["reason"]
    assert row["finished_at"] is not None
    kinds = [
        r["kind"]
        for r in query(
            db, "SELECT kind FROM execution_events WHERE execution_id = $1", execution_id
        )
    ]
    assert kinds == ["execution.resolved"]

    # A second resolve finds it no longer unknown: one clear sentence, exit 1.
    assert main(["resolve", str(execution_id), "--as", "failed"]) == 1
    err = capsys.readouterr().err
    assert "is failed, not unknown" in err and len(err.strip().splitlines()) == 1


def test_resolve_an_unknown_execution_as_submitted(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    execution_id = insert_execution(db, "unknown")
    argv = ["resolve", str(execution_id), "--as", "submitted"]
    assert main(argv) == 2  # bad usage: the broker's order id is needed
    assert "--order-id" in capsys.readouterr().err
    # The order id is checked at the bridge (here: none answers), so nothing is changed; the
    # matching case is in tests/integration/test_resolve.py.
    assert main([*argv, "--order-id", "4242"]) == 1
    assert "cannot check order 4242 at the bridge" in capsys.readouterr().err
    [row] = query(db, "SELECT state, order_id FROM executions WHERE id = $1", execution_id)
    assert (row["state"], row["order_id"]) == ("unknown", None)


def test_resolve_errors_are_one_sentence(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # not an id at all: bad usage
        main(["resolve", "not-a-uuid", "--as", "failed"])
    assert exited.value.code == EX_USAGE
    assert "not an id" in capsys.readouterr().err
    missing = uuid.uuid4()
    assert main(["resolve", str(missing), "--as", "failed"]) == 1
    assert f"execution {missing} not found" in capsys.readouterr().err


def test_an_unreachable_database_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:9/none")
    assert main(["status"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("trade-executor: cannot reach the database")
    assert "Traceback" not in err


def test_execute_without_a_running_service_is_one_sentence(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", "a-token")
    argv = ["execute", str(uuid.uuid4()), "--approved-by", "dave", "--url", "http://127.0.0.1:9"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "did not answer" in err and "Traceback" not in err


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures logging for the process; put the test default back afterwards."""
    yield
    from trade_executor.observability.logging import configure_logging

    configure_logging("json", "info")
