"""The chaos harness: the real `trade-executor run` as a subprocess, killed and restarted at will,
against PostgreSQL and a paper bridge that lives in a thread of the test process (so it survives
the executor's SIGKILL and can be asked for the truth: every order it ever took).

`check_invariants` is the heart of the chaos suite: it compares the ledger with what the bridge
actually received (CONTRACT section 5). The fixtures (`harness`) are in tests/chaos/conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import asyncpg

from tests.support import ThreadedBridge

ROOT = Path(__file__).resolve().parents[2]

AT_BROKER = ("submitted", "partially_filled", "filled", "unknown")
FINAL = ("filled", "cancelled", "rejected", "failed", "dry_run")
SETTLED = (*FINAL, "unknown")
WORKING = ("submitted", "partially_filled")

# Small, exact trades: entry 100, stop 99 -> risk 1 a share; 100000 x 0.20 / 100 = 200 shares,
# risk 200.00. With the default MAX_DAILY_LOSS of 1000, five of them fill the day's budget.
ENTRY, STOP, TARGET = "100", "99", "102"
SHARES, RISK = 200, Decimal("200.00")

BASE_ENV = {
    "EXECUTION_ENABLED": "true",
    "HTTP_PORT": "0",
    "HTTP_HOST": "127.0.0.1",
    "ORDER_POLL_INTERVAL": "0.2",
    "ORDER_POLL_TIMEOUT": "60",
    "SWEEP_INTERVAL": "1",
    "LISTENER_HEALTH_INTERVAL": "0.5",
    "STANDBY_RETRY_INTERVAL": "0.5",
    "CANCELLED_RECHECK_DELAY": "0.1",
    "SHUTDOWN_GRACE": "5",
    "IB_BRIDGE_TIMEOUT": "2",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "info",
    "API_TOKEN": "chaos-token",
}


# ---- the process ---------------------------------------------------------------------------


@dataclass
class ExecutorProcess:
    """One `trade-executor run` subprocess; its stdout (JSON lines) and stderr go to files."""

    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def lines(self) -> list[str]:
        return self.stdout_path.read_text(errors="replace").splitlines()

    def records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for line in self.lines():
            try:
                record = json.loads(line)
            except ValueError:
                record = {"event": "<not json>", "level": "unparsable", "line": line}
            out.append(record)
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == name]

    def http_port(self) -> int | None:
        for record in self.events("api.listening"):
            return int(record["port"])
        return None

    def returncode(self) -> int | None:
        return self.popen.poll()

    async def wait_event(self, name: str, timeout: float = 30) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            while True:
                found = self.events(name)
                if found:
                    return found[0]
                if self.popen.poll() is not None:
                    raise AssertionError(
                        f"process exited ({self.popen.returncode}) before {name!r}:\n"
                        + "\n".join(self.lines()[-30:])
                        + self.stderr_path.read_text(errors="replace")[-3000:]
                    )
                await anyio.sleep(0.05)

    async def wait_ready(self, timeout: float = 30) -> None:
        await self.wait_event("supervisor.ready", timeout)

    async def wait_exit(self, timeout: float = 30) -> int:
        with anyio.fail_after(timeout):
            while self.popen.poll() is None:
                await anyio.sleep(0.05)
        return self.popen.returncode

    async def stop(self, timeout: float = 20) -> int:
        """SIGTERM, as systemd does; the contract says it exits 0."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return await self.wait_exit(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


@dataclass
class Harness:
    """Starts executor processes on one database and bridge; remembers every one it started."""

    db_url: str
    bridge_url: str
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[ExecutorProcess] = field(default_factory=list)

    def start(
        self,
        *,
        fault: str | None = None,
        fault_after: int = 0,
        database_url: str | None = None,
        environment: Mapping[str, str] | None = None,
        **env: str,
    ) -> ExecutorProcess:
        """Start `trade-executor run`; `environment` and the keyword variables are added to the
        base environment (a crash point via `fault`, armed after `fault_after` passes)."""
        values = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRADE_EXECUTOR")},
            **BASE_ENV,
            "DATABASE_URL": database_url or self.db_url,
            "IB_BRIDGE_URL": self.bridge_url,
            **self.env,
            **(environment or {}),
            **env,
        }
        values.pop("NOTIFY_SOCKET", None)
        if fault is not None:
            values["TRADE_EXECUTOR_FAULT"] = fault
            values["TRADE_EXECUTOR_FAULT_AFTER"] = str(fault_after)
        n = len(self.processes)
        stdout_path = self.tmp / f"executor-{n}.out"
        stderr_path = self.tmp / f"executor-{n}.err"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            popen = subprocess.Popen(
                [sys.executable, "-m", "trade_executor", "run"],
                env=values,
                stdout=out,
                stderr=err,
                cwd=ROOT,
            )
        process = ExecutorProcess(popen, stdout_path, stderr_path)
        self.processes.append(process)
        return process

    def all_lines(self) -> list[str]:
        lines: list[str] = []
        for process in self.processes:
            lines += process.lines()
            lines += process.stderr_path.read_text(errors="replace").splitlines()
        return lines

    def all_records(self) -> list[dict[str, Any]]:
        return [r for p in self.processes for r in p.records()]

    def errors(self) -> list[dict[str, Any]]:
        return [
            r
            for r in self.all_records()
            if r.get("level") in ("error", "critical", "exception", "unparsable")
        ]

    def shutdown(self) -> None:
        for process in self.processes:
            process.kill()


# ---- the truth -----------------------------------------------------------------------------


@dataclass
class Snapshot:
    executions: list[asyncpg.Record]
    orders: list[dict[str, Any]]
    parents: list[dict[str, Any]]

    def by_signal(self) -> dict[Any, asyncpg.Record]:
        return {e["signal_id"]: e for e in self.executions}

    def states(self) -> Counter[str]:
        return Counter(e["state"] for e in self.executions)


async def check_invariants(
    conn: asyncpg.Connection,
    bridge: ThreadedBridge,
    *,
    max_daily_loss: Decimal | int = Decimal(1000),
    max_open_positions: int | None = 5,
    allow_working: bool = True,
) -> Snapshot:
    """CONTRACT section 5 against the bridge's own book. Returns what it looked at."""
    executions = await conn.fetch("SELECT * FROM executions ORDER BY created_at")
    # Each parent's `order_ref` is the one its POST was sent with (from the request log): the
    # jax bridge, like the real one, keeps none of the client's.
    orders = bridge.orders(sent_refs=True)
    parents = [o for o in orders if o.get("parent_id") in (None, 0)]
    by_ref = {e["client_order_id"]: e for e in executions}

    # 1. At most one order per signal: by the order_ref sent and by symbol (every test signal
    #    has its own symbol).
    refs = Counter(o["order_ref"] for o in parents)
    assert all(n == 1 for n in refs.values()), f"duplicate orders by order_ref: {refs}"
    symbols = Counter(o["symbol"] for o in parents)
    assert all(n == 1 for n in symbols.values()), f"duplicate orders by symbol: {symbols}"
    assert len({e["signal_id"] for e in executions}) == len(executions)

    # 2. Every bridge order belongs to an execution that reached the broker.
    for order in parents:
        execution = by_ref.get(order["order_ref"])
        assert execution is not None, f"bridge order without an execution: {order}"
        assert execution["state"] in (*AT_BROKER, "cancelled"), (dict(execution), order)
        if execution["state"] != "unknown":
            assert execution["order_id"] == order["order_id"], (dict(execution), order)
        assert execution["quantity"] == order["quantity"], (dict(execution), order)
        assert execution["symbol"] == order["symbol"]
        assert execution["action"] == order["action"]

    # 3. Every execution with an order id has that order at the bridge; settled or polled.
    order_ids = {o["order_id"]: o for o in parents}
    allowed = SETTLED + WORKING if allow_working else SETTLED
    for execution in executions:
        assert execution["state"] in allowed, dict(execution)
        if execution["state"] in ("rejected", "failed", "unknown"):
            assert execution["reason"], dict(execution)
        if execution["order_id"] is not None:
            listed = order_ids.get(execution["order_id"])
            assert listed is not None, f"execution's order is not at the bridge: {dict(execution)}"
            assert listed["order_ref"] == execution["client_order_id"]
        if execution["state"] in ("submitted", "partially_filled", "filled"):
            assert execution["order_id"] is not None, dict(execution)
        if execution["state"] == "filled":
            assert order_ids[execution["order_id"]]["status"] == "Filled"
            assert execution["filled_qty"] == execution["quantity"]
        if execution["state"] in ("rejected", "failed"):
            assert execution["order_id"] is None, dict(execution)
            assert execution["client_order_id"] not in refs, dict(execution)

    # 4. trades and trade_approvals agree with the ledger and the bridge.
    trades = {t["id"]: t for t in await conn.fetch("SELECT * FROM trades")}
    per_signal = Counter(t["signal_id"] for t in trades.values())
    assert all(n == 1 for n in per_signal.values()), per_signal
    for execution in executions:
        trade = trades.get(str(execution["id"]))
        if execution["order_id"] is None:
            assert trade is None, (dict(execution), trade)
            continue
        assert trade is not None, f"no trades row for {dict(execution)}"
        risk = json.loads(trade["risk"])
        assert risk["order_id"] == str(execution["order_id"])
        assert int(risk["quantity"]) == execution["quantity"]
        assert Decimal(str(risk["amount"])) == execution["risk_amount"]
        assert trade["symbol"] == execution["symbol"]
        assert trade["filled_qty"] == execution["filled_qty"], (dict(trade), dict(execution))
        linked = await conn.fetch(
            "SELECT order_id FROM trade_approvals WHERE signal_id = $1 AND approved",
            execution["signal_id"],
        )
        assert {r["order_id"] for r in linked} == {str(execution["order_id"])}
        bridge_order = order_ids[execution["order_id"]]
        assert bridge_order["filled_qty"] >= execution["filled_qty"]

    # 5. The daily budget is exact: what counts is what the bridge got.
    counted = [
        e
        for e in executions
        if e["state"] in AT_BROKER or (e["state"] == "cancelled" and e["filled_qty"] > 0)
    ]
    used = sum((e["risk_amount"] for e in counted), Decimal(0))
    assert used <= max_daily_loss, f"daily budget exceeded: {used} > {max_daily_loss}"
    at_bridge = {o["order_ref"] for o in parents}
    for execution in counted:
        if execution["state"] != "unknown":
            assert execution["client_order_id"] in at_bridge, dict(execution)
    bridge_risk = sum(
        (
            by_ref[o["order_ref"]]["risk_amount"]
            for o in parents
            if not (by_ref[o["order_ref"]]["state"] == "cancelled" and o["filled_qty"] == 0)
        ),
        Decimal(0),
    )
    unknown_not_at_bridge = sum(
        (e["risk_amount"] for e in counted if e["client_order_id"] not in at_bridge),
        Decimal(0),
    )
    assert used == bridge_risk + unknown_not_at_bridge

    # 6. Open positions: working or unknown executions never exceed the limit.
    if max_open_positions is not None:
        open_now = [e for e in executions if e["state"] in (*WORKING, "unknown", "submitting")]
        assert len(open_now) <= max_open_positions, len(open_now)
    return Snapshot(list(executions), orders, parents)


async def wait_settled(
    conn: asyncpg.Connection,
    signal_ids: list[Any],
    *,
    timeout: float = 30,
    working_ok: bool = True,
    process: ExecutorProcess | None = None,
) -> list[asyncpg.Record]:
    """Wait until every signal has an execution in a settled (or, if allowed, working) state.
    With `process`, fail at once if that process exits meanwhile."""
    allowed = list(SETTLED + WORKING) if working_ok else list(SETTLED)
    deadline = time.monotonic() + timeout
    rows: list[asyncpg.Record] = []
    while time.monotonic() < deadline:
        rows = await conn.fetch(
            "SELECT * FROM executions WHERE signal_id = ANY($1::uuid[]) AND state = ANY($2)",
            signal_ids,
            allowed,
        )
        if len(rows) == len(signal_ids):
            return rows
        if process is not None and process.returncode() is not None:
            tail = [r for r in process.records() if r.get("level") in ("error", "critical")]
            raise AssertionError(
                f"the executor exited ({process.returncode()}) with "
                f"{len(rows)}/{len(signal_ids)} settled; last errors: {tail[-2:]}"
            )
        await anyio.sleep(0.05)
    states = await conn.fetch(
        "SELECT signal_id, state, reason FROM executions WHERE signal_id = ANY($1::uuid[])",
        signal_ids,
    )
    raise AssertionError(
        f"{len(rows)}/{len(signal_ids)} settled; ledger: {[dict(r) for r in states]}"
    )
