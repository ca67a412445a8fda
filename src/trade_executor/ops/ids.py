"""Ids as operators type them: a whole UUID or a short prefix of one (`3f2a`, `3f2a91c0-5b`).

A prefix is turned into the range of UUIDs that start with it, `[low, high]`, so a look-up is an
index range scan on `executions.id` or `executions.signal_id` (PostgreSQL orders uuids byte by
byte, which is the order of their hex text), never a scan of the table's text.

Guarantees: `parse_id` accepts exactly hex digits with optional dashes, at least
`MIN_PREFIX` of them and at most 32; anything else raises `IdSyntaxError` (bad usage, exit 2),
before any database is asked. A whole UUID is an exact match (`low == high`).
"""

from __future__ import annotations

import argparse
import string
from dataclasses import dataclass
from uuid import UUID

MIN_PREFIX = 4
_HEX = frozenset(string.hexdigits)


class IdSyntaxError(ValueError):
    """The text is no id and no id prefix."""


@dataclass(frozen=True, slots=True)
class IdPattern:
    """What an operator typed, as the range of UUIDs it can stand for."""

    text: str
    low: UUID
    high: UUID

    @property
    def exact(self) -> UUID | None:
        """The UUID itself when the whole id was given, else None."""
        return self.low if self.low == self.high else None

    def matches(self, value: UUID) -> bool:
        return self.low <= value <= self.high


def parse_id(text: str) -> IdPattern:
    """The id or id prefix in `text`; raises `IdSyntaxError` with one sentence."""
    cleaned = text.strip().lower()
    digits = cleaned.replace("-", "")
    if not digits or not set(digits) <= _HEX:
        raise IdSyntaxError(f"{text!r} is not an id (hex digits of a UUID, or a prefix of one)")
    if len(digits) > 32:
        raise IdSyntaxError(f"{text!r} is longer than a UUID")
    if len(digits) < MIN_PREFIX:
        raise IdSyntaxError(
            f"{text!r} is too short: give at least {MIN_PREFIX} hex digits of the id"
        )
    low = UUID(digits.ljust(32, "0"))
    high = UUID(digits.ljust(32, "f"))
    return IdPattern(text.strip(), low, high)


def id_argument(text: str) -> IdPattern:
    """`parse_id` as an argparse `type=`: a bad id is a usage error (exit 2) naming the value."""
    try:
        return parse_id(text)
    except IdSyntaxError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def short(value: UUID | str | None, length: int = 8) -> str:
    """The first `length` hex digits of an id, as `show` and `status` print them."""
    return "-" if value is None else str(value)[:length]
