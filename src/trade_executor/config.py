"""Configuration (CONTRACT section 3): environment variables, optionally from an env file.

Every invalid value stops start-up with `ConfigError`, whose message names the variable and why;
the command line turns it into exit code 78 (EX_CONFIG).
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trade_executor.redact import MASK, redact_dsn

EX_CONFIG = 78
ENV_FILE_VARIABLE = "TRADE_EXECUTOR_ENV_FILE"

OrderType = Literal["LMT", "MKT", "STP"]


class ConfigError(Exception):
    """The configuration is invalid; the message names the setting and why."""


class Settings(BaseSettings):
    """All settings; field names are the environment variables, lower-cased."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", env_file_encoding="utf-8", frozen=True
    )

    execution_enabled: bool = False
    database_url: SecretStr | None = None
    database_password: SecretStr | None = None  # optional: kept out of DATABASE_URL
    ib_bridge_url: str = "http://localhost:8092"
    ib_bridge_timeout: float = Field(default=5.0, gt=0, le=300)
    max_risk_per_trade: Decimal = Field(default=Decimal("0.01"), gt=0, le=1)
    min_position_size: int = Field(default=1, ge=1)
    max_position_size: int = Field(default=1000, ge=1)
    max_position_value_pct: Decimal = Field(default=Decimal("0.20"), gt=0, le=1)
    max_open_positions: int = Field(default=5, ge=1)
    max_daily_loss: Decimal = Field(default=Decimal("1000.0"), gt=0)
    default_order_type: OrderType = "LMT"
    order_protection: Literal["bracket", "none"] = "bracket"
    order_poll_interval: float = Field(default=10.0, gt=0)
    order_poll_timeout: float = Field(default=120.0, gt=0)
    order_timeout_action: Literal["cancel", "leave"] = "cancel"
    approval_max_age: float = Field(default=300.0, gt=0)
    trading_day_timezone: str = "America/New_York"
    sweep_interval: float = Field(default=30.0, gt=0)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8100, ge=0, le=65535)
    api_token: SecretStr | None = None
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    # Operational knobs beyond the contract's table (all optional).
    standby_retry_interval: float = Field(default=2.0, gt=0)
    listener_health_interval: float = Field(default=5.0, gt=0)
    shutdown_grace: float = Field(default=10.0, ge=0)
    cancelled_recheck_delay: float = Field(default=3.0, ge=0)
    # Polls in flight at once. Each costs client CPU in proportion to the pool's size, so few is
    # fastest against a nearby bridge (measured in docs/BENCHMARKS.md); raise it for a slow one.
    order_poll_concurrency: int = Field(default=4, ge=1, le=64)

    @field_validator("default_order_type", mode="before")
    @classmethod
    def _upper_order_type(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "order_protection", "order_timeout_action", "log_format", "log_level", mode="before"
    )
    @classmethod
    def _lower_choice(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("max_risk_per_trade", "max_position_value_pct", "max_daily_loss")
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("must be a finite number")
        return value

    @field_validator("ib_bridge_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError("is not a parsable URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://localhost:8092")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        try:
            parts = urlsplit(value.get_secret_value())
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError("is not a parsable URL") from None
        # A Unix-socket DSN names its directory in the query: postgresql:///db?host=/run/pg
        has_host = bool(parts.hostname) or "host=" in parts.query
        if parts.scheme not in ("postgresql", "postgres") or not has_host:
            raise ValueError("must be a postgresql://user@host:port/db URL") from None
        return value

    @field_validator("trading_day_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.min_position_size > self.max_position_size:
            raise ValueError(
                "MIN_POSITION_SIZE must not exceed MAX_POSITION_SIZE "
                f"({self.min_position_size} > {self.max_position_size})"
            )
        return self

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.trading_day_timezone)

    def dsn(self) -> str:
        """The database DSN with DATABASE_PASSWORD merged in; raises ConfigError if unset."""
        if self.database_url is None:
            raise ConfigError("DATABASE_URL: required by this command but not set")
        dsn = self.database_url.get_secret_value()
        if self.database_password is None:
            return dsn
        parts = urlsplit(dsn)
        user = parts.username or "postgres"  # kept as written (already percent-encoded)
        password = quote(self.database_password.get_secret_value(), safe="")
        host = parts.hostname or ""
        if ":" in host:  # IPv6: urlsplit dropped the brackets
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{user}:{password}@{host}{port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def secret_values(self) -> list[str]:
        """Raw secret strings, for the log redactor: each as written and percent-decoded or
        -encoded, since a library may print either form."""
        raw: list[str] = []
        for secret in (self.database_password, self.api_token):
            if secret is not None and secret.get_secret_value():
                raw.append(secret.get_secret_value())
        if self.database_url is not None:
            password = urlsplit(self.database_url.get_secret_value()).password
            if password:
                raw.append(password)
        found: list[str] = []
        for value in raw:
            for form in (value, unquote(value), quote(value, safe="")):
                if form and form not in found:
                    found.append(form)
        return found

    def redacted(self) -> dict[str, str]:
        """Every setting as an env-style string, secrets masked (for logs and check-config)."""
        view: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "database_url":
                shown = redact_dsn(value.get_secret_value()) if value is not None else "(unset)"
            elif isinstance(value, SecretStr):
                shown = MASK
            elif value is None:
                shown = "(unset)"
            elif isinstance(value, bool):
                shown = str(value).lower()
            else:
                shown = str(value)
            view[name.upper()] = shown
        return view


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]).upper()
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {message}" if loc else message)
    return "; ".join(lines)


def load_settings(env_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the settings from the environment (and `env_file`, or TRADE_EXECUTOR_ENV_FILE)."""
    path = env_file or os.environ.get(ENV_FILE_VARIABLE) or None
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"env file {path}: not found")
    try:
        return Settings(_env_file=path, **overrides)
    except ValidationError as error:
        raise ConfigError(f"invalid configuration: {_describe(error)}") from None
