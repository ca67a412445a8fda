"""`status [--json]` (CONTRACT section 2): what the running service sees, read from the database,
never this shell's settings. The active instance from the leader columns and its heartbeat,
standbys from the sessions connected to the database, the service's published limits, today's
risk by the executor's rule, executions needing an operator; and plain words when no service
runs, no leader was ever recorded, or the bridge does not answer."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from tests.support import ENV_VARIABLES, ThreadedBridge
from trade_executor.broker.jsonnum import loads
from trade_executor.cli.main import main

DEAD_BRIDGE = "http://127.0.0.1:9"

# What a running service publishes (the fencing helper writes it; the format is the settings'
# names, lower-case, values as JSON numbers, strings or booleans).
SERVICE_LIMITS = {
    "max_risk_per_trade": 0.02,
    "min_position_size": 1,
    "max_position_size": 500,
    "max_position_value_pct": 0.25,
    "max_open_positions": 0,
    "max_daily_loss": 5000,
    "max_daily_realized_loss": 0,
    "max_consecutive_failures": 3,
    "execution_enabled": True,
    "trading_day_timezone": "America/New_York",
    "order_poll_timeout": 120,
    "ib_bridge_timeout": 15,
    "reconcile_interval": 60,
}

PUBLISH = """
UPDATE executor_control SET leader_id = $1, leader_epoch = 3,
       leader_since = now() - interval '1 hour', leader_heartbeat_at = now() - $2::interval,
       limits = $3::jsonb
WHERE id = 1
"""

INSERT_EXECUTION = """
INSERT INTO executions (id, signal_id, state, reason, symbol, action, order_type, client_order_id,
                        quantity, entry_price, stop_loss, take_profit, risk_amount, position_value,
                        filled_qty, trading_day, attempted_at, submitted_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'BUY', 'LMT', $6, 10, 150, 145, 160, $7, 1500, $8,
        (now() AT TIME ZONE 'America/New_York')::date,
        now() - $9::interval, now() - $9::interval, now() - $9::interval, now() - $9::interval)
"""


def run_sql(url: str, sql: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def add_execution(
    url: str,
    state: str,
    symbol: str,
    risk: str,
    *,
    age: timedelta = timedelta(seconds=1),
    filled: int = 0,
) -> uuid.UUID:
    execution_id = uuid.uuid4()
    reason = "order.unknown: answer lost" if state == "unknown" else None
    run_sql(
        url,
        INSERT_EXECUTION,
        execution_id,
        uuid.uuid4(),
        state,
        reason,
        symbol,
        f"te-{execution_id.hex}",
        Decimal(risk),
        filled,
        age,
    )
    return execution_id


@pytest.fixture(autouse=True)
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This shell's settings differ from the service's on purpose."""
    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAX_DAILY_LOSS", "1000")
    monkeypatch.setenv("MAX_OPEN_POSITIONS", "5")
    monkeypatch.setenv("EXECUTION_ENABLED", "false")
    monkeypatch.setenv("IB_BRIDGE_URL", DEAD_BRIDGE)
    yield
    from trade_executor.observability.logging import configure_logging

    configure_logging("json", "info")


def status_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["status", "--json"]) == 0
    view: dict[str, Any] = loads(capsys.readouterr().out)
    return view


@pytest.fixture
def ledger(db_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, uuid.UUID]:
    monkeypatch.setenv("DATABASE_URL", db_url)
    return {
        "unknown": add_execution(db_url, "unknown", "MSFT", "50.00"),
        "working": add_execution(db_url, "submitted", "AAPL", "665.00"),
        # past its bound: IB_BRIDGE_TIMEOUT 15 + RECONCILE_INTERVAL 60 + a 60 s grace
        "stuck": add_execution(db_url, "submitting", "TSLA", "100.00", age=timedelta(minutes=10)),
        "filled": add_execution(db_url, "filled", "NVDA", "200.00", filled=10),
        "rejected": add_execution(db_url, "rejected", "AMD", "0"),
    }


def test_status_reports_the_service_not_this_shell(
    ledger: dict[str, uuid.UUID], db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_sql(db_url, PUBLISH, "host-a:1234", timedelta(seconds=2), json.dumps(SERVICE_LIMITS))

    async def standby_session() -> dict[str, Any]:
        # A standby's pool session, named as the service names its own.
        conn = await asyncpg.connect(
            db_url, server_settings={"application_name": "trade-executor host-b:5678"}
        )
        try:
            return await anyio.to_thread.run_sync(status_json, capsys)
        finally:
            await conn.close()

    view = asyncio.run(standby_session())
    service = view["service"]
    assert service["running"] is True
    assert service["active"]["instance"] == "host-a:1234"
    assert service["active"]["epoch"] == 3
    assert Decimal(0) <= service["active"]["heartbeat_age_seconds"] < 30
    assert [s["instance"] for s in service["standbys"]] == ["host-b:5678"]
    # The service's limits and switches, not this shell's 1000 / 5 / false.
    assert view["limits"]["max_daily_loss"] == 5000
    assert view["execution_enabled"] is True
    assert view["limits_off"] == ["MAX_OPEN_POSITIONS", "MAX_DAILY_REALIZED_LOSS"]
    # The executor's rule: unknown, submitted, submitting and filled count; rejected does not.
    assert view["daily_risk"] == {
        "used": Decimal("1015.00"),
        "left": Decimal("3985.00"),
        "budget": Decimal(5000),
    }
    assert {e["execution_id"] for e in view["in_flight"]} == {
        str(ledger["unknown"]),
        str(ledger["working"]),
        str(ledger["stuck"]),
    }
    needing = {e["execution_id"]: e["why"] for e in view["needing_operator"]}
    assert set(needing) == {str(ledger["unknown"]), str(ledger["stuck"])}
    assert needing[str(ledger["unknown"])] == "unknown: order.unknown: answer lost"
    assert needing[str(ledger["stuck"])].startswith("submitting for ")
    assert view["positions"]["bridge"] is None and view["positions"]["bridge_error"]
    assert view["as_of"]

    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "active             host-a:1234 (epoch 3)" in text
    assert "daily risk used    1015.00 of 5000.00" in text
    assert "daily risk left    3985.00" in text
    assert "limits off         MAX_OPEN_POSITIONS, MAX_DAILY_REALIZED_LOSS" in text
    assert "need an operator   2" in text
    assert "standby            none connected to this database" in text  # its session closed


def test_a_stale_heartbeat_means_no_running_service(
    ledger: dict[str, uuid.UUID], db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_sql(db_url, PUBLISH, "host-a:1234", timedelta(minutes=5), json.dumps(SERVICE_LIMITS))
    view = status_json(capsys)
    assert view["service"]["running"] is False
    assert view["service"]["active"] is None
    assert view["service"]["last_leader"]["instance"] == "host-a:1234"
    assert view["service"]["note"].startswith(
        "no running service: the last leader (host-a:1234) wrote its heartbeat "
    )
    # What the last leader published still describes the limits it ran with.
    assert view["limits"]["max_daily_loss"] == 5000


def test_without_a_published_leader_status_says_so_and_guesses_nothing(
    ledger: dict[str, uuid.UUID], capsys: pytest.CaptureFixture[str]
) -> None:
    view = status_json(capsys)
    assert view["service"]["running"] is False
    assert view["service"]["note"] == (
        "no leader recorded yet: no instance has published itself in executor_control"
    )
    assert view["limits"] is None and view["execution_enabled"] is None
    assert view["daily_risk"]["budget"] is None and view["daily_risk"]["left"] is None
    assert view["daily_risk"]["used"] == Decimal("1015.00")
    assert "1000" not in json.dumps(view["limits"])  # this shell's MAX_DAILY_LOSS is not shown


# -- against real `trade-executor run` processes ----------------------------------------------


@contextmanager
def service_process(db_url: str, bridge: ThreadedBridge, log: Path) -> Iterator[int]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in ENV_VARIABLES}
    env.pop("NOTIFY_SOCKET", None)
    env.update(
        DATABASE_URL=db_url,
        IB_BRIDGE_URL=bridge.url,
        EXECUTION_ENABLED="true",
        MAX_DAILY_LOSS="4321",
        MAX_OPEN_POSITIONS="0",
        HTTP_PORT="0",
        SWEEP_INTERVAL="1",
        STANDBY_RETRY_INTERVAL="0.5",
        LOG_FORMAT="json",
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "trade_executor", "run"], env=env, stdout=out, stderr=out
        )
    try:
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def logged(log: Path, event: str) -> bool:
    for line in log.read_text().splitlines():
        try:
            if json.loads(line).get("event") == event:
                return True
        except ValueError:
            continue
    return False


async def until(condition: Any, timeout: float = 30) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.1)


@pytest.mark.anyio
async def test_status_names_the_active_and_the_standby_of_real_processes(
    db_url: str,
    bridge: ThreadedBridge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    unknown = await anyio.to_thread.run_sync(
        lambda: add_execution(db_url, "unknown", "MSFT", "50.00")
    )
    host = socket.gethostname()
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with service_process(db_url, bridge, first_log) as first:
        await until(lambda: logged(first_log, "supervisor.ready"))
        with service_process(db_url, bridge, second_log) as second:
            await until(lambda: logged(second_log, "supervisor.standby"))
            with anyio.fail_after(30):  # the standby's pool is open once it reports standby
                while True:
                    view = await anyio.to_thread.run_sync(status_json, capsys)
                    connected = view["service"]["connected_instances"] or []
                    if f"{host}:{second}" in connected:
                        break
                    await anyio.sleep(0.2)
            assert f"{host}:{first}" in connected and f"{host}:{second}" in connected
            assert [e["execution_id"] for e in view["needing_operator"]] == [str(unknown)]
            # The active instance publishes itself (leader columns, heartbeat, limits): a
            # service that stopped writing them fails here (this was an xfail once).
            assert view["service"]["active"] is not None, view["service"]
            assert view["service"]["active"]["instance"] == f"{host}:{first}"
            assert [s["instance"] for s in view["service"]["standbys"]] == [f"{host}:{second}"]
            assert view["limits"]["max_daily_loss"] == 4321  # the service's, not this shell's
            assert view["limits_off"][0] == "MAX_OPEN_POSITIONS"
            assert view["execution_enabled"] is True
