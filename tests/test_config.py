"""Configuration (CONTRACT section 3): defaults, validation, env files, redaction."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trade_executor.config import (
    ENV_FILE_VARIABLE,
    EX_CONFIG,
    ConfigError,
    Settings,
    load_settings,
)

# CONTRACT section 3's table, as env-style strings (Settings.redacted()) and as typed values.
CONTRACT_DEFAULTS: dict[str, tuple[str, object]] = {
    "EXECUTION_ENABLED": ("false", False),
    "DATABASE_URL": ("(unset)", None),
    "IB_BRIDGE_URL": ("http://localhost:8092", "http://localhost:8092"),
    "IB_BRIDGE_TIMEOUT": ("5.0", 5),
    "MAX_RISK_PER_TRADE": ("0.01", Decimal("0.01")),
    "MIN_POSITION_SIZE": ("1", 1),
    "MAX_POSITION_SIZE": ("1000", 1000),
    "MAX_POSITION_VALUE_PCT": ("0.20", Decimal("0.20")),
    "MAX_OPEN_POSITIONS": ("5", 5),
    "MAX_DAILY_LOSS": ("1000.0", Decimal("1000.0")),
    "DEFAULT_ORDER_TYPE": ("LMT", "LMT"),
    "ORDER_PROTECTION": ("bracket", "bracket"),
    "ORDER_POLL_INTERVAL": ("10.0", 10),
    "ORDER_POLL_TIMEOUT": ("120.0", 120),
    "ORDER_TIMEOUT_ACTION": ("cancel", "cancel"),
    "APPROVAL_MAX_AGE": ("300.0", 300),
    "TRADING_DAY_TIMEZONE": ("America/New_York", "America/New_York"),
    "SWEEP_INTERVAL": ("30.0", 30),
    "HTTP_HOST": ("127.0.0.1", "127.0.0.1"),
    "HTTP_PORT": ("8100", 8100),
    "API_TOKEN": ("(unset)", None),
    "LOG_FORMAT": ("json", "json"),
    "LOG_LEVEL": ("info", "info"),
}

PASSWORD = "pa:ss@w/rd%"  # every character that needs percent-encoding in a URL
TOKEN = "tok-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the environment running the tests (or a stray .env file)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv(ENV_FILE_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_the_contracts() -> None:
    settings = load_settings()
    for variable, (shown, value) in CONTRACT_DEFAULTS.items():
        assert getattr(settings, variable.lower()) == value, variable
        assert settings.redacted()[variable] == shown, variable
    assert settings.timezone.key == "America/New_York"
    assert settings.secret_values() == []
    assert EX_CONFIG == 78


def test_every_contract_variable_is_a_setting() -> None:
    assert set(CONTRACT_DEFAULTS) <= set(load_settings().redacted())


def test_environment_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTION_ENABLED", "true")
    monkeypatch.setenv("MAX_RISK_PER_TRADE", "0.02")
    monkeypatch.setenv("DEFAULT_ORDER_TYPE", " mkt ")
    monkeypatch.setenv("ORDER_PROTECTION", "NONE")
    monkeypatch.setenv("log_level", "DEBUG")  # names are case-insensitive
    monkeypatch.setenv("IB_BRIDGE_URL", "https://bridge.internal:9000/")

    settings = load_settings()

    assert settings.execution_enabled is True
    assert settings.max_risk_per_trade == Decimal("0.02")
    assert settings.default_order_type == "MKT"
    assert settings.order_protection == "none"
    assert settings.log_level == "debug"
    assert settings.ib_bridge_url == "https://bridge.internal:9000"


@pytest.mark.parametrize("value", ["1", "0.5", "0.0001"])
def test_max_risk_per_trade_boundaries_accepted(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MAX_RISK_PER_TRADE", value)
    assert load_settings().max_risk_per_trade == Decimal(value)


INVALID = [
    ("MAX_RISK_PER_TRADE", "0"),
    ("MAX_RISK_PER_TRADE", "1.5"),
    ("MAX_RISK_PER_TRADE", "-0.01"),
    ("MAX_RISK_PER_TRADE", "NaN"),
    ("MAX_RISK_PER_TRADE", "one percent"),
    ("MAX_POSITION_VALUE_PCT", "0"),
    ("MAX_POSITION_VALUE_PCT", "1.2"),
    ("MAX_DAILY_LOSS", "0"),
    ("MAX_DAILY_LOSS", "-100"),
    ("MAX_DAILY_LOSS", "Infinity"),
    ("MIN_POSITION_SIZE", "0"),
    ("MAX_POSITION_SIZE", "-5"),
    ("MAX_POSITION_SIZE", "ten"),
    ("MAX_OPEN_POSITIONS", "0"),
    ("DEFAULT_ORDER_TYPE", "FOK"),
    ("DEFAULT_ORDER_TYPE", ""),
    ("ORDER_PROTECTION", "oco"),
    ("ORDER_TIMEOUT_ACTION", "explode"),
    ("IB_BRIDGE_URL", "not a url"),
    ("IB_BRIDGE_URL", "ftp://localhost:8092"),
    ("IB_BRIDGE_URL", "http://localhost:port"),
    ("IB_BRIDGE_URL", "http://[::1"),
    ("IB_BRIDGE_TIMEOUT", "0"),
    ("IB_BRIDGE_TIMEOUT", "-1"),
    ("DATABASE_URL", "mysql://user@db/trading"),
    ("DATABASE_URL", "just-a-word"),
    ("DATABASE_URL", "postgresql://user:pw@db:port/trading"),
    ("TRADING_DAY_TIMEZONE", "Mars/Olympus_Mons"),
    ("TRADING_DAY_TIMEZONE", "../../etc/passwd"),
    ("ORDER_POLL_INTERVAL", "-10"),
    ("ORDER_POLL_INTERVAL", "0"),
    ("ORDER_POLL_TIMEOUT", "-1"),
    ("APPROVAL_MAX_AGE", "-300"),
    ("SWEEP_INTERVAL", "-30"),
    ("SWEEP_INTERVAL", "soon"),
    ("HTTP_PORT", "70000"),
    ("HTTP_PORT", "-1"),
    ("LOG_FORMAT", "xml"),
    ("LOG_LEVEL", "verbose"),
    ("EXECUTION_ENABLED", "perhaps"),
]


@pytest.mark.parametrize(("variable", "value"), INVALID)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable) as caught:
        load_settings()
    assert "pw@" not in str(caught.value)  # an invalid DSN is not echoed back


def test_min_above_max_position_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIN_POSITION_SIZE", "50")
    monkeypatch.setenv("MAX_POSITION_SIZE", "10")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "MIN_POSITION_SIZE" in str(caught.value) and "MAX_POSITION_SIZE" in str(caught.value)


def test_min_equal_to_max_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIN_POSITION_SIZE", "10")
    monkeypatch.setenv("MAX_POSITION_SIZE", "10")
    assert load_settings().max_position_size == 10


def test_several_errors_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_RISK_PER_TRADE", "2")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "MAX_RISK_PER_TRADE" in str(caught.value) and "LOG_FORMAT" in str(caught.value)


def test_overrides_are_validated_too() -> None:
    with pytest.raises(ConfigError, match="MAX_RISK_PER_TRADE"):
        load_settings(max_risk_per_trade=Decimal("0"))


# --- env files ---------------------------------------------------------------------------------

ENV_FILE = """\
# trade-executor settings
EXECUTION_ENABLED=true
MAX_RISK_PER_TRADE=0.005
DATABASE_URL="postgresql://trader:{password}@db.internal:5432/trading"
API_TOKEN='{token}'
TRADING_DAY_TIMEZONE=Europe/London
UNRELATED_VARIABLE=ignored
"""


def write_env_file(path: Path) -> Path:
    path.write_text(ENV_FILE.format(password=quote(PASSWORD, safe=""), token=TOKEN))
    return path


def test_env_file_argument(tmp_path: Path) -> None:
    settings = load_settings(env_file=write_env_file(tmp_path / "te.env"))

    assert settings.execution_enabled is True
    assert settings.max_risk_per_trade == Decimal("0.005")
    assert settings.trading_day_timezone == "Europe/London"
    assert settings.api_token is not None and settings.api_token.get_secret_value() == TOKEN
    assert settings.dsn().startswith("postgresql://trader:")


def test_env_file_from_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(write_env_file(tmp_path / "te.env")))
    assert load_settings().max_risk_per_trade == Decimal("0.005")


def test_environment_wins_over_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAX_RISK_PER_TRADE", "0.03")
    settings = load_settings(env_file=write_env_file(tmp_path / "te.env"))
    assert settings.max_risk_per_trade == Decimal("0.03")
    assert settings.execution_enabled is True  # the rest still comes from the file


def test_missing_env_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(env_file=tmp_path / "nope.env")


def test_invalid_value_in_env_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    path.write_text("DEFAULT_ORDER_TYPE=ICEBERG\n")
    with pytest.raises(ConfigError, match="DEFAULT_ORDER_TYPE"):
        load_settings(env_file=path)


# --- secrets -----------------------------------------------------------------------------------


def secret_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv(
        "DATABASE_URL", f"postgresql://trader:{quote(PASSWORD, safe='')}@db.internal:5432/trading"
    )
    monkeypatch.setenv("API_TOKEN", TOKEN)
    return load_settings()


def test_redacted_never_shows_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = secret_settings(monkeypatch)
    view = settings.redacted()

    assert view["DATABASE_URL"] == "postgresql://***:***@db.internal:5432/trading"
    assert view["API_TOKEN"] == "***"
    everything = " ".join(view.values()) + repr(settings) + str(settings)
    for secret in (PASSWORD, quote(PASSWORD, safe=""), TOKEN, "trader"):
        assert secret not in everything


def test_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = secret_settings(monkeypatch)
    secrets = settings.secret_values()
    # Both the percent-encoded form (as written in the URL) and the decoded one (as a driver
    # may print it) are registered for the log redactor.
    assert {TOKEN, PASSWORD, quote(PASSWORD, safe="")} <= set(secrets)
    assert "" not in secrets


def test_database_password_is_merged_and_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://trader@db.internal:5433/trading?ssl=off")
    monkeypatch.setenv("DATABASE_PASSWORD", PASSWORD)
    settings = load_settings()

    dsn = settings.dsn()

    assert dsn == (
        f"postgresql://trader:{quote(PASSWORD, safe='')}@db.internal:5433/trading?ssl=off"
    )
    assert PASSWORD in settings.secret_values()
    assert settings.redacted()["DATABASE_PASSWORD"] == "***"
    assert PASSWORD not in " ".join(settings.redacted().values())


def test_database_password_with_ipv6_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://trader@[::1]:5432/trading")
    monkeypatch.setenv("DATABASE_PASSWORD", "pw")
    settings = load_settings()
    assert settings.dsn() == "postgresql://trader:pw@[::1]:5432/trading"
    assert settings.redacted()["DATABASE_URL"] == "postgresql://***:***@[::1]:5432/trading"


def test_unix_socket_dsn_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql:///trading?host=/run/postgresql")
    assert load_settings().dsn() == "postgresql:///trading?host=/run/postgresql"


def test_dsn_is_required_when_asked_for() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings().dsn()


def test_empty_secrets_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "")
    monkeypatch.setenv("API_TOKEN", "")
    settings = load_settings()
    assert settings.database_url is None
    assert settings.secret_values() == []


@given(
    password=st.text(
        alphabet=st.characters(codec="ascii", categories=["L", "N", "P", "S"]),
        min_size=6,
        max_size=30,
    )
)
def test_no_password_survives_redaction(password: str) -> None:
    # Marked so that the password cannot be a substring of the redacted URL by chance.
    password = f"Q{password}Z"
    settings = Settings(
        database_url=f"postgresql://trader:{quote(password, safe='')}@db.internal:5432/trading"
    )
    shown = settings.redacted()["DATABASE_URL"]
    assert shown == "postgresql://***:***@db.internal:5432/trading"
    assert password in settings.secret_values()
