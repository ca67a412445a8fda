"""Configuration (CONTRACT section 3): defaults, validation, env files, redaction."""

from __future__ import annotations

import os
from datetime import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trade_executor.config.sources import (
    CREDENTIALS_DIRECTORY_VARIABLE,
    ENV_FILE_VARIABLE,
    EX_CONFIG,
    ConfigError,
    Settings,
    load_settings,
)
from trade_executor.domain.sizing import POSITION_SIZE_CEILING

# CONTRACT section 3's table, as env-style strings (Settings.redacted()) and as typed values.
CONTRACT_DEFAULTS: dict[str, tuple[str, object]] = {
    "EXECUTION_ENABLED": ("false", False),
    "ALLOW_LIVE_TRADING": ("false", False),
    "DATABASE_URL": ("(unset)", None),
    "IB_BRIDGE_URL": ("http://localhost:8092", "http://localhost:8092"),
    "IB_BRIDGE_TIMEOUT": ("15.0", 15),
    "MAX_RISK_PER_TRADE": ("0.01", Decimal("0.01")),
    "MIN_POSITION_SIZE": ("1", 1),
    "MAX_POSITION_SIZE": ("1000", 1000),
    "MAX_POSITION_VALUE_PCT": ("0.20", Decimal("0.20")),
    "MAX_OPEN_POSITIONS": ("5", 5),
    "MAX_DAILY_LOSS": ("1000.0", Decimal("1000.0")),
    "MAX_DAILY_REALIZED_LOSS": ("0", Decimal(0)),
    "MAX_CONSECUTIVE_FAILURES": ("3", 3),
    "BRIDGE_MAX_MESSAGES_PER_SECOND": ("45", 45),
    "DEFAULT_ORDER_TYPE": ("LMT", "LMT"),
    "ORDER_PROTECTION": ("bracket", "bracket"),
    "ORDER_POLL_INTERVAL": ("10.0", 10),
    "ORDER_POLL_TIMEOUT": ("120.0", 120),
    "ORDER_TIMEOUT_ACTION": ("cancel", "cancel"),
    "RECONCILE_INTERVAL": ("60.0", 60),
    "APPROVAL_SOURCES": (
        "trade_approvals,signal_status",
        frozenset({"trade_approvals", "signal_status"}),
    ),
    "INSTANCE_GUARDRAILS": ("auto", "auto"),
    "REQUIRE_ARTIFACT_APPROVAL": ("auto", "auto"),
    "APPROVAL_MAX_AGE": ("300.0", 300),
    "TRADING_DAY_TIMEZONE": ("America/New_York", "America/New_York"),
    "FLATTEN_AT": ("(unset)", None),
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
def no_stray_env_file(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No setting leaks in from the environment running the tests (`clean_environment`), nor
    from a stray .env file in the working directory."""
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


@pytest.mark.parametrize("value", ["0.05", "0.02", "0.0001"])
def test_max_risk_per_trade_boundaries_accepted(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MAX_RISK_PER_TRADE", value)
    assert load_settings().max_risk_per_trade == Decimal(value)


INVALID = [
    ("MAX_RISK_PER_TRADE", "0"),
    ("MAX_RISK_PER_TRADE", "1.5"),
    ("MAX_RISK_PER_TRADE", "1"),  # all of net liquidation at risk on one trade
    ("MAX_RISK_PER_TRADE", "0.0501"),  # above the ceiling
    ("MAX_RISK_PER_TRADE", "-0.01"),
    ("MAX_RISK_PER_TRADE", "NaN"),
    ("MAX_RISK_PER_TRADE", "one percent"),
    ("MAX_POSITION_VALUE_PCT", "0"),
    ("MAX_POSITION_VALUE_PCT", "1.2"),
    ("MAX_DAILY_LOSS", "-100"),
    ("MAX_DAILY_LOSS", "Infinity"),
    ("MAX_DAILY_LOSS", ""),
    ("MAX_DAILY_REALIZED_LOSS", "-1"),
    ("MAX_DAILY_REALIZED_LOSS", "NaN"),
    ("MAX_CONSECUTIVE_FAILURES", "-1"),
    ("MIN_POSITION_SIZE", "0"),
    ("MIN_POSITION_SIZE", "10000001"),
    ("MAX_POSITION_SIZE", "-5"),
    ("MAX_POSITION_SIZE", "ten"),
    ("MAX_POSITION_SIZE", "10000001"),
    ("MAX_OPEN_POSITIONS", "-1"),
    ("BRIDGE_MAX_MESSAGES_PER_SECOND", "0"),
    ("BRIDGE_MAX_MESSAGES_PER_SECOND", "51"),
    ("RECONCILE_INTERVAL", "0"),
    ("APPROVAL_SOURCES", "trade_approvals,webhook"),
    ("APPROVAL_SOURCES", ""),
    ("APPROVAL_SOURCES", " , "),
    ("INSTANCE_GUARDRAILS", "maybe"),
    ("REQUIRE_ARTIFACT_APPROVAL", "yes"),
    ("FLATTEN_AT", "25:00"),
    ("FLATTEN_AT", "9:30"),
    ("FLATTEN_AT", "3pm"),
    ("ALLOW_LIVE_TRADING", "sure"),
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
    ("IB_BRIDGE_TIMEOUT", "nan"),
    ("DATABASE_URL", "mysql://user@db/trading"),
    ("DATABASE_URL", "just-a-word"),
    ("DATABASE_URL", "postgresql://user:pw@db:port/trading"),
    ("TRADING_DAY_TIMEZONE", "Mars/Olympus_Mons"),
    ("TRADING_DAY_TIMEZONE", "../../etc/passwd"),
    ("ORDER_POLL_INTERVAL", "-10"),
    ("ORDER_POLL_INTERVAL", "0"),
    ("ORDER_POLL_INTERVAL", "inf"),
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
    message = str(caught.value)
    assert "(environment)" in message
    if variable == "DATABASE_URL":
        assert value not in message  # a secret is never echoed back
    else:
        assert f"{variable}={value!r}" in message


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


# --- env files: strict keys, origins (CONTRACT v2 section 3) ------------------------------------


def env_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trade-executor.env"
    path.write_text(text)
    return path


def test_unknown_key_in_env_file_names_key_file_line_and_the_closest_setting(
    tmp_path: Path,
) -> None:
    path = env_file(tmp_path, "# limits\nMAX_OPEN_POSITIONS=3\nMAX_DAILY_LOS=5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=path)
    message = str(caught.value)
    assert f"{path}:3: unknown setting MAX_DAILY_LOS (did you mean MAX_DAILY_LOSS?)" in message


def test_unknown_key_far_from_any_setting_gets_no_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=env_file(tmp_path, "UNRELATED_VARIABLE=1\n"))
    assert "unknown setting UNRELATED_VARIABLE" in str(caught.value)
    assert "did you mean" not in str(caught.value)


def test_unrelated_variables_in_the_environment_stay_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_DAILY_LOS", "5")  # the environment holds anything
    assert load_settings().max_daily_loss == Decimal("1000.0")


def test_every_problem_of_an_env_file_is_named_at_once(tmp_path: Path) -> None:
    path = env_file(tmp_path, "export LOG_LEVEL=debug\nMAX_DAILY_LOS=5\nLOG_FORMAT json\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=path)
    message = str(caught.value)
    for line in (1, 2, 3):
        assert f"{path}:{line}: " in message


def test_process_variables_are_allowed_and_exported_like_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy of the environment: what load_settings exports must not leak into later tests
    # (PGSSLMODE=require would make every later connection ask for TLS).
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != "PGSSLMODE"})
    monkeypatch.setenv("PGAPPNAME", "from-the-shell")
    load_settings(env_file=env_file(tmp_path, "PGSSLMODE=require\nPGAPPNAME=from-file\n"))
    assert os.environ["PGSSLMODE"] == "require"
    assert os.environ["PGAPPNAME"] == "from-the-shell"  # the environment wins, as for settings


def test_invalid_value_from_env_file_names_value_file_and_line(tmp_path: Path) -> None:
    path = env_file(tmp_path, "LOG_FORMAT=json\nMAX_DAILY_LOSS=500 # usd\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=path)
    message = str(caught.value)
    assert f"MAX_DAILY_LOSS='500 # usd' ({path}:2)" in message
    assert "no comments after a value" in message


def test_secret_from_env_file_is_named_but_not_shown(tmp_path: Path) -> None:
    secret = "mysql://trader:hunter2@db/trading"
    path = env_file(tmp_path, f"DATABASE_URL={secret}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=path)
    assert f"DATABASE_URL ({path}:1)" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_same_setting_twice_in_different_case_is_refused(tmp_path: Path) -> None:
    path = env_file(tmp_path, "max_daily_loss=10\nMAX_DAILY_LOSS=20\n")
    with pytest.raises(ConfigError, match=r"executor\.env:2: MAX_DAILY_LOSS is also set as"):
        load_settings(env_file=path)


def test_same_key_twice_the_later_wins_as_in_systemd(tmp_path: Path) -> None:
    settings = load_settings(env_file=env_file(tmp_path, "MAX_DAILY_LOSS=10\nMAX_DAILY_LOSS=20\n"))
    assert settings.max_daily_loss == Decimal(20)
    assert settings.origin("MAX_DAILY_LOSS") == f"{tmp_path / 'trade-executor.env'}:2"


def test_a_value_spanning_lines_is_refused(tmp_path: Path) -> None:
    path = env_file(tmp_path, "LOG_LEVEL='info\nMAX_DAILY_LOSS=5'\n")
    with pytest.raises(
        ConfigError, match=r"executor\.env:1: the value of LOG_LEVEL spans lines 1-2"
    ):
        load_settings(env_file=path)


def test_origins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = env_file(tmp_path, "\nMAX_DAILY_LOSS=10\nLOG_LEVEL=debug\n")
    monkeypatch.setenv("LOG_LEVEL", "warning")
    settings = load_settings(env_file=path, max_open_positions=2)
    assert settings.origin("MAX_DAILY_LOSS") == f"{path}:2"
    assert settings.origin("log_level") == "environment"
    assert settings.origin("MAX_OPEN_POSITIONS") == "argument"
    assert settings.origin("HTTP_PORT") == "default"


def test_cross_setting_error_names_where_each_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = env_file(tmp_path, "MIN_POSITION_SIZE=50\n")
    monkeypatch.setenv("MAX_POSITION_SIZE", "10")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=path)
    message = str(caught.value)
    assert f"MIN_POSITION_SIZE from {path}:1" in message
    assert "MAX_POSITION_SIZE from environment" in message


def test_an_explicit_environment_replaces_the_process_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_DAILY_LOSS", "77")
    settings = load_settings(environ={"MAX_OPEN_POSITIONS": "9", "PATH": "/bin"})
    assert settings.max_open_positions == 9
    assert settings.max_daily_loss == Decimal("1000.0")  # os.environ is not read a second time
    assert type(settings) is Settings


def test_same_setting_twice_in_the_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="LOG_LEVEL is set twice in the environment"):
        load_settings(environ={"log_level": "debug", "LOG_LEVEL": "info"})


# --- new settings -----------------------------------------------------------------------------


def test_new_settings_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPROVAL_SOURCES", " Signal_Status ")
    monkeypatch.setenv("INSTANCE_GUARDRAILS", "OFF")
    monkeypatch.setenv("REQUIRE_ARTIFACT_APPROVAL", "on")
    monkeypatch.setenv("FLATTEN_AT", "15:55")
    monkeypatch.setenv("ALLOW_LIVE_TRADING", "true")
    settings = load_settings()
    assert settings.approval_sources == frozenset({"signal_status"})
    assert (settings.instance_guardrails, settings.require_artifact_approval) == ("off", "on")
    assert settings.flatten_at == time(15, 55)
    assert settings.allow_live_trading is True
    assert settings.redacted()["FLATTEN_AT"] == "15:55"
    assert settings.redacted()["APPROVAL_SOURCES"] == "signal_status"


def test_approval_sources_from_a_bare_settings_object(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings() reads the environment through pydantic-settings: a list, not JSON.
    monkeypatch.setenv("APPROVAL_SOURCES", "signal_status,trade_approvals")
    assert Settings().approval_sources == frozenset({"signal_status", "trade_approvals"})


def test_unknown_approval_source_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPROVAL_SOURCES", "trade_approvals,webhook")
    with pytest.raises(ConfigError, match="unknown approval source webhook"):
        load_settings()


def test_empty_flatten_at_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLATTEN_AT", "")
    assert load_settings().flatten_at is None


def test_a_bracket_needs_three_messages_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_MAX_MESSAGES_PER_SECOND", "2")
    with pytest.raises(ConfigError, match="BRIDGE_MAX_MESSAGES_PER_SECOND must be at least 3"):
        load_settings()
    monkeypatch.setenv("ORDER_PROTECTION", "none")
    assert load_settings().bridge_max_messages_per_second == 2


# --- 0 = off ------------------------------------------------------------------------------------

OFF_LIMITS = [
    "MAX_POSITION_SIZE",
    "MAX_OPEN_POSITIONS",
    "MAX_DAILY_LOSS",
    "MAX_DAILY_REALIZED_LOSS",
    "MAX_CONSECUTIVE_FAILURES",
]


@pytest.mark.parametrize("variable", OFF_LIMITS)
def test_zero_turns_a_limit_off_and_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "0")
    settings = load_settings()
    assert getattr(settings, variable.lower()) == 0
    assert settings.limits_off() == tuple(
        name for name in OFF_LIMITS if name in (variable, "MAX_DAILY_REALIZED_LOSS")
    )
    warning = settings.limits_off_warning()
    assert warning is not None and variable in warning


def test_defaults_warn_of_nothing() -> None:
    settings = load_settings()
    assert settings.limits_off() == ("MAX_DAILY_REALIZED_LOSS",)  # off by default
    assert settings.limits_off_warning() is None  # but nobody turned it off


def test_max_position_size_zero_still_has_the_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_POSITION_SIZE", "0")
    monkeypatch.setenv("MIN_POSITION_SIZE", "500")  # no cap of its own: any minimum fits
    settings = load_settings()
    warning = settings.limits_off_warning()
    assert warning is not None and f"{POSITION_SIZE_CEILING:,}" in warning
    monkeypatch.setenv("MAX_POSITION_SIZE", str(POSITION_SIZE_CEILING))
    assert load_settings().max_position_size == POSITION_SIZE_CEILING


def test_max_risk_per_trade_above_the_ceiling_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_RISK_PER_TRADE", "1")
    with pytest.raises(ConfigError, match=r"at most 0\.05 .*1 would risk all of it"):
        load_settings()


@pytest.mark.parametrize(("value", "percent"), [("0.03", "3%"), ("0.05", "5%"), ("0.025", "2.5%")])
def test_max_risk_per_trade_above_two_percent_is_warned(
    monkeypatch: pytest.MonkeyPatch, value: str, percent: str
) -> None:
    monkeypatch.setenv("MAX_RISK_PER_TRADE", value)
    settings = load_settings()
    [warning] = settings.warnings()
    assert warning.startswith(f"MAX_RISK_PER_TRADE={value} risks {percent} of net liquidation")


def test_max_risk_per_trade_up_to_two_percent_is_not_warned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_RISK_PER_TRADE", "0.02")
    assert load_settings().warnings() == []


# --- run's requirements, secrets from systemd credentials -----------------------------------------


def test_validate_for_run_requires_database_url(tmp_path: Path) -> None:
    path = env_file(tmp_path, "LOG_LEVEL=info\nDATABASE_URL=\n")
    with pytest.raises(
        ConfigError, match=rf"DATABASE_URL: required by run but is empty \({path}:2\)"
    ):
        load_settings(env_file=path).validate_for_run()
    with pytest.raises(ConfigError, match="DATABASE_URL: required by run but is not set"):
        load_settings().validate_for_run()
    load_settings(database_url="postgresql://u@h/db").validate_for_run()


def test_empty_api_token_shows_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "")
    monkeypatch.setenv("DATABASE_PASSWORD", "")
    settings = load_settings()
    assert settings.api_token is None and settings.database_password is None
    assert settings.redacted()["API_TOKEN"] == "(unset)"
    assert settings.redacted()["DATABASE_PASSWORD"] == "(unset)"


def credentials(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_secrets_from_systemd_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = credentials(tmp_path, database_password=f"{PASSWORD}\n", api_token=TOKEN)
    monkeypatch.setenv(CREDENTIALS_DIRECTORY_VARIABLE, str(directory))
    monkeypatch.setenv("DATABASE_URL", "postgresql://trader@db.internal:5432/trading")
    settings = load_settings()
    assert settings.dsn() == (
        f"postgresql://trader:{quote(PASSWORD, safe='')}@db.internal:5432/trading"
    )
    assert settings.api_token is not None and settings.api_token.get_secret_value() == TOKEN
    assert settings.origin("API_TOKEN") == "credential api_token"
    assert {PASSWORD, TOKEN} <= set(settings.secret_values())
    assert settings.redacted()["API_TOKEN"] == "***"


def test_a_missing_credential_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CREDENTIALS_DIRECTORY_VARIABLE, str(credentials(tmp_path)))
    assert load_settings().api_token is None


def test_a_secret_set_twice_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CREDENTIALS_DIRECTORY_VARIABLE, str(credentials(tmp_path, api_token=TOKEN)))
    path = env_file(tmp_path, "API_TOKEN=other\n")
    with pytest.raises(ConfigError, match=rf"API_TOKEN is set both .* and in {path}:1") as caught:
        load_settings(env_file=path)
    assert TOKEN not in str(caught.value) and "other" not in str(caught.value)
