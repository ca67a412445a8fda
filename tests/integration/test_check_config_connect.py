"""`check-config --connect` and the capability check of `run` (CONTRACT sections 2 and 7):
against the jax bridge, a bridge from before March 2026 (`legacy`) and one whose account is
live; the database's schema version is read from trade_executor_migrations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import ThreadedBridge, threaded_bridge
from trade_executor.cli.main import main
from trade_executor.config.sources import EX_CONFIG
from trade_executor.store.migrate import load_migrations

LATEST = load_migrations()[-1].version


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def legacy() -> Iterator[ThreadedBridge]:
    with threaded_bridge(profile="legacy") as running:
        yield running


def connect(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    bridge_url: str,
    *argv: str,
    **env: str,
) -> tuple[int, list[str], str]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("IB_BRIDGE_URL", bridge_url)
    monkeypatch.setenv("IB_BRIDGE_TIMEOUT", "5")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main([*argv] if argv else ["check-config", "--connect"])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def line(lines: list[str], prefix: str) -> str:
    [found] = [text for text in lines if text.startswith(prefix)]
    return found


def test_the_jax_bridge_and_a_migrated_database_pass(
    database_url: str,
    bridge: ThreadedBridge,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = connect(monkeypatch, capsys, database_url, bridge.url)
    assert code == 0, err
    assert line(out, "database: ") == (
        f"database: reachable, schema version {LATEST:04d} (up to date)"
    )
    bridge_line = line(out, "bridge: ")
    assert "connected to IB, paper account" in bridge_line
    assert "bracket yes, order list yes, cancel yes, close yes, protect yes" in bridge_line
    assert line(out, "bridge_account=") == "bridge_account=paper"
    assert line(out, "bridge_missing=") == "bridge_missing="
    assert "IB_BRIDGE_URL=" + bridge.url in out  # the configuration is printed as before
    assert err == ""


def test_a_database_not_migrated_says_so(
    fresh_database_url: str,
    bridge: ThreadedBridge,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = connect(monkeypatch, capsys, fresh_database_url, bridge.url)
    assert code == 0
    assert line(out, "database: ") == (
        "database: reachable, not migrated yet (run trade-executor migrate)"
    )


def test_an_old_bridge_with_bracket_protection_is_refused_with_78(
    database_url: str,
    legacy: ThreadedBridge,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = connect(monkeypatch, capsys, database_url, legacy.url)
    assert code == EX_CONFIG
    assert "bracket NO, order list NO, cancel NO" in line(out, "bridge: ")
    assert "bridge_missing=POST /orders/bracket,GET /orders,DELETE /orders/{order_id}" in (
        line(out, "bridge_missing=")
    )
    refusal = [text for text in err.splitlines() if "ORDER_PROTECTION=bracket" in text]
    assert refusal == [
        "trade-executor: ORDER_PROTECTION=bracket needs POST /orders/bracket, which this bridge "
        "lacks (bridges from before March 2026 have no POST /orders/bracket, GET /orders or "
        "DELETE /orders/{id}): upgrade the bridge"
    ]


def test_an_old_bridge_without_protection_passes_with_warnings(
    database_url: str,
    legacy: ThreadedBridge,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = connect(monkeypatch, capsys, database_url, legacy.url, ORDER_PROTECTION="none")
    assert code == 0
    warnings = [text for text in err.splitlines() if text.startswith("trade-executor: warning:")]
    assert any("no GET /orders" in text for text in warnings)
    assert any("no DELETE /orders/{id}" in text for text in warnings)
    assert any("does not say whether its account is paper" in text for text in warnings)


def test_a_live_account_is_named_and_warned_about(
    database_url: str,
    bridge: ThreadedBridge,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bridge.admin("POST", "/admin/account", {"paper_trading": False})
    code, out, err = connect(monkeypatch, capsys, database_url, bridge.url)
    assert code == 0
    assert "connected to IB, live account" in line(out, "bridge: ")
    assert line(out, "bridge_account=") == "bridge_account=live"
    assert "ALLOW_LIVE_TRADING is false" in err

    code, _, err = connect(monkeypatch, capsys, database_url, bridge.url, ALLOW_LIVE_TRADING="true")
    assert code == 0 and "ALLOW_LIVE_TRADING" not in err


def test_unreachable_database_and_bridge_exit_1_in_one_sentence_each(
    pg_server_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing_db = pg_server_url.rsplit("/", 1)[0] + "/te_does_not_exist"
    code, out, err = connect(monkeypatch, capsys, missing_db, "http://127.0.0.1:9")
    assert code == 1
    assert "database: UNREACHABLE" in out and "bridge: UNREACHABLE" in out
    problems = [text for text in err.splitlines() if text.startswith("trade-executor: cannot")]
    assert len(problems) == 2
    assert "Traceback" not in err


def test_run_refuses_an_old_bridge_with_bracket_protection_before_ready(
    database_url: str,
    legacy: ThreadedBridge,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = connect(monkeypatch, capsys, database_url, legacy.url, "run", HTTP_PORT="0")
    assert code == EX_CONFIG
    assert err.strip().splitlines() == [
        "trade-executor: ORDER_PROTECTION=bracket needs POST /orders/bracket, which this bridge "
        "lacks (bridges from before March 2026 have no POST /orders/bracket, GET /orders or "
        "DELETE /orders/{id}): upgrade the bridge"
    ]
