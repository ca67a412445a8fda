"""How the console writes numbers, times and ids (template filters): money to the cent with its
sign, as exact Decimal text (never through float)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

CENT = Decimal("0.01")


def money(value: Any) -> str:
    if value is None:
        return "–"
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return f"{number.quantize(CENT):,}"


def signed(value: Any) -> str:
    if value is None:
        return "–"
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return f"{number.quantize(CENT):+,}" if number else "0.00"


def number(value: Any) -> str:
    if value is None:
        return "–"
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def clock(value: Any, zone: ZoneInfo | None = None) -> str:
    if not isinstance(value, datetime):
        return "–"
    shown = value.astimezone(zone) if zone is not None else value
    return shown.strftime("%H:%M:%S")


def stamp(value: Any) -> str:
    if not isinstance(value, datetime):
        return "–"
    return value.isoformat(timespec="milliseconds")


def short(value: Any) -> str:
    return str(value)[:8] if value else "–"


def tone(value: Any) -> str:
    """The CSS class of an amount: gain, loss or flat."""
    if value is None:
        return "flat"
    return "gain" if value > 0 else "loss" if value < 0 else "flat"


FILTERS = {
    "money": money,
    "signed": signed,
    "number": number,
    "clock": clock,
    "stamp": stamp,
    "short": short,
    "tone": tone,
}
