"""Configuration (CONTRACT section 3): environment variables, optionally from an env file.

Sources, strongest first: keyword overrides (tests, the demo), the process environment, systemd
credentials (`$CREDENTIALS_DIRECTORY/database_password` and `.../api_token`, for
`LoadCredential=`), the env file (`--env-file` or TRADE_EXECUTOR_ENV_FILE, read as systemd's
`EnvironmentFile=` reads it: see `trade_executor.envfile`), then the defaults. Each value
remembers where it came from (`Settings.origin`).

Every invalid value stops start-up with `ConfigError`, whose message names the setting, the bad
value (unless it is a secret) and where it came from (file:line, "environment", ...); the command
line turns it into exit code 78 (EX_CONFIG). An env file is stricter than the environment: a key
that is no setting is an error there (a misspelt limit must not fall back to its default), while
the process environment may hold anything.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from trade_executor.domain.sizing import POSITION_SIZE_CEILING
from trade_executor.envfile import Assignment, Problem, scan_env_file
from trade_executor.redact import MASK, redact_dsn

EX_CONFIG = 78
ENV_FILE_VARIABLE = "TRADE_EXECUTOR_ENV_FILE"
CREDENTIALS_DIRECTORY_VARIABLE = "CREDENTIALS_DIRECTORY"

OrderType = Literal["LMT", "MKT", "STP"]
ApprovalSource = Literal["trade_approvals", "signal_status"]
Toggle = Literal["auto", "on", "off"]
# Display order of APPROVAL_SOURCES (the contract's default order).
APPROVAL_SOURCE_NAMES: tuple[ApprovalSource, ...] = ("trade_approvals", "signal_status")

# Settings whose values never appear in a message, a log line or check-config's output.
SECRET_SETTINGS = frozenset({"database_url", "database_password", "api_token"})
# Secrets that may also come from a systemd credential (LoadCredential=NAME:PATH): setting name
# -> credential name.
CREDENTIALS: Mapping[str, str] = {
    "database_password": "database_password",
    "api_token": "api_token",
}
# Limits where 0 means off (CONTRACT section 3), in the order warnings name them.
OFF_WHEN_ZERO = (
    "max_position_size",
    "max_open_positions",
    "max_daily_loss",
    "max_daily_realized_loss",
    "max_consecutive_failures",
)
# Variables an env file may set besides the settings: they are not ours but change how the
# process runs under systemd (time zone, locale, libpq/asyncpg's PG*, TLS roots, proxies for
# httpx). The CLI exports them the way systemd would, without overriding the environment.
_PROCESS_VARIABLE = re.compile(
    r"(TZ|LANG|LANGUAGE|LC_[A-Z]+|PG[A-Z]+|SSL_CERT_FILE|SSL_CERT_DIR"
    r"|(?i:http_proxy|https_proxy|all_proxy|no_proxy))\Z"
)


class ConfigError(Exception):
    """The configuration is invalid; the message names the setting, the value unless secret,
    and where it came from."""


class Settings(BaseSettings):
    """All settings; field names are the environment variables, lower-cased.

    `Settings()` reads the process environment only; `load_settings` adds the env file and the
    systemd credentials, checks the file's keys and records where each value came from."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, allow_inf_nan=False
    )

    execution_enabled: bool = False
    allow_live_trading: bool = False
    database_url: SecretStr | None = None
    database_password: SecretStr | None = None  # optional: kept out of DATABASE_URL
    ib_bridge_url: str = "http://localhost:8092"
    # The real bridge can take over 5.7 s to place an order.
    ib_bridge_timeout: float = Field(default=15.0, gt=0, le=300)
    max_risk_per_trade: Decimal = Field(default=Decimal("0.01"), gt=0, le=1)
    min_position_size: int = Field(default=1, ge=1, le=POSITION_SIZE_CEILING)
    max_position_size: int = Field(default=1000, ge=0, le=POSITION_SIZE_CEILING)  # 0 = no cap
    max_position_value_pct: Decimal = Field(default=Decimal("0.20"), gt=0, le=1)
    max_open_positions: int = Field(default=5, ge=0)  # 0 = off
    max_daily_loss: Decimal = Field(default=Decimal("1000.0"), ge=0)  # 0 = off
    max_daily_realized_loss: Decimal = Field(default=Decimal(0), ge=0)  # 0 = off
    max_consecutive_failures: int = Field(default=3, ge=0)  # 0 = off
    # A bracket counts 3 messages; IB allows 50 a second.
    bridge_max_messages_per_second: int = Field(default=45, ge=1, le=50)
    default_order_type: OrderType = "LMT"
    order_protection: Literal["bracket", "none"] = "bracket"
    order_poll_interval: float = Field(default=10.0, gt=0)
    order_poll_timeout: float = Field(default=120.0, gt=0)
    order_timeout_action: Literal["cancel", "leave"] = "cancel"
    reconcile_interval: float = Field(default=60.0, gt=0)
    # NoDecode: a comma-separated list, not the JSON pydantic-settings expects for a set.
    approval_sources: Annotated[frozenset[ApprovalSource], NoDecode] = frozenset(
        APPROVAL_SOURCE_NAMES
    )
    instance_guardrails: Toggle = "auto"
    require_artifact_approval: Toggle = "auto"
    approval_max_age: float = Field(default=300.0, gt=0)
    trading_day_timezone: str = "America/New_York"
    flatten_at: time | None = None  # HH:MM in TRADING_DAY_TIMEZONE; unset = never
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

    # Where each value came from, by field name ("environment", "/etc/x.env:12", ...); a field
    # missing here has its default. Filled by load_settings.
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("default_order_type", mode="before")
    @classmethod
    def _upper_order_type(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "order_protection",
        "order_timeout_action",
        "log_format",
        "log_level",
        "instance_guardrails",
        "require_artifact_approval",
        mode="before",
    )
    @classmethod
    def _lower_choice(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_password", "api_token", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value else value

    @field_validator("approval_sources", mode="before")
    @classmethod
    def _source_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        names = [part.strip().lower() for part in value.split(",") if part.strip()]
        unknown = [name for name in names if name not in APPROVAL_SOURCE_NAMES]
        if unknown:
            raise ValueError(
                f"unknown approval source {', '.join(unknown)} "
                f"(known: {', '.join(APPROVAL_SOURCE_NAMES)})"
            )
        if not names:
            raise ValueError(f"must name at least one of {', '.join(APPROVAL_SOURCE_NAMES)}")
        return frozenset(names)

    @field_validator("flatten_at", mode="before")
    @classmethod
    def _clock_time(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not text:
            return None
        match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", text)
        if match is None:
            raise ValueError("must be a time of day as HH:MM (24-hour), such as 15:55")
        return time(int(match[1]), int(match[2]))

    @field_validator("max_risk_per_trade", "max_position_value_pct", "max_daily_loss")
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("must be a finite number")
        return value

    @field_validator("max_daily_realized_loss")
    @classmethod
    def _finite_realized(cls, value: Decimal) -> Decimal:
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
        if 0 < self.max_position_size < self.min_position_size:
            raise ValueError(
                "MIN_POSITION_SIZE must not exceed MAX_POSITION_SIZE "
                f"({self.min_position_size} > {self.max_position_size})"
            )
        if self.order_protection == "bracket" and self.bridge_max_messages_per_second < 3:
            raise ValueError(
                "BRIDGE_MAX_MESSAGES_PER_SECOND must be at least 3 with ORDER_PROTECTION=bracket "
                f"(a bracket is 3 messages; it is {self.bridge_max_messages_per_second})"
            )
        return self

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.trading_day_timezone)

    def origin(self, name: str) -> str:
        """Where setting `name` (any case) came from: "default", "environment", "argument",
        "credential NAME" or "FILE:LINE"."""
        return self._origins.get(name.lower(), "default")

    def limits_off(self) -> tuple[str, ...]:
        """The limits set to 0 (off), by variable name, for the start-up warning and `status`:
        any of MAX_POSITION_SIZE, MAX_OPEN_POSITIONS, MAX_DAILY_LOSS, MAX_DAILY_REALIZED_LOSS,
        MAX_CONSECUTIVE_FAILURES."""
        return tuple(name.upper() for name in OFF_WHEN_ZERO if getattr(self, name) == 0)

    def limits_off_warning(self) -> str | None:
        """One sentence naming the limits someone set to 0 (off), or None. A limit whose default
        is 0 (MAX_DAILY_REALIZED_LOSS) is named only when it was set explicitly: a warning on
        every default start-up would teach operators to ignore it."""
        fields = type(self).model_fields
        off = tuple(
            name
            for name in self.limits_off()
            if fields[name.lower()].default != 0 or self.origin(name) != "default"
        )
        if not off:
            return None
        sentence = f"limits off (set to 0): {', '.join(off)}"
        if "MAX_POSITION_SIZE" in off:
            sentence += f"; orders stay capped at {POSITION_SIZE_CEILING:,} shares"
        return sentence

    def validate_for_run(self) -> None:
        """Raise ConfigError unless `run` could start with these settings (DATABASE_URL set);
        `check-config` calls it so that it accepts exactly what `run` accepts."""
        if self.database_url is None:
            where = self.origin("database_url")
            how = "is empty" if where != "default" else "is not set"
            source = f" ({where})" if where != "default" else ""
            raise ConfigError(f"DATABASE_URL: required by run but {how}{source}")

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
        """Every setting as an env-style string, secrets masked (for logs and check-config);
        an unset or empty secret shows as "(unset)", never as the mask."""
        view: dict[str, str] = {}
        for name in type(self).model_fields:
            view[name.upper()] = _shown(getattr(self, name), name)
        return view


def _shown(value: object, name: str) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        if not value.get_secret_value():
            return "(unset)"
        return redact_dsn(value.get_secret_value()) if name == "database_url" else MASK
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, frozenset):
        return ",".join(source for source in APPROVAL_SOURCE_NAMES if source in value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value)


# -- loading ---------------------------------------------------------------------------------------


class _MergedSettings(Settings):
    """Validates values that load_settings has already merged from every source: it reads
    nothing itself (pydantic-settings would otherwise read os.environ again)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


_FIELDS = tuple(Settings.model_fields)
_BY_VARIABLE = {name.upper(): name for name in _FIELDS}
# Settings whose value is a single line of text: a value with a line break or another control
# character in it came from a quote left open or a stray character, never from intent.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _closest(key: str) -> str:
    match = difflib.get_close_matches(key.upper(), list(_BY_VARIABLE), n=1, cutoff=0.75)
    return f" (did you mean {match[0]}?)" if match else ""


def _file_values(path: str) -> tuple[dict[str, Assignment], dict[str, str]]:
    """Settings (by field name) and process variables from the env file at `path`."""
    try:
        assignments, problems = scan_env_file(path)
    except FileNotFoundError:
        raise ConfigError(f"env file {path}: not found") from None
    except IsADirectoryError:
        raise ConfigError(f"env file {path}: is a directory") from None
    except PermissionError:
        raise ConfigError(f"env file {path}: cannot be read (permission denied)") from None
    except OSError as error:
        raise ConfigError(f"env file {path}: cannot be read ({error.strerror})") from None
    settings: dict[str, Assignment] = {}
    process: dict[str, str] = {}
    for key, item in assignments.items():
        name = _BY_VARIABLE.get(key.upper())
        if name is None:
            if _PROCESS_VARIABLE.match(key):
                process[key] = item.value
            else:
                problems.append(
                    Problem(item.path, item.line, f"unknown setting {key}{_closest(key)}")
                )
            continue
        if name in settings:  # systemd passes both spellings on; which one wins is arbitrary
            first = settings[name]
            problems.append(
                Problem(
                    item.path,
                    item.line,
                    f"{key} is also set as {first.key} on line {first.line}; keep one",
                )
            )
            continue
        if _CONTROL.search(item.value):
            what = (
                f"spans lines {item.line}-{item.end_line} (a quote left open?)"
                if item.end_line > item.line or "\n" in item.value
                else "contains a control character"
            )
            problems.append(Problem(item.path, item.line, f"the value of {key} {what}"))
            continue
        settings[name] = item
    if problems:
        problems.sort(key=lambda problem: problem.line)
        raise ConfigError("invalid env file: " + "; ".join(str(p) for p in problems))
    return settings, process


def _environment_values(environ: Mapping[str, str]) -> dict[str, str]:
    """Settings set in the environment, by field name (variable names in any case)."""
    found: dict[str, tuple[str, str]] = {}
    for key, value in environ.items():
        name = _BY_VARIABLE.get(key.upper())
        if name is None:
            continue
        if name in found and found[name][0] != key:
            raise ConfigError(
                f"{name.upper()} is set twice in the environment ({found[name][0]} and {key}); "
                "keep one"
            )
        found[name] = (key, value)
    return {name: value for name, (_, value) in found.items()}


def _credential_values(environ: Mapping[str, str]) -> dict[str, str]:
    """Secrets from systemd credentials ($CREDENTIALS_DIRECTORY/NAME), by field name."""
    directory = environ.get(CREDENTIALS_DIRECTORY_VARIABLE)
    if not directory:
        return {}
    found: dict[str, str] = {}
    for name, credential in CREDENTIALS.items():
        path = Path(directory) / credential
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(
                f"{name.upper()}: systemd credential {credential} cannot be read ({error})"
            ) from None
        # `echo secret > file` leaves a newline that is no part of the secret.
        text = text.removesuffix("\n").removesuffix("\r")
        if text:
            found[name] = text
    return found


def _describe(error: ValidationError, raw: Mapping[str, object], origins: Mapping[str, str]) -> str:
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        name = str(item["loc"][0]) if item["loc"] else ""
        if not name:  # a rule across settings: name where each setting it mentions came from
            named = [field for field in _FIELDS if re.search(rf"\b{field.upper()}\b", message)]
            where = ", ".join(
                f"{field.upper()} from {origins.get(field, 'default')}" for field in named
            )
            lines.append(f"{message} [{where}]" if where else message)
            continue
        where = origins.get(name, "default")
        if name in SECRET_SETTINGS or name not in raw:
            lines.append(f"{name.upper()} ({where}): {message}")
        else:
            value = str(raw[name])
            hint = ""
            if " #" in value and ":" in where:
                hint = " (an env file has no comments after a value: all after '=' is the value)"
            lines.append(f"{name.upper()}={value!r} ({where}): {message}{hint}")
    return "; ".join(lines)


def load_settings(
    env_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read the settings: `overrides`, then the environment (`environ`, default os.environ),
    then systemd credentials, then `env_file` (or the file named by TRADE_EXECUTOR_ENV_FILE),
    then the defaults. Raises ConfigError naming each bad setting, its value unless secret and
    its origin; an env file with an unknown key, or a line systemd would drop, is refused.

    With `environ` left to the default, the env file's process variables (TZ, PG*, proxies:
    see _PROCESS_VARIABLE) are exported into os.environ where not already set, as systemd
    would have set them."""
    env = os.environ if environ is None else environ
    path = env_file or env.get(ENV_FILE_VARIABLE) or None
    raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    process: dict[str, str] = {}
    if path is not None:
        from_file, process = _file_values(str(path))
        for name, item in from_file.items():
            raw[name], origins[name] = item.value, item.origin
    from_environment = _environment_values(env)
    for name, value in _credential_values(env).items():
        if name in from_environment or name in raw:
            where = "the environment" if name in from_environment else origins[name]
            raise ConfigError(
                f"{name.upper()} is set both as the systemd credential {CREDENTIALS[name]} "
                f"and in {where}; keep one"
            )
        raw[name], origins[name] = value, f"credential {CREDENTIALS[name]}"
    for name, value in from_environment.items():
        raw[name], origins[name] = value, "environment"
    for name, value in overrides.items():
        raw[name], origins[name] = value, "argument"
    try:
        checked = _MergedSettings(**raw)
    except ValidationError as error:
        raise ConfigError(f"invalid configuration: {_describe(error, raw, origins)}") from None
    # A plain Settings holding the validated values (construct: no second validation, no
    # second read of the environment).
    settings = Settings.model_construct(
        _fields_set=checked.model_fields_set, **{name: getattr(checked, name) for name in _FIELDS}
    )
    settings._origins.update(origins)  # filled once, here, before anyone reads it
    if environ is None:
        for key, value in process.items():
            os.environ.setdefault(key, value)
    return settings
