"""Fencing and leadership on the real PostgreSQL (CONTRACT section 5, "Fencing", "Two instances";
section 4, executor_control; section 10, signals).

- the store: a claim or intent write fenced with a stale epoch changes nothing, and the epoch
  check is exact under concurrency (a takeover waits for a claim that passed the check);
- the lock: a takeover records epoch, identity, heartbeat and limits; the loss of the lock's
  connection is noticed through asyncpg's termination listener, a takeover by a heartbeat;
- the service: its lock connection terminated from outside while the process lives: the actors
  stop at once, the next takeover has a new epoch; SIGHUP and SIGINT stop the process as SIGTERM
  does (STOPPING=1, drained, exit 0).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from structlog.testing import capture_logs

from tests.support import (
    ThreadedBridge,
    approve,
    insert_signal,
    make_settings,
    running_service,
    wait_for,
)
from trade_executor.domain.execution import Changes
from trade_executor.domain.states import ExecutionState, Transition
from trade_executor.service.effective_limits import effective_limits
from trade_executor.store import queries as q
from trade_executor.store.errors import Fenced
from trade_executor.store.leadership import (
    TAKE_OVER,
    LeadershipLost,
    PgLeaderLock,
    this_instance,
)
from trade_executor.store.postgres import PgStore, create_pool
from trade_executor.store.protocol import Claimed

pytestmark = pytest.mark.anyio

DEADLINE = 20.0  # a hang guard, never a measured duration

LOCK_BACKEND = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'trade-executor leader'
"""


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[PgStore]:
    pool = await create_pool(db_url)
    try:
        yield PgStore(pool)
    finally:
        await pool.close()


async def new_approval(conn: asyncpg.Connection, prefix: str = "F") -> tuple[uuid.UUID, uuid.UUID]:
    signal_id = await insert_signal(conn, prefix + uuid.uuid4().hex[:6].upper())
    return signal_id, await approve(conn, signal_id)


async def take_over(conn: asyncpg.Connection, leader: str = "other:1") -> int:
    """What another instance's takeover writes (without its lock)."""
    return int(await conn.fetchval(TAKE_OVER, leader, "{}"))


# -- the store --------------------------------------------------------------------------------


async def test_a_fenced_claim_inserts_nothing(store: PgStore, conn: asyncpg.Connection) -> None:
    store.fence(await take_over(conn))
    await take_over(conn)  # another instance leads now
    _, approval_id = await new_approval(conn)
    refused: list[Fenced] = []
    store.fence(store.epoch, on_fenced=refused.append)

    with pytest.raises(Fenced) as raised:
        await store.claim(approval_id, uuid.uuid4(), "te-fenced")

    assert (raised.value.epoch, raised.value.current) == (1, 2)
    assert refused == [raised.value]  # the service is told at once
    assert await conn.fetchval("SELECT count(*) FROM executions") == 0
    assert await conn.fetchval("SELECT count(*) FROM execution_events") == 0


async def test_a_fenced_intent_changes_nothing(store: PgStore, conn: asyncpg.Connection) -> None:
    store.fence(await take_over(conn))
    signal_id, approval_id = await new_approval(conn)
    claimed = await store.claim(approval_id, uuid.uuid4(), "te-intent")
    assert isinstance(claimed, Claimed)
    before = await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", signal_id)
    await take_over(conn)

    with pytest.raises(Fenced):
        await store.apply(claimed.execution.id, Transition.BEGIN_SUBMIT, Changes(quantity=133))

    after = await conn.fetchrow("SELECT * FROM executions WHERE signal_id = $1", signal_id)
    assert after is not None and before is not None
    assert dict(after) == dict(before)
    kinds = await conn.fetch("SELECT kind FROM execution_events ORDER BY id")
    assert [r["kind"] for r in kinds] == ["execution.claimed"]


async def test_the_leading_epoch_claims_and_writes_its_intent(
    store: PgStore, conn: asyncpg.Connection
) -> None:
    await take_over(conn)
    store.fence(await take_over(conn))
    _, approval_id = await new_approval(conn)
    claimed = await store.claim(approval_id, uuid.uuid4(), "te-leading")
    assert isinstance(claimed, Claimed)
    intent = await store.apply(claimed.execution.id, Transition.BEGIN_SUBMIT, Changes(quantity=5))
    assert intent.state is ExecutionState.SUBMITTING and intent.quantity == 5


async def test_a_takeover_waits_for_a_claim_that_passed_the_check(
    conn: asyncpg.Connection, db_url: str
) -> None:
    """The race the FOR SHARE closes: a claim that passed the epoch check commits before the
    takeover does, so the new leader's recovery sees it; a claim after it is fenced."""
    epoch = await take_over(conn)
    claimer = await asyncpg.connect(db_url)
    taker = await asyncpg.connect(db_url)
    try:
        _, approval_id = await new_approval(conn)
        transaction = claimer.transaction()
        await transaction.start()
        row = await claimer.fetchrow(q.CLAIM, approval_id, uuid.uuid4(), "te-race", epoch)
        assert row is not None
        assert row["fence_ok"] and row["e_id"] is not None
        taker_pid = taker.get_server_pid()
        async with anyio.create_task_group() as tg:
            results: list[int] = []

            async def takeover() -> None:
                results.append(await take_over(taker, "new:2"))

            tg.start_soon(takeover)
            # The takeover is blocked on the claim's share lock (the server says so).
            await wait_for(
                conn,
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                taker_pid,
            )
            await transaction.commit()
        assert results == [epoch + 1]
        _, late_approval = await new_approval(conn)
        late = await conn.fetchrow(q.CLAIM, late_approval, uuid.uuid4(), "te-late", epoch)
        assert late is not None
        assert not late["fence_ok"] and late["e_id"] is None
        assert await conn.fetchval("SELECT count(*) FROM executions") == 1
    finally:
        await claimer.close()
        await taker.close()


# -- the lock ---------------------------------------------------------------------------------


async def test_a_takeover_records_epoch_identity_heartbeat_and_limits(
    db_url: str, bridge: ThreadedBridge, store: PgStore, conn: asyncpg.Connection
) -> None:
    settings = make_settings(db_url, bridge, max_open_positions=0, max_daily_loss=250)
    limits = effective_limits(settings)
    first = PgLeaderLock(db_url, leader_id="host-a:1", limits=limits)
    second = PgLeaderLock(db_url, leader_id="host-b:2")
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()  # a standby takes no epoch
        leader = await store.leader()
        assert leader is not None
        assert (leader.leader_id, leader.epoch, first.epoch) == ("host-a:1", 1, 1)
        assert leader.since == first.since and leader.heartbeat_at == leader.since
        assert leader.limits == json.loads(json.dumps(limits))
        assert leader.limits is not None
        assert leader.limits["max_daily_loss"] == "250"
        assert leader.limits["off"] == ["max_open_positions", "max_daily_realized_loss"]

        await first.check(timeout=DEADLINE)
        beat = await store.leader()
        assert beat is not None and beat.heartbeat_at is not None and leader.since is not None
        assert beat.heartbeat_at > leader.since
    finally:
        await first.release()
        await second.release()


async def test_a_terminated_lock_connection_is_noticed_and_the_next_leader_has_a_new_epoch(
    db_url: str, conn: asyncpg.Connection
) -> None:
    first = PgLeaderLock(db_url, leader_id="host-a:1")
    second = PgLeaderLock(db_url, leader_id="host-b:2")
    try:
        assert await first.try_acquire()
        [pid] = [r["pid"] for r in await conn.fetch(LOCK_BACKEND)]
        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                lost: list[str] = []

                async def hold() -> None:
                    # A heartbeat interval far longer than the test: only the termination
                    # listener can end this.
                    try:
                        await first.hold(interval=3600, timeout=DEADLINE)
                    except LeadershipLost as error:
                        lost.append(str(error))

                tg.start_soon(hold)
                assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        assert lost == ["the leader lock's connection was closed by the server"]
        assert await second.try_acquire()
        assert second.epoch == 2
    finally:
        await first.release()
        await second.release()


async def test_a_heartbeat_that_finds_another_epoch_is_a_loss(
    db_url: str, conn: asyncpg.Connection
) -> None:
    lock = PgLeaderLock(db_url, leader_id="host-a:1")
    try:
        assert await lock.try_acquire()
        await lock.check(timeout=DEADLINE)
        await take_over(conn)  # someone else wrote a newer epoch (a lock freed behind our back)
        with pytest.raises(LeadershipLost, match="another instance took over"):
            await lock.check(timeout=DEADLINE)
    finally:
        await lock.release()


# -- the service ------------------------------------------------------------------------------


async def test_the_lock_connection_terminated_stops_the_actors_and_the_retake_has_a_new_epoch(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    settings = make_settings(db_url, bridge)
    async with running_service(settings) as service:
        assert service.store is not None
        leader = await service.store.leader()
        assert leader is not None
        assert (leader.leader_id, leader.epoch, service.store.epoch) == (this_instance(), 1, 1)
        assert leader.limits == json.loads(json.dumps(effective_limits(settings)))
        first_actors = service.actors
        assert first_actors is not None

        [pid] = [r["pid"] for r in await conn.fetch(LOCK_BACKEND)]
        terminated_at = time.monotonic()
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        with anyio.fail_after(DEADLINE):
            while service.role == "active":
                await anyio.sleep(0.001)
        stopped_after = time.monotonic() - terminated_at
        # The contract's bound (the standby could act after one STANDBY_RETRY_INTERVAL): the
        # termination listener makes it a matter of milliseconds.
        assert stopped_after < 1.0, stopped_after
        assert service.actors is None

        with anyio.fail_after(DEADLINE):
            while service.role != "active":
                await anyio.sleep(0.01)
        assert service.actors is not None and service.actors is not first_actors
        assert await conn.fetchval("SELECT leader_epoch FROM executor_control") == 2
        assert service.store.epoch == 2
        signal_id, _ = await new_approval(conn, "RETAKE")
        await wait_for(conn, "SELECT order_id FROM trade_approvals WHERE signal_id = $1", signal_id)


def _start_run(env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    """`trade-executor run`, its stdout and stderr (JSON lines) to `output`."""
    with output.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "trade_executor", "run"], env=env, stdout=out, stderr=out
        )


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(DEADLINE)
    try:
        yield sock, path
    finally:
        sock.close()


def _messages_until(sock: socket.socket, key: str) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []
    while not any(key in m for m in seen):
        data = sock.recv(4096).decode()
        seen.append(dict(line.split("=", 1) for line in data.splitlines() if line))
    return seen


def _records(output: Path) -> list[dict[str, Any]]:
    found = []
    for line in output.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT], ids=["SIGHUP", "SIGINT"])
async def test_sighup_and_sigint_drain_and_exit_0(
    signum: signal.Signals,
    notify_socket: tuple[socket.socket, str],
    db_url: str,
    bridge: ThreadedBridge,
    conn: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    sock, path = notify_socket
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADE_EXECUTOR", "WATCHDOG"))}
    env.update(
        NOTIFY_SOCKET=path,
        DATABASE_URL=db_url,
        IB_BRIDGE_URL=bridge.url,
        HTTP_PORT="0",
        EXECUTION_ENABLED="true",
        SHUTDOWN_GRACE="20",
        LOG_FORMAT="json",
    )
    output = tmp_path / "run.log"
    process = _start_run(env, output)
    try:
        await anyio.to_thread.run_sync(_messages_until, sock, "READY")
        # From now on each bridge answer takes a second: the POST is in flight at the signal.
        # (Set before the start, it made the start-up's reads take seconds each.)
        bridge.set_faults(latency=1.0)
        signal_id, _ = await new_approval(conn, "SIG")
        await wait_for(
            conn,
            "SELECT state = 'submitting' FROM executions WHERE signal_id = $1",
            signal_id,
            timeout=DEADLINE,
        )
        process.send_signal(signum)
        stopping = await anyio.to_thread.run_sync(_messages_until, sock, "STOPPING")
        assert stopping[-1]["STOPPING"] == "1"
        with anyio.fail_after(DEADLINE * 2):
            while process.poll() is None:
                await anyio.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output.read_text(errors="replace")[-3000:]
    records = _records(output)
    events = [r.get("event") for r in records]
    [received] = [r for r in records if r.get("event") == "supervisor.signal"]
    assert received["signal"] == signum.name
    assert events.index("supervisor.signal") < events.index("supervisor.stopping")
    assert events[-1] == "supervisor.stopped"
    assert "supervisor.drain_timeout" not in events
    # Drained: the submission in flight ended with the bridge's answer recorded.
    state = await conn.fetchval("SELECT state FROM executions WHERE signal_id = $1", signal_id)
    assert state == "submitted"
    assert len(bridge.parent_orders()) == 1


async def test_a_leader_that_misses_its_lock_loss_is_stopped_by_the_fence(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The silent case (reproduction 2 of issue 11): the lock is gone on the server, but the
    leader hears nothing (no termination, heartbeats unanswered-but-unnoticed) while another
    instance takes over. Its first claim is fenced: nothing inserted, nothing sent, and the
    refusal itself stops its actors."""
    monkeypatch.setattr(PgLeaderLock, "_on_terminated", lambda self, conn: None)

    async def silent_heartbeat(self: PgLeaderLock, timeout: float) -> None:
        return None

    monkeypatch.setattr(PgLeaderLock, "check", silent_heartbeat)
    settings = make_settings(db_url, bridge)
    other = PgLeaderLock(db_url, leader_id="other:2")
    try:
        with capture_logs() as logs:
            async with running_service(settings) as service:
                [pid] = [r["pid"] for r in await conn.fetch(LOCK_BACKEND)]
                assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
                with anyio.fail_after(DEADLINE):
                    while not await other.try_acquire():
                        await anyio.sleep(0.05)
                assert other.epoch == 2
                assert service.role == "active"  # it has not noticed anything

                signal_id, _ = await new_approval(conn, "GHOST")
                with anyio.fail_after(DEADLINE):
                    while service.role == "active":
                        await anyio.sleep(0.01)
                assert await conn.fetchval("SELECT count(*) FROM executions") == 0
                assert bridge.parent_orders() == []

                await other.release()  # the other instance goes away: this one leads again
                with anyio.fail_after(DEADLINE):
                    while service.role != "active":
                        await anyio.sleep(0.01)
                await wait_for(
                    conn, "SELECT order_id FROM trade_approvals WHERE signal_id = $1", signal_id
                )
    finally:
        await other.release()
    events = [entry["event"] for entry in logs]
    assert "approval.fenced" in events
    [lost] = [entry for entry in logs if entry["event"] == "supervisor.leadership_lost"]
    assert lost["error"].startswith("fenced: this instance leads epoch 1, the database says 2")
    assert await conn.fetchval("SELECT leader_epoch FROM executor_control") == 3
    assert len(bridge.parent_orders()) == 1
