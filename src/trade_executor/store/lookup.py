"""Executions as operators name them, for the command line and the HTTP API alike.

Ids: a whole UUID or a short prefix of one (`3f2a`, `3f2a91c0-5b`). A prefix is turned into the
range of UUIDs that start with it, `[low, high]`, so a look-up is an index range scan on
`executions.id` or `executions.signal_id` (PostgreSQL orders uuids byte by byte, which is the
order of their hex text), never a scan of the table's text. `parse_id` accepts exactly hex digits
with optional dashes, at least `MIN_PREFIX` of them and at most 32; anything else raises
`IdSyntaxError` before any database is asked. A whole UUID is an exact match (`low == high`).

Views: an execution and its events as JSON-ready mappings; Decimals stay Decimal (written as
exact JSON numbers by `broker.jsonnum.dumps`), event kinds by their dotted names whichever
version wrote them (`domain.states.event_kind`).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, fields
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from trade_executor.domain.execution import Execution
from trade_executor.domain.states import event_kind
from trade_executor.store.protocol import LookupStore, StoredEvent

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


def short(value: UUID | str | None, length: int = 8) -> str:
    """The first `length` hex digits of an id, as `show` and `status` print them."""
    return "-" if value is None else str(value)[:length]


# More matches than this are not listed one by one: the prefix is simply too short.
MATCH_LIMIT = 10


class ExecutionLookupError(Exception):
    """An id that names no single execution; the message is one sentence."""


class NoSuchExecution(ExecutionLookupError):
    """No execution has that id, signal id or prefix."""


class AmbiguousId(ExecutionLookupError):
    """A prefix that several executions (or signals) start with."""


def plain(value: Any) -> Any:
    """A value as JSON carries it: Decimal stays Decimal (printed as an exact number)."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def execution_view(execution: Execution) -> dict[str, Any]:
    """Every column of the execution, JSON-ready."""
    return {f.name: plain(getattr(execution, f.name)) for f in fields(execution)}


def event_view(event: StoredEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at,
        "kind": event_kind(event.kind),
        "detail": plain(event.detail),
    }


async def find_execution(store: LookupStore, pattern: IdPattern) -> Execution:
    """The one execution whose id or signal id `pattern` names; `NoSuchExecution` or
    `AmbiguousId` (one sentence) when there is none or several."""
    found = await store.find_executions(pattern.low, pattern.high, MATCH_LIMIT + 1)
    if not found:
        raise NoSuchExecution(f"no execution has the id or signal id {pattern.text}")
    exact = pattern.exact
    if exact is not None:
        for execution in found:  # an execution id wins over another's signal id
            if execution.id == exact:
                return execution
    if len(found) == 1:
        return found[0]
    listed = ", ".join(f"{short(e.id)} (signal {short(e.signal_id)})" for e in found[:MATCH_LIMIT])
    more = " and more" if len(found) > MATCH_LIMIT else ""
    raise AmbiguousId(f"{pattern.text} is ambiguous: it starts {listed}{more}; give more digits")


async def load(store: LookupStore, pattern: IdPattern) -> tuple[Execution, list[StoredEvent]]:
    execution = await find_execution(store, pattern)
    return execution, await store.execution_events(execution.id)
