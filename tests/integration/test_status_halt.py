"""`halt` and `resume` against the running service (CONTRACT section 5, the kill switch): they say
whether the running service acknowledged the change, `--wait` returns once it is applied (and
fails in words when no service applies it), a second halt with another reason is refused unless
`--force` (then the service logs both), and who acts is the person behind sudo."""

from __future__ import annotations

import getpass
import re
from collections.abc import Iterator

import anyio
import asyncpg
import pytest
from structlog.testing import capture_logs

from tests.support import ENV_VARIABLES, ThreadedBridge, make_settings, running_service
from trade_executor.cli.main import main
from trade_executor.store.identity import instance_id

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def shell(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[None]:
    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("IB_BRIDGE_URL", "http://127.0.0.1:9")
    # The commands run in this process beside the service: leave logging as the test set it, so
    # `capture_logs` keeps seeing the service's lines (main() would reconfigure it).
    monkeypatch.setattr("trade_executor.cli.main.configure_logging", lambda *a, **k: None)
    yield
    from trade_executor.observability.logging import configure_logging

    configure_logging("json", "info")


async def command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = await anyio.to_thread.run_sync(main, argv)
    captured = capsys.readouterr()
    # The in-process service's own log lines (JSON or console) share stdout: leave them out.
    lines = [
        line
        for line in captured.out.splitlines()
        if not line.startswith("{") and not re.match(r"\d{4}-\d\d-\d\d \d\d:", line)
    ]
    return code, "\n".join(lines), captured.err


async def test_halt_wait_returns_once_the_running_service_applied_it(
    db_url: str,
    bridge: ThreadedBridge,
    conn: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running_service(make_settings(db_url, bridge)) as service:
        assert service.actors is not None
        executor = service.actors.executor
        with capture_logs() as logs:
            code, out, _ = await command(
                ["halt", "--reason", "IB maintenance", "--by", "alice", "--wait"], capsys
            )
            assert code == 0
            assert out == (
                f"halted: IB maintenance (by alice); the running service ({instance_id()}) "
                "applied it"
            )
            assert executor.halted  # applied before the command returned

            # Another reason while halted: refused, nothing overwritten.
            code, out, err = await command(["halt", "--reason", "end of day"], capsys)
            assert code == 1 and out == ""
            assert err.startswith("trade-executor: already halted by alice since ")
            assert err.endswith(
                ": 'IB maintenance'; use --force to replace the reason with 'end of day'\n"
            )
            [row] = await conn.fetch("SELECT reason, changed_by FROM executor_control")
            assert (row["reason"], row["changed_by"]) == ("IB maintenance", "alice")

            # The same halt again changes nothing and says so.
            code, out, _ = await command(["halt", "--reason", "IB maintenance"], capsys)
            assert code == 0 and out.startswith("already halted: IB maintenance (by alice")

            code, out, _ = await command(
                ["halt", "--reason", "end of day", "--by", "bob", "--force", "--wait"], capsys
            )
            assert code == 0
            assert out.startswith(
                "halted: end of day (by bob), replacing 'IB maintenance' (by alice); "
            )
            code, out, _ = await command(["resume", "--by", "carol", "--wait"], capsys)
            assert code == 0
            assert out == (
                "resumed (by carol; the halt was: end of day); "
                f"the running service ({instance_id()}) applied it"
            )
            assert not executor.halted
        halts = [
            (line["event"], line.get("reason"), line.get("by"), line.get("previous_reason"))
            for line in logs
            if line["event"] in ("executor.halted", "executor.resumed")
        ]
        assert halts == [
            ("executor.halted", "IB maintenance", "alice", None),
            ("executor.halted", "end of day", "bob", "IB maintenance"),  # both reasons logged
            ("executor.resumed", None, "carol", "end of day"),
        ]


async def test_halt_without_a_running_service_says_nobody_acknowledged_it(
    conn: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await command(["halt", "--reason", "no service", "--by", "dan"], capsys)
    assert code == 0  # halting needs only the database
    assert out == (
        "halted: no service (by dan); no running service acknowledged it within 2 s "
        "(a service that starts later applies it)"
    )
    assert await conn.fetchval("SELECT halted FROM executor_control") is True

    code, out, err = await command(["resume", "--wait", "--timeout", "0.5"], capsys)
    assert code == 1 and out == ""
    assert err == (
        f"trade-executor: resumed (by {getpass.getuser()}; the halt was: no service) in the "
        "database, but no running service acknowledged it within 0.5 s (is one running? "
        "trade-executor status)\n"
    )
    assert await conn.fetchval("SELECT halted FROM executor_control") is False


async def test_under_sudo_the_person_is_who_halts(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUDO_USER", "erin")
    code, out, _ = await command(["halt", "--reason", "checking"], capsys)
    assert code == 0 and out.startswith("halted: checking (by erin)")
    assert await conn.fetchval("SELECT changed_by FROM executor_control") == "erin"
    code, _, _ = await command(["resume"], capsys)
    assert code == 0
    assert await conn.fetchval("SELECT changed_by FROM executor_control") == "erin"
