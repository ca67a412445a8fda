"""A PostgreSQL failover with two real servers (CONTRACT section 5, "Database failover"): a primary
and a streaming standby on loopback (tests/support/pgpair.py), two `trade-executor run` processes
whose DATABASE_URL names both, a burst of approvals in flight against the paper bridge, the
primary SIGKILLed and the standby promoted with `pg_ctl promote`.

- Synchronous replication: 0 duplicate orders at the bridge, 0 lost approvals (every approval
  whose commit returned is executed, once), 0 stranded executions; leadership taken again on the
  promoted server with the next epoch, recovery run there; no durability warning at start-up
  (and one after the promotion: the new primary has no standby of its own).
- Asynchronous replication: the start-up warning fires; the standby is cut off (a lagging
  replica, made deterministic) while the executor claims and orders approvals it had already
  received; after the promotion those claims and intents are gone, and the new leader orders the
  same approvals again: the duplicates this test counts are what asynchronous replication loses.

The times (kill to promotion, to the new leader, to the next order) are printed (`pytest -s`);
docs/RELIABILITY.md has the figures. About 5 s each, in `make test`; `make test-failover` runs
this file alone with the figures shown (`FAILOVER_RUNS=3` three times in a row), and .ci/run runs
it after `make test`. Skipped where no PostgreSQL server binaries are installed.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest

from tests.support import INSERT_APPROVAL, INSERT_SIGNAL, ThreadedBridge
from tests.support.chaos import (
    ENTRY,
    STOP,
    TARGET,
    ExecutorProcess,
    Harness,
    check_invariants,
    wait_settled,
)
from tests.support.pgpair import PgPair, pg_pair, server_binaries
from trade_executor.store.migrate import migrate

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        server_binaries() is None, reason="no PostgreSQL server binaries (initdb, pg_basebackup)"
    ),
]

DATABASE = "trading"
BURST = 20  # approvals of the synchronous run's burst
KILL_AFTER_ORDERS = 4  # the primary dies once this many orders reached the bridge
# Between the kill and the promotion: the time a manager (Patroni's TTL) takes to decide, here
# short; meanwhile no primary answers anyone.
OUTAGE = 1.0
GAP = 0.05  # seconds between approvals: the kill lands among them
AFTER = 3  # approvals made after the promotion
CUT_OFF = 5  # approvals the asynchronous run's executor handles while the standby lags
ENV = {
    # Only the failover is under test: no limit binds (0 = off), every approval is ordered.
    "MAX_OPEN_POSITIONS": "0",
    "MAX_DAILY_LOSS": "0",
    "MAX_CONSECUTIVE_FAILURES": "0",
}
STRANDED = "SELECT count(*) FROM executions WHERE state IN ('received', 'submitting')"


@pytest.fixture
def bridge_options() -> dict[str, Any]:
    return {"buying_power": Decimal(100_000_000)}


# ---- helpers ---------------------------------------------------------------------------------


async def _prepare(pair: PgPair) -> str:
    """The database on the primary, migrated, replicated; the service's DATABASE_URL."""
    conn = await asyncpg.connect(pair.primary.url())
    try:
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        state = "sync" if pair.synchronous else "async"
        with anyio.fail_after(30):
            while not await conn.fetchval(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' "
                "AND sync_state = $1",
                state,
            ):
                await anyio.sleep(0.05)
    finally:
        await conn.close()
    await migrate(pair.primary.url(DATABASE))
    return pair.multi_host_url(DATABASE)


async def _approve(conn: asyncpg.Connection, signal_id: uuid.UUID, symbol: str) -> None:
    """A signal and its approval in one transaction; again after an in-doubt commit (the
    connection died during COMMIT) only if the first did not land."""
    async with conn.transaction():
        if await conn.fetchval("SELECT 1 FROM strategy_signals WHERE id = $1", signal_id):
            return
        expires = datetime.now(UTC) + timedelta(hours=1)
        await conn.execute(
            INSERT_SIGNAL,
            signal_id,
            symbol,
            "BUY",
            Decimal(ENTRY),
            Decimal(STOP),
            Decimal(TARGET),
            expires,
        )
        await conn.execute(INSERT_APPROVAL, uuid.uuid4(), signal_id, True)


class Approver:
    """The approving application: one connection over DATABASE_URL's hosts, retried through
    the failover. `committed` holds the signals whose approval's COMMIT returned."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.committed: list[uuid.UUID] = []
        self.retries = 0
        self._conn: asyncpg.Connection | None = None

    async def approve(self, prefix: str) -> uuid.UUID:
        signal_id = uuid.uuid4()
        symbol = prefix + signal_id.hex[:6].upper()
        with anyio.fail_after(60):
            while True:
                try:
                    if self._conn is None or self._conn.is_closed():
                        self._conn = await asyncpg.connect(self.url, timeout=2)
                    await _approve(self._conn, signal_id, symbol)
                    break
                except Exception:  # any failure of the connection: try again
                    self.retries += 1
                    if self._conn is not None:
                        self._conn.terminate()
                    self._conn = None
                    await anyio.sleep(0.05)
        self.committed.append(signal_id)
        return signal_id

    async def stream(self, count: int, prefix: str) -> None:
        for _ in range(count):
            await self.approve(prefix)
            await anyio.sleep(GAP)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


async def _wait_orders(bridge: ThreadedBridge, count: int, timeout: float = 30) -> None:
    with anyio.fail_after(timeout):
        while len(bridge.order_posts()) < count:
            await anyio.sleep(0.01)


async def _wait_event_after(
    processes: list[ExecutorProcess], name: str, since: datetime, timeout: float = 60
) -> tuple[ExecutorProcess, dict[str, Any]]:
    """The first `name` event any of `processes` logged after `since`."""
    with anyio.fail_after(timeout):
        while True:
            for process in processes:
                for record in process.events(name):
                    if _at(record) > since:
                        return process, record
            await anyio.sleep(0.02)


def _at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))


def _posts_after(bridge: ThreadedBridge, monotonic_at: float) -> list[float]:
    stamps = (float(r["received_at"]) for r in bridge.order_posts())
    return sorted(stamp for stamp in stamps if stamp > monotonic_at)


def _durable_gauge(process: ExecutorProcess) -> float:
    """`trade_executor_database_commit_durable` as the process's /metrics serves it."""
    answer = httpx.get(f"http://127.0.0.1:{process.http_port()}/metrics", timeout=5)
    for line in answer.text.splitlines():
        if line.startswith("trade_executor_database_commit_durable "):
            return float(line.split()[1])
    raise AssertionError("no trade_executor_database_commit_durable in /metrics")


async def _start_pair_of_instances(harness: Harness) -> list[ExecutorProcess]:
    first = harness.start(environment=ENV)
    await first.wait_ready()
    second = harness.start(environment=ENV)
    await second.wait_event("supervisor.standby")
    return [first, second]


# ---- synchronous replication: nothing lost, nothing twice -------------------------------------


async def test_failover_with_a_synchronous_standby(bridge: ThreadedBridge, tmp_path: Path) -> None:
    with pg_pair(synchronous=True) as pair:
        url = await _prepare(pair)
        harness = Harness(url, bridge.url, tmp_path)
        approver = Approver(url)
        try:
            await _run_synchronous(pair, harness, bridge, approver)
        finally:
            await approver.close()
            harness.shutdown()


async def _run_synchronous(
    pair: PgPair, harness: Harness, bridge: ThreadedBridge, approver: Approver
) -> None:
    processes = await _start_pair_of_instances(harness)
    for process in processes:  # a synchronous standby streaming: no warning
        assert process.events("supervisor.durability_at_risk") == [], process.lines()[-5:]
        (connected,) = process.events("supervisor.database")
        assert connected["database"].startswith(f"127.0.0.1:{pair.primary.port} (primary")
        assert _durable_gauge(process) == 1
    epoch_before = processes[0].events("supervisor.leader_epoch")[0]["epoch"]

    async with anyio.create_task_group() as tg:
        tg.start_soon(approver.stream, BURST, "FS")
        await _wait_orders(bridge, KILL_AFTER_ORDERS)
        killed_wall, killed = datetime.now(UTC), time.monotonic()
        committed_at_kill = len(approver.committed)
        posts_at_kill = len(bridge.order_posts())
        pair.kill_primary()
        await anyio.sleep(OUTAGE)
        posts_in_outage = len(bridge.order_posts()) - posts_at_kill
        # In a thread: the approver goes on trying meanwhile, as a real application would.
        await anyio.to_thread.run_sync(pair.promote_standby)
        promoted = time.monotonic()
    for _ in range(AFTER):  # the service works on the promoted server
        await approver.approve("FA")

    winner, took = await _wait_event_after(processes, "supervisor.leader_epoch", killed_wall)
    # The old leader stopped acting when its lock's connection died, before any promotion: a
    # deposed leader holds no actors (nothing queued, nothing polled) while no primary answers.
    _, lost_line = await _wait_event_after(processes[:1], "supervisor.leadership_lost", killed_wall)
    noticed = (_at(lost_line) - killed_wall).total_seconds()
    assert noticed < OUTAGE, lost_line
    # Leadership taken again on the promoted server, with the next epoch: the increment made
    # on the old primary survived (synchronous), and the lock was taken anew.
    assert took["epoch"] == epoch_before + 1, took
    assert took["database"].startswith(f"127.0.0.1:{pair.standby.port} (primary"), took
    _, recovered = await _wait_event_after([winner], "recovery.done", _at(took))
    # The check runs again on the new primary: it has no standby of its own.
    _, warned = await _wait_event_after([winner], "supervisor.durability_at_risk", killed_wall)
    assert "synchronous_standby_names is empty" in warned["reason"]

    conn = await asyncpg.connect(url_of(pair))
    try:
        await wait_settled(conn, approver.committed, timeout=60)
        await _wait_zero(conn, STRANDED)
        snapshot = await check_invariants(
            conn, bridge, max_daily_loss=Decimal(10**9), max_open_positions=None
        )
        by_signal = snapshot.by_signal()
        lost = [s for s in approver.committed if s not in by_signal]
        refs = Counter(o["order_ref"] for o in snapshot.parents)
        duplicates = sum(n - 1 for n in refs.values())
        assert lost == [] and duplicates == 0
        assert len(snapshot.parents) == len(approver.committed), snapshot.states()
        assert await conn.fetchval("SELECT leader_epoch FROM executor_control") == took["epoch"]
        # While no primary answered, nothing new was sent: an order that reached the bridge
        # after the kill and before the new leader had its intent committed before the kill
        # (a POST already on its way).
        took_at = killed + (_at(took) - killed_wall).total_seconds()
        by_ref = {e["client_order_id"]: e for e in snapshot.executions}
        in_outage = [o for o in snapshot.parents if killed < float(o["received_at"]) < took_at]
        for order in in_outage:
            assert by_ref[order["order_ref"]]["attempted_at"] < killed_wall, order
    finally:
        await conn.close()
    assert _durable_gauge(winner) == 0  # the promoted server has no standby
    after = _posts_after(bridge, took_at)
    print(
        f"\nfailover (synchronous): {len(approver.committed)} approvals committed "
        f"({committed_at_kill} before the kill, {approver.retries} retries through the outage), "
        f"{len(snapshot.parents)} orders ({len(in_outage)} taken by the bridge after the kill, "
        "its intent committed before it), "
        f"0 duplicate, 0 lost, 0 stranded; {posts_in_outage} order POSTs sent during the "
        f"{OUTAGE} s without a primary (the old leader stood down {noticed:.3f} s after the "
        f"kill); promotion done {promoted - killed:.3f} s after the "
        f"kill, new leader (epoch {took['epoch']}) {(_at(took) - killed_wall).total_seconds():.3f}"
        f" s, recovery done {(_at(recovered) - killed_wall).total_seconds():.3f} s "
        f"({recovered['open_executions']} open executions re-examined), next order "
        f"{after[0] - killed:.3f} s after the kill "
        f"({after[0] - promoted:.3f} s after the promotion)"
    )
    assert all(p.returncode() is None for p in harness.processes)
    # The one expected: the old leader's lock connection died with the primary.
    unexpected = [r for r in harness.errors() if r["event"] != "supervisor.leadership_lost"]
    assert not unexpected, unexpected


def url_of(pair: PgPair) -> str:
    return pair.multi_host_url(DATABASE)


async def _wait_zero(conn: asyncpg.Connection, query: str, timeout: float = 60) -> None:
    with anyio.fail_after(timeout):
        while await conn.fetchval(query):
            await anyio.sleep(0.05)


# ---- asynchronous replication: what a promotion loses ----------------------------------------


async def test_failover_with_asynchronous_replication_loses_commits(
    bridge: ThreadedBridge, tmp_path: Path
) -> None:
    with pg_pair(synchronous=False) as pair:
        url = await _prepare(pair)
        harness = Harness(url, bridge.url, tmp_path)
        approver = Approver(url)
        try:
            await _run_asynchronous(pair, harness, bridge, approver)
        finally:
            await approver.close()
            harness.shutdown()


async def _run_asynchronous(
    pair: PgPair, harness: Harness, bridge: ThreadedBridge, approver: Approver
) -> None:
    # The approvals reach the standby; then it is cut off (primary_conninfo emptied: a replica
    # that lags, for as long as the test wants) before the executor sees them.
    for _ in range(CUT_OFF):
        await approver.approve("AS")
    primary = await asyncpg.connect(pair.primary.url())
    standby = await asyncpg.connect(pair.standby.url())
    try:
        lsn = await primary.fetchval("SELECT pg_current_wal_lsn()")
        with anyio.fail_after(30):
            while not await standby.fetchval("SELECT pg_last_wal_replay_lsn() >= $1", lsn):
                await anyio.sleep(0.02)
        await standby.execute("ALTER SYSTEM SET primary_conninfo = ''")
        await standby.execute("SELECT pg_reload_conf()")
        with anyio.fail_after(30):
            while await primary.fetchval("SELECT count(*) FROM pg_stat_replication"):
                await anyio.sleep(0.05)
    finally:
        await primary.close()
        await standby.close()

    processes = await _start_pair_of_instances(harness)
    for process in processes:  # the start-up warning fires, one sentence, and the gauge
        assert _durable_gauge(process) == 0
        (warned,) = process.events("supervisor.durability_at_risk")
        assert warned["reason"] == (
            "synchronous_standby_names is empty (replication is asynchronous): a commit "
            "(an intent, a claim, a new epoch) may be lost if a standby is promoted"
        )
    conn = await asyncpg.connect(pair.primary.url(DATABASE))
    try:
        await wait_settled(conn, approver.committed, timeout=60)
    finally:
        await conn.close()
    ordered_before = len(bridge.parent_orders())
    assert ordered_before == CUT_OFF

    killed_wall, killed = datetime.now(UTC), time.monotonic()
    pair.kill_primary()
    await anyio.sleep(OUTAGE)
    await anyio.to_thread.run_sync(pair.promote_standby)
    promoted = time.monotonic()
    _, took = await _wait_event_after(processes, "supervisor.leader_epoch", killed_wall)

    conn = await asyncpg.connect(url_of(pair))
    try:
        await wait_settled(conn, approver.committed, timeout=60)
        await _wait_zero(conn, STRANDED)
        executions = await conn.fetch("SELECT client_order_id FROM executions")
        epoch_now = await conn.fetchval("SELECT leader_epoch FROM executor_control")
    finally:
        await conn.close()
    parents = bridge.parent_orders(sent_refs=True)
    symbols = Counter(o["symbol"] for o in parents)
    duplicates = sum(n - 1 for n in symbols.values())
    refs = {e["client_order_id"] for e in executions}
    orphans = [o for o in parents if o["order_ref"] not in refs]
    # What the promotion lost: the first leader's epoch, its claims and intents. The approvals
    # (replicated before the cut) were ordered again: one duplicate order per approval.
    assert took["epoch"] == 1, took  # the epoch the first leader took was lost with the primary
    assert epoch_now == 1
    assert duplicates == CUT_OFF, symbols
    assert len(orphans) == CUT_OFF  # orders at the bridge the ledger no longer knows
    after = _posts_after(bridge, killed)
    print(
        f"\nfailover (asynchronous, standby lagging): {CUT_OFF} approvals executed on the old "
        f"primary were lost with it (claims, intents, the leader's epoch); after the promotion "
        f"({promoted - killed:.3f} s) the new leader (epoch {took['epoch']} again, "
        f"{(_at(took) - killed_wall).total_seconds():.3f} s) ordered them again: {duplicates} "
        f"duplicate orders, {len(orphans)} bridge orders without a ledger row; next order "
        f"{after[0] - killed:.3f} s after the kill"
    )
