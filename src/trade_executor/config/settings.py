"""The settings (CONTRACT section 3): every variable, its default, its validation, and how it is
shown with secrets redacted. Where values come from is `config.load_settings`.

Sources, strongest first: keyword overrides (tests, the demo), the process environment, systemd
credentials (`$CREDENTIALS_DIRECTORY/database_password` and `.../api_token`, for
`LoadCredential=`), the env file (`--env-file` or TRADE_EXECUTOR_ENV_FILE, read as systemd's
`EnvironmentFile=` reads it: see `trade_executor.config.envfile`), then the defaults. Each value
remembers where it came from (`Settings.origin`).

Every invalid value stops start-up with `ConfigError`, whose message names the setting, the bad
value (unless it is a secret) and where it came from (file:line, "environment", ...); the command
line turns it into exit code 78 (EX_CONFIG). An env file is stricter than the environment: a key
that is no setting is an error there (a misspelt limit must not fall back to its default), while
the process environment may hold anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import time
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    SettingsConfigDict,
)

from trade_executor.config.dburl import DatabaseUrl, DatabaseUrlError, parse_database_url
from trade_executor.config.redact import MASK, UNSET, redact_dsn
from trade_executor.domain.session import SessionSpecError, check_spec
from trade_executor.domain.sizing import POSITION_SIZE_CEILING

EX_CONFIG = 78
ENV_FILE_VARIABLE = "TRADE_EXECUTOR_ENV_FILE"
CREDENTIALS_DIRECTORY_VARIABLE = "CREDENTIALS_DIRECTORY"

OrderType = Literal["LMT", "MKT", "STP"]
ApprovalSource = Literal["trade_approvals", "signal_status"]
Toggle = Literal["auto", "on", "off"]
# Display order of APPROVAL_SOURCES (the contract's default order).
APPROVAL_SOURCE_NAMES: tuple[ApprovalSource, ...] = ("trade_approvals", "signal_status")
# What NOTIFY_EVENTS may name (CONTRACT section 3), in display order; all are sent by default.
NotifyEvent = Literal[
    "filled",
    "closed",
    "halted",
    "breaker",
    "needs_operator",
    "reconcile_break",
    "live_refused",
    "daily_summary",
]
NOTIFY_EVENT_NAMES: tuple[NotifyEvent, ...] = (
    "filled",
    "closed",
    "halted",
    "breaker",
    "needs_operator",
    "reconcile_break",
    "live_refused",
    "daily_summary",
)

# Settings whose values never appear in a message, a log line or check-config's output.
SECRET_SETTINGS = frozenset({"database_url", "database_password", "api_token", "notify_urls"})
# Secrets that may also come from a systemd credential (LoadCredential=NAME:PATH): setting name
# -> credential name.
CREDENTIALS: Mapping[str, str] = {
    "database_password": "database_password",
    "api_token": "api_token",
    "notify_urls": "notify_urls",
}
# Limits where 0 means off (CONTRACT section 3), in the order warnings name them.
OFF_WHEN_ZERO = (
    "max_position_size",
    "max_open_positions",
    "max_daily_loss",
    "max_daily_realized_loss",
    "max_consecutive_failures",
)
# MAX_RISK_PER_TRADE: common sizing rules risk 1-2% of the account per trade, so above
# RISK_PER_TRADE_WARNING the service warns. Above RISK_PER_TRADE_CEILING it refuses to start: at
# 5% ten losing trades in a row (an ordinary streak for a strategy that wins 40%) already cost
# 40% of net liquidation, and a larger value is nearly always a percentage typed as a fraction
# (MAX_RISK_PER_TRADE=1 meant as 1% puts all of net liquidation at risk on one trade).
RISK_PER_TRADE_WARNING = Decimal("0.02")
RISK_PER_TRADE_CEILING = Decimal("0.05")


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
    max_risk_per_trade: Decimal = Field(default=Decimal("0.01"), gt=0)  # <= the ceiling
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
    # A signal with no expires_at expires at generated_at + this (the original's 24 hours).
    signal_default_ttl: float = Field(default=86400.0, gt=0)
    # When entries may be sent: an exchange calendar's code (holidays and early closes from the
    # exchange-calendars library) or HH:MM-HH:MM in TRADING_DAY_TIMEZONE, Monday to Friday.
    trading_session: str = "XNYS"
    # Outside the session: reject (`rejected: market_closed`, before any broker call) or send.
    outside_session: Literal["reject", "send"] = "reject"
    trading_day_timezone: str = "America/New_York"
    flatten_at: time | None = None  # HH:MM in TRADING_DAY_TIMEZONE; unset = never
    # Positions whose DAY children expired at the close are protected again at the next open.
    reprotect_at_open: bool = True
    sweep_interval: float = Field(default=30.0, gt=0)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8100, ge=0, le=65535)
    api_token: SecretStr | None = None
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    # Apprise URLs, comma-separated (a secret: tokens live in them); unset = no notifications.
    notify_urls: SecretStr | None = None
    notify_events: Annotated[frozenset[NotifyEvent], NoDecode] = frozenset(NOTIFY_EVENT_NAMES)
    # Operational knobs beyond the contract's table (all optional).
    standby_retry_interval: float = Field(default=2.0, gt=0)
    listener_health_interval: float = Field(default=5.0, gt=0)
    shutdown_grace: float = Field(default=10.0, ge=0)
    cancelled_recheck_delay: float = Field(default=3.0, ge=0)
    # Polls in flight at once. Each costs client CPU in proportion to the pool's size, so few is
    # fastest against a nearby bridge (measured in docs/BENCHMARKS.md); raise it for a slow one.
    order_poll_concurrency: int = Field(default=4, ge=1, le=64)
    # (CONTRACT v3, "Account snapshot") seconds: a decision uses the account snapshot kept in the
    # background only when its read began less than this ago (and after our last order or
    # fill), else it waits for a fresh read (actors/account_snapshot.py).
    account_snapshot_max_age: float = Field(default=2.0, gt=0, le=60)

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

    @field_validator("notify_urls", mode="before")
    @classmethod
    def _notify_urls(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(text, str):
            return value
        urls = split_notify_urls(text)
        if not urls:
            return None
        for index, url in enumerate(urls, 1):
            # The message never repeats the URL: its tokens are the secret.
            scheme, sep, rest = url.partition("://")
            if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme) or not rest:
                raise ValueError(
                    f"target {index} is not an Apprise URL such as tgram://TOKEN/CHAT or "
                    "json://host:port/path"
                )
        return ",".join(urls)

    @field_validator("notify_events", mode="before")
    @classmethod
    def _notify_events(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return frozenset(_known_names(value, NOTIFY_EVENT_NAMES, "notification event"))

    @field_validator("approval_sources", mode="before")
    @classmethod
    def _source_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        names = _known_names(value, APPROVAL_SOURCE_NAMES, "approval source")
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

    @field_validator("max_risk_per_trade")
    @classmethod
    def _at_most_the_ceiling(cls, value: Decimal) -> Decimal:
        if value.is_finite() and value > RISK_PER_TRADE_CEILING:
            raise ValueError(
                f"must be at most {RISK_PER_TRADE_CEILING} (a fraction: 0.01 risks 1% of net "
                "liquidation per trade; 1 would risk all of it)"
            )
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
            parse_database_url(value.get_secret_value())
        except DatabaseUrlError as error:  # one sentence, never the value (it is a secret)
            raise ValueError(str(error)) from None
        return value

    @field_validator("trading_session")
    @classmethod
    def _session(cls, value: str) -> str:
        return check_spec(value)

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

    def risk_per_trade_warning(self) -> str | None:
        """One sentence when MAX_RISK_PER_TRADE is above RISK_PER_TRADE_WARNING, else None."""
        if self.max_risk_per_trade <= RISK_PER_TRADE_WARNING:
            return None
        return (
            f"MAX_RISK_PER_TRADE={self.max_risk_per_trade} risks "
            f"{(self.max_risk_per_trade * 100).normalize():f}% of net liquidation per trade "
            f"(above {RISK_PER_TRADE_WARNING}; refused above {RISK_PER_TRADE_CEILING})"
        )

    def warnings(self) -> list[str]:
        """The sentences `check-config` prints and `run` logs at warning before starting."""
        found = (self.limits_off_warning(), self.risk_per_trade_warning())
        return [sentence for sentence in found if sentence is not None]

    def validate_for_run(self) -> None:
        """Raise ConfigError unless `run` could start with these settings (DATABASE_URL set);
        `check-config` calls it so that it accepts exactly what `run` accepts."""
        if self.database_url is None:
            where = self.origin("database_url")
            how = "is empty" if where != "default" else "is not set"
            source = f" ({where})" if where != "default" else ""
            raise ConfigError(f"DATABASE_URL: required by run but {how}{source}")
        if self.outside_session == "reject":
            # Built now (and cached for the process), so an unknown calendar stops the start
            # and no approval ever waits for the calendar library to load.
            from trade_executor.config.session_calendar import trading_session

            try:
                trading_session(self.trading_session, self.trading_day_timezone)
            except SessionSpecError as error:
                raise ConfigError(str(error)) from None

    def dsn(self) -> str:
        """The database DSN asyncpg connects with: DATABASE_PASSWORD merged in, the keyword
        form converted to a URL, several hosts given `target_session_attrs=read-write` unless
        the URL says otherwise (`dburl`). A one-host URL without a password to merge is
        returned as written. Raises ConfigError if unset."""
        if self.database_url is None:
            raise ConfigError("DATABASE_URL: required by this command but not set")
        raw = self.database_url.get_secret_value()
        url = self.database_url_parsed()
        if self.database_password is None and "://" in raw and not url.several_hosts:
            return raw
        if self.database_password is not None:
            url = url.with_password(self.database_password.get_secret_value())
        return url.to_url()

    def database_url_parsed(self) -> DatabaseUrl:
        """DATABASE_URL read (its hosts, for messages); raises ConfigError if unset."""
        if self.database_url is None:
            raise ConfigError("DATABASE_URL: required by this command but not set")
        return parse_database_url(self.database_url.get_secret_value())

    def secret_values(self) -> list[str]:
        """Raw secret strings, for the log redactor: each as written and percent-decoded or
        -encoded, since a library may print either form."""
        raw: list[str] = []
        for secret in (self.database_password, self.api_token):
            if secret is not None and secret.get_secret_value():
                raw.append(secret.get_secret_value())
        for url in self.notify_target_urls():
            raw.extend(notify_url_secrets(url))
        if self.database_url is not None:
            password = self.database_url_parsed().password
            if password:
                raw.append(password)
        found: list[str] = []
        for value in raw:
            for form in (value, unquote(value), quote(value, safe="")):
                if form and form not in found:
                    found.append(form)
        return found

    def notify_target_urls(self) -> list[str]:
        """The NOTIFY_URLS targets, one URL each (empty: no notifications)."""
        if self.notify_urls is None:
            return []
        return split_notify_urls(self.notify_urls.get_secret_value())

    def redacted(self) -> dict[str, str]:
        """Every setting as an env-style string, secrets masked (for logs and check-config);
        an unset or empty secret shows as "(unset)", never as the mask."""
        view: dict[str, str] = {}
        for name in type(self).model_fields:
            view[name.upper()] = _shown(getattr(self, name), name)
        return view


def split_notify_urls(text: str) -> list[str]:
    """NOTIFY_URLS as a list: comma- (or whitespace-) separated, blanks dropped."""
    return [part for part in re.split(r"[,\s]+", text.strip()) if part]


def notify_target_name(url: str) -> str:
    """How a NOTIFY_URLS target is named in logs, status and check-config: its scheme only
    (`tgram://***`); everything after it may hold a token."""
    scheme = url.partition("://")[0].lower() or "?"
    return f"{scheme}://{MASK}"


# Hosts that are places, not tokens: an http-like target's host is shown in no log anyway.
_PLAIN_HOST = re.compile(r"(?i)^(localhost|[0-9.]+|\[[0-9a-f:]+\]|[a-z0-9\-]+(\.[a-z0-9\-]+)+)$")


def notify_url_secrets(url: str) -> list[str]:
    """What of an Apprise URL to mask wherever it appears: the URL itself, and each part that
    may be a token (user, password, a host that is no host name such as a Telegram bot token,
    path segments, query values) of 6 characters or more."""
    found = [url]
    _, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    creds, _, host = netloc.rpartition("@")
    parts = [*creds.split(":"), *path.split("/")]
    parts += [value for _, _, value in (item.partition("=") for item in query.split("&"))]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and name:
        host = name  # host:port; anything else with a colon (a bot token) is kept whole
    if host and not _PLAIN_HOST.match(host):
        parts += [host, *host.split(":")]
    found += [unquote(part) for part in parts if len(part) >= 6]
    return found


def _known_names(value: str, known: Iterable[str], what: str) -> list[str]:
    """A comma-separated list of names, each one of `known` (ValueError naming the others)."""
    allowed = tuple(known)
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)} (known: {', '.join(allowed)})")
    return names


def _shown(value: object, name: str) -> str:
    if value is None:
        return UNSET
    if isinstance(value, SecretStr):
        if not value.get_secret_value():
            return UNSET
        if name == "notify_urls":
            return ",".join(
                notify_target_name(url) for url in split_notify_urls(value.get_secret_value())
            )
        return redact_dsn(value.get_secret_value()) if name == "database_url" else MASK
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, frozenset) and name == "notify_events":
        return ",".join(event for event in NOTIFY_EVENT_NAMES if event in value) or "(none)"
    if isinstance(value, frozenset):
        return ",".join(source for source in APPROVAL_SOURCE_NAMES if source in value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value)
