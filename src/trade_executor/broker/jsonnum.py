"""JSON with exact numbers: every JSON number with a fraction becomes a `Decimal`, never a float.

The standard library can parse numbers to `Decimal` but cannot write them back as bare numbers,
so `dumps` is a small encoder of its own for the flat, known shapes this package sends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(data: str | bytes, *, non_finite: bool = False) -> Any:
    """Parse JSON; fractions become `Decimal`.

    The non-standard constants NaN, Infinity and -Infinity are refused (`ValueError`) unless
    `non_finite` is true; then they become the non-finite `Decimal`s, for a schema to judge
    (the bridge client reads a non-finite price as "no price" and refuses a non-finite amount).
    """
    if non_finite:
        return json.loads(data, parse_float=Decimal, parse_constant=Decimal)
    return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)


def format_decimal(value: Decimal) -> str:
    """A finite Decimal as a JSON number in plain notation (no exponent)."""
    if not value.is_finite():
        raise ValueError(f"{value} cannot be sent as a JSON number")
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def dumps(value: object) -> str:
    """Encode dicts, lists, str, int, float, bool, None, Decimal (as a number), aware datetimes."""
    if value is None or isinstance(value, bool | int | str):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, datetime):
        return json.dumps(rfc3339(value))
    if isinstance(value, float):  # admin settings and clocks only; money is always Decimal
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value} cannot be sent as a JSON number")
        return repr(value)
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def rfc3339(moment: datetime) -> str:
    """UTC with microseconds and a `Z`, e.g. 2024-05-01T13:30:00.000123Z."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are not sent")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
