"""Masking of secrets in text: DSN credentials and bearer tokens.

Used by the configuration's redacted view and by the logging processor, so that a secret never
reaches a log line even when a developer logs it by mistake.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from trade_executor.config.dburl import DatabaseUrlError, parse_database_url

MASK = "***"
# How an unset secret is shown: it says that nothing is set, and hides nothing.
UNSET = "(unset)"

# scheme://user:password@host  or  scheme://user@host  (the user alone may be a secret too).
# Greedy up to the last "@" before the path: an unencoded "@" in a password must not leak its tail.
_DSN_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<creds>[^/\s'\"]+)@")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+")
# password=x, DATABASE_PASSWORD=x, api_token: x, "password": "x" (a JSON or repr'd dict).
_KEYWORD_SECRET = re.compile(
    r"(?i)\b([\w\-]*?(?:password|passwd|pwd|token|secret|api[_\-]?key))"
    r"(['\"]?\s*[=:]\s*['\"]?)([^\s,;'\"&}]+)"
)
# Keys of structured data (log fields, nested dicts) whose whole value is a secret.
SECRET_KEY = re.compile(
    r"(?i)(password|passwd|pwd|token|secret|api[_\-]?key|authorization|credential)"
)


def redact_dsn(dsn: str) -> str:
    """`postgresql://alice:pw@db:5432/x` -> `postgresql://***:***@db:5432/x`; several hosts and
    libpq's keyword form are shown as a URL of every host (`dburl`); never raises."""
    if "," in dsn or "://" not in dsn:
        try:
            return parse_database_url(dsn).redacted()
        except DatabaseUrlError:
            return redact_text(dsn)
    try:
        parts = urlsplit(dsn)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a bad port, say: fall back to pattern masking
        return redact_text(dsn)
    if not parts.scheme or not parts.hostname:
        return redact_text(dsn)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6
    # The query is dropped: it may carry password=... or sslpassword=...
    return f"{parts.scheme}://{MASK}:{MASK}@{host}{port}{parts.path}"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask DSN credentials, bearer tokens, `password=...` pairs and any known secret value."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _DSN_CREDENTIALS.sub(lambda m: f"{m['scheme']}{MASK}:{MASK}@", text)
    text = _BEARER.sub(lambda m: f"{m[1]}{MASK}", text)
    return _KEYWORD_SECRET.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
