"""Configuration (CONTRACT section 3): where the settings' values come from.

Sources, strongest first: keyword overrides (tests, the demo), the process environment, systemd
credentials (`$CREDENTIALS_DIRECTORY/database_password` and `.../api_token`, for
`LoadCredential=`), the env file (`--env-file` or TRADE_EXECUTOR_ENV_FILE, read as systemd's
`EnvironmentFile=` reads it: see `trade_executor.config.envfile`), then the defaults. Each value
remembers where it came from (`Settings.origin`). The settings themselves (names, defaults,
validation) are `trade_executor.config.settings`; this module re-exports them.

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
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from trade_executor.config.envfile import Assignment, Problem, scan_env_file
from trade_executor.config.settings import (
    APPROVAL_SOURCE_NAMES,
    CREDENTIALS,
    CREDENTIALS_DIRECTORY_VARIABLE,
    ENV_FILE_VARIABLE,
    EX_CONFIG,
    OFF_WHEN_ZERO,
    SECRET_SETTINGS,
    ConfigError,
    Settings,
)

# Variables an env file may set besides the settings: they are not ours but change how the
# process runs under systemd (time zone, locale, libpq/asyncpg's PG*, TLS roots, proxies for
# httpx). The CLI exports them the way systemd would, without overriding the environment.
_PROCESS_VARIABLE = re.compile(
    r"(TZ|LANG|LANGUAGE|LC_[A-Z]+|PG[A-Z]+|SSL_CERT_FILE|SSL_CERT_DIR"
    r"|(?i:http_proxy|https_proxy|all_proxy|no_proxy))\Z"
)

__all__ = [
    "APPROVAL_SOURCE_NAMES",
    "CREDENTIALS",
    "CREDENTIALS_DIRECTORY_VARIABLE",
    "ENV_FILE_VARIABLE",
    "EX_CONFIG",
    "OFF_WHEN_ZERO",
    "SECRET_SETTINGS",
    "ConfigError",
    "Settings",
    "load_settings",
]


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
