"""`run`'s first line shows an unset DATABASE_PASSWORD as "(unset)": the log processor masks
every value under a secret's key, but "(unset)" hides nothing and "***" would say a password is
set when none is (review finding: `run` logged DATABASE_PASSWORD="***" with none set)."""

from __future__ import annotations

from typing import Any

from trade_executor.config.sources import load_settings
from trade_executor.observability.logging import redact_secrets


def logged_config(**overrides: Any) -> dict[str, str]:
    settings = load_settings(database_url="postgresql://te@db:5432/te", **overrides)
    line = redact_secrets(None, "info", {"event": "x", "config": settings.redacted()})
    config: dict[str, str] = line["config"]
    return config


def test_an_unset_password_is_logged_as_unset() -> None:
    config = logged_config()
    assert config["DATABASE_PASSWORD"] == "(unset)"
    assert config["API_TOKEN"] == "(unset)"


def test_a_set_password_is_still_masked() -> None:
    config = logged_config(database_password="hunter2", api_token="tok-123")
    assert config["DATABASE_PASSWORD"] == "***"
    assert config["API_TOKEN"] == "***"
    assert "hunter2" not in repr(config) and "tok-123" not in repr(config)
