"""The start-up durability check (CONTRACT section 5, "Database failover"): read from the real
server's settings. The suite's server has no standby, so it cannot make a commit survive a
promotion, and says why in one sentence; the two-server test (tests/chaos/test_failover.py) shows
the check passing with a synchronous standby and failing with an asynchronous one."""

from __future__ import annotations

import asyncpg
import pytest

from trade_executor.store.server import Durability, database_server, durability

pytestmark = pytest.mark.anyio


async def test_a_server_without_a_synchronous_standby_is_at_risk(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        found = await durability(conn)
        assert found.standby_names == "" and found.synchronous == 0
        assert found.problem() == (
            "synchronous_standby_names is empty (replication is asynchronous): a commit "
            "(an intent, a claim, a new epoch) may be lost if a standby is promoted"
        )
        # The session's own setting counts: a role or database may turn it off.
        await conn.execute("SET synchronous_commit = off")
        problem = (await durability(conn)).problem()
        assert problem is not None and problem.startswith("synchronous_commit is off: ")
        server = await database_server(conn)
        assert server.role == "primary" and server.port is not None
    finally:
        await conn.close()


def test_the_guarantee_needs_every_condition() -> None:
    good = Durability("on", "FIRST 1 (standby1)", standbys=1, synchronous=1, hidden=0)
    assert good.problem() is None
    assert Durability("remote_write", "ANY 1 (a, b)", 2, 1, 0).problem() is None
    local = Durability("local", "standby1", 1, 1, 0).problem()
    assert local is not None and local.startswith("synchronous_commit is local")
    absent = Durability("on", "standby1", 1, 0, 0).problem()
    assert absent is not None and absent.startswith("no synchronous standby is streaming")
    hidden = Durability("on", "standby1", 1, 0, 1).problem()
    assert hidden is not None and "grant it pg_monitor" in hidden
