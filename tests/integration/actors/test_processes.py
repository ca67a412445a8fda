"""The real `trade-executor run` processes: two instances on one database, and a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import asyncpg
import pytest

from tests.support import ThreadedBridge, approve, insert_signal, wait_for

pytestmark = pytest.mark.anyio


@contextmanager
def executor_process(
    db_url: str, bridge: ThreadedBridge, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "IB_BRIDGE_URL": bridge.url,
        "EXECUTION_ENABLED": "true",
        "HTTP_PORT": "0",
        "ORDER_POLL_INTERVAL": "0.5",
        "SWEEP_INTERVAL": "1",
        "STANDBY_RETRY_INTERVAL": "0.5",
        "LOG_FORMAT": "json",
    }
    env.pop("NOTIFY_SOCKET", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "trade_executor", "run"], env=env, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def records(log: Path) -> list[dict[str, object]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "event" in record:
            found.append(record)
    return found


def events(log: Path) -> list[str]:
    return [str(record["event"]) for record in records(log)]


async def wait_for_event(log: Path, event: str, timeout: float = 20) -> None:
    with anyio.fail_after(timeout):
        while event not in events(log):
            await anyio.sleep(0.05)


async def test_two_processes_one_active_one_standby_and_takeover_after_sigkill(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log_a, log_b = Path(tmp) / "a.log", Path(tmp) / "b.log"
        with executor_process(db_url, bridge, log_a) as active:
            await wait_for_event(log_a, "supervisor.ready")
            with executor_process(db_url, bridge, log_b) as standby:
                await wait_for_event(log_b, "supervisor.standby")
                first = await insert_signal(conn, "PROCA")
                await approve(conn, first)
                await wait_for(
                    conn, "SELECT order_id FROM trade_approvals WHERE signal_id = $1", first
                )
                # Its log line too (written after the row): a SIGKILL between the two, on a
                # loaded machine, left no `order.submitted` to check below.
                await wait_for_event(log_a, "order.submitted")
                active.send_signal(signal.SIGKILL)
                active.wait(10)
                await wait_for_event(log_b, "supervisor.took_over")
                second = await insert_signal(conn, "PROCB")
                await approve(conn, second)
                await wait_for(
                    conn, "SELECT order_id FROM trade_approvals WHERE signal_id = $1", second
                )
                standby.send_signal(signal.SIGTERM)
                assert standby.wait(20) == 0
        assert "order.submitted" not in events(log_b)[: events(log_b).index("supervisor.took_over")]
        # Every line of an execution carries its ids (CONTRACT section 9).
        by_event = {str(r["event"]): r for r in records(log_a)}
        for event in ("approval.received", "order.submitted"):
            record = by_event[event]
            assert record["signal_id"] == str(first) and record["symbol"] == "PROCA"
            assert record["execution_id"] and record["level"] == "info"
            assert str(record["timestamp"]).endswith("Z")
        assert by_event["order.submitted"]["order_id"]
    orders = bridge.parent_orders()
    assert sorted(o["symbol"] for o in orders) == ["PROCA", "PROCB"]
    assert await conn.fetchval("SELECT count(*) FROM executions") == 2


async def test_a_sigterm_stops_the_process_cleanly(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "run.log"
        with executor_process(db_url, bridge, log) as process:
            await wait_for_event(log, "supervisor.ready")
            process.send_signal(signal.SIGTERM)
            assert process.wait(20) == 0
        seen = events(log)
        assert "supervisor.stopping" in seen and seen[-1] == "supervisor.stopped"
