"""JSON to and from `jsonb` columns: Decimals, UUIDs and moments written as text, fractions read
back as Decimal. No driver here: the memory store normalises its event details with it too."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from uuid import UUID


def _json_default(value: object) -> str:
    if isinstance(value, Decimal | UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(detail: dict[str, Any] | None) -> str:
    """`detail` (None: empty) as the text of a `jsonb` value."""
    return json.dumps(detail or {}, default=_json_default)


def detail_from_json(raw: str | None) -> dict[str, Any]:
    """A stored `jsonb` detail, fractions as Decimal; anything but an object is kept whole."""
    if raw is None:
        return {}
    value = json.loads(raw, parse_float=Decimal)
    return value if isinstance(value, dict) else {"value": value}


def json_object(value: object) -> dict[str, Any]:
    """A jsonb column as asyncpg returns it (text, unless a codec is set) as a dict."""
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return dict(value) if isinstance(value, dict) else {}
