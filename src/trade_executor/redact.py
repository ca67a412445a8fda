"""Masking of secrets in text: DSN credentials and bearer tokens.

Used by the configuration's redacted view and by the logging processor, so that a secret never
reaches a log line even when a developer logs it by mistake.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"

# scheme://user:password@host  or  scheme://user@host  (the user alone may be a secret too)
_DSN_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<creds>[^/@\s'\"]+)@")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+")
_KEYWORD_SECRET = re.compile(r"(?i)\b(password|passwd|pwd|token|secret)(\s*[=:]\s*)([^\s,;'\"&]+)")


def redact_dsn(dsn: str) -> str:
    """`postgresql://alice:pw@db:5432/x` -> `postgresql://***:***@db:5432/x`."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return MASK
    if not parts.scheme or not parts.hostname:
        return redact_text(dsn)
    port = f":{parts.port}" if parts.port else ""
    path = parts.path or ""
    return f"{parts.scheme}://{MASK}:{MASK}@{parts.hostname}{port}{path}"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask DSN credentials, bearer tokens, `password=...` pairs and any known secret value."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _DSN_CREDENTIALS.sub(lambda m: f"{m['scheme']}{MASK}:{MASK}@", text)
    text = _BEARER.sub(lambda m: f"{m[1]}{MASK}", text)
    return _KEYWORD_SECRET.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
