"""check-config on MAX_RISK_PER_TRADE (review finding: MAX_RISK_PER_TRADE=1, all of net
liquidation at risk on each trade, was accepted without a word): warned above 0.02, refused
above the 0.05 ceiling with exit 78 and one sentence."""

from __future__ import annotations

import pytest

from trade_executor.cli.main import main


@pytest.fixture(autouse=True)
def a_database_url(clean_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://te@db.internal:5432/te")


def test_check_config_warns_above_two_percent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAX_RISK_PER_TRADE", "0.03")
    assert main(["check-config"]) == 0
    err = capsys.readouterr().err
    assert "trade-executor: warning: MAX_RISK_PER_TRADE=0.03 risks 3% of net liquidation" in err


def test_check_config_refuses_above_the_ceiling(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAX_RISK_PER_TRADE", "1")
    assert main(["check-config"]) == 78
    err = capsys.readouterr().err
    assert "MAX_RISK_PER_TRADE" in err and "at most 0.05" in err
    assert "Traceback" not in err and err.count("\n") == 1, err
