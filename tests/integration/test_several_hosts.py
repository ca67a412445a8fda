"""DATABASE_URL naming several hosts (CONTRACT section 3, v3): `migrate` and `status` skip a host
that refuses connections and land on the one that answers, and say which server that is. (The
promotion itself, a standby becoming the primary, is tests/chaos/test_failover.py's.)"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.support import ENV_VARIABLES
from trade_executor.cli.main import main
from trade_executor.config.dburl import Server, parse_database_url


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_dead_host_first(url: str, form: str) -> tuple[str, Server]:
    """`url` with a refusing host in front; in the URL form or libpq's keyword form."""
    parsed = parse_database_url(url)
    (real,) = parsed.servers
    dead = Server("127.0.0.1", closed_port())
    if form == "url":
        return parsed.__class__(
            (dead, real), parsed.user, parsed.password, parsed.database
        ).to_url(), real
    user = f" user={parsed.user}" if parsed.user else ""
    keywords = (
        f"host={dead.host},{real.host} port={dead.port},{real.port} "
        f"dbname={parsed.database}{user} target_session_attrs=read-write"
    )
    return keywords, real


@pytest.fixture(autouse=True)
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IB_BRIDGE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LOG_FORMAT", "json")
    yield
    from trade_executor.observability.logging import configure_logging

    configure_logging("json", "info")


def _events(text: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            record = json.loads(line)
            if record.get("event") == name:
                found.append(record)
    return found


@pytest.mark.parametrize("form", ["url", "keywords"])
def test_migrate_and_status_skip_a_refusing_host_and_name_the_server(
    form: str,
    fresh_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn, real = with_dead_host_first(fresh_database_url, form)
    monkeypatch.setenv("DATABASE_URL", dsn)

    assert main(["migrate"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["applied"], out
    (reached,) = _events(err, "migration.database")
    assert str(reached["database"]).startswith(f"{real} (primary, PostgreSQL "), reached

    assert main(["status", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["database"]["server"] == str(real)
    assert view["database"]["role"] == "primary"

    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert f"database           {real} (primary, PostgreSQL " in text
