"""The payloads of the control channel (`trade_executor_control`): one JSON object each, naming
its `kind` (docs/LOG_EVENTS.md, "The control channel"):

- `kill_switch`: executor_control's trigger (migration 0008) on `halt` and `resume`:
  `{"kind": "kill_switch", "halted": bool, "reason": text}`;
- `execution_changed`: an operator's change (`Store.apply(announce=True)`, `announce_change`):
  `{"kind": "execution_changed", "execution_id": uuid}`;
- `close`: the `close` command (`store.closing`):
  `{"kind": "close", "close": {"symbol": text | null, "reason": text, "by": text}}`.

Every payload is a hint: the reader re-reads the tables (the kill switch, the execution) and a
payload lost while no one listens is made up by the sweeps, except a `close`, which the command
watches for and reports as not done.

A payload without `kind` comes from a version before 0008 (a rolling switch-over: the old
instance's `resolve` or `close`, or the trigger before `migrate`): it is read by the old rule, a
`close` object being a close request, an `execution_id` an execution changed, anything else the
kill switch. Payloads are untrusted: a known kind with a body that does not parse is `Malformed`,
a kind this version does not know is `UnknownKind`; neither raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from trade_executor.store.closing import MAX_PAYLOAD, ClosePayload, parse_close_payload

KILL_SWITCH = "kill_switch"
EXECUTION_CHANGED = "execution_changed"
CLOSE = "close"
KINDS = (KILL_SWITCH, EXECUTION_CHANGED, CLOSE)


@dataclass(frozen=True, slots=True)
class KillSwitchChanged:
    """The kill switch changed: re-read `executor_control` (the payload's values are a hint)."""


@dataclass(frozen=True, slots=True)
class ExecutionChangedPayload:
    """An execution was changed outside the running service: re-read it."""

    execution_id: UUID


@dataclass(frozen=True, slots=True)
class UnknownKind:
    """A kind this version does not know (a newer writer): ignored."""

    kind: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A payload of a known kind (or with a `kind` that is not a name) whose body is wrong."""

    kind: str
    problem: str


ControlPayload = (
    KillSwitchChanged | ExecutionChangedPayload | ClosePayload | UnknownKind | Malformed
)


@dataclass(frozen=True, slots=True)
class Parsed:
    payload: ControlPayload
    legacy: bool  # no `kind`: read by the old rule


def kill_switch_payload(halted: bool, reason: str | None) -> str:
    """What the trigger sends (migration 0008), for the stores that are not PostgreSQL."""
    return json.dumps({"kind": KILL_SWITCH, "halted": halted, "reason": reason})


def execution_payload(execution_id: UUID) -> str:
    """What `announce_change` sends (the SQL builds the same object: `queries.operator`)."""
    return json.dumps({"kind": EXECUTION_CHANGED, "execution_id": str(execution_id)})


def _execution_id(data: dict[str, Any]) -> UUID | None:
    value = data.get("execution_id")
    if not isinstance(value, str):
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


def parse_control_payload(payload: str) -> Parsed:
    """What a control notification says, by its `kind` (or by the old rule without one)."""
    data: object = None
    if len(payload) <= MAX_PAYLOAD:
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):
            data = None
    if not isinstance(data, dict) or "kind" not in data:
        return Parsed(_legacy(payload, data), legacy=True)
    kind = data["kind"]
    if not isinstance(kind, str):
        return Parsed(Malformed(repr(kind)[:40], "kind is not a name"), legacy=False)
    match kind:
        case "kill_switch":
            return Parsed(KillSwitchChanged(), legacy=False)
        case "execution_changed":
            execution_id = _execution_id(data)
            if execution_id is None:
                return Parsed(Malformed(kind, "no execution_id uuid"), legacy=False)
            return Parsed(ExecutionChangedPayload(execution_id), legacy=False)
        case "close":
            close = parse_close_payload(payload)
            if close is None:
                return Parsed(Malformed(kind, "no close request"), legacy=False)
            return Parsed(close, legacy=False)
        case _:
            return Parsed(UnknownKind(kind[:40]), legacy=False)


def _legacy(payload: str, data: object) -> ControlPayload:
    """The rule before `kind`: a close request, else an execution changed, else the switch."""
    close = parse_close_payload(payload)
    if close is not None:
        return close
    if isinstance(data, dict):
        execution_id = _execution_id(data)
        if execution_id is not None:
            return ExecutionChangedPayload(execution_id)
    return KillSwitchChanged()


__all__ = [
    "CLOSE",
    "EXECUTION_CHANGED",
    "KILL_SWITCH",
    "KINDS",
    "ClosePayload",
    "ControlPayload",
    "ExecutionChangedPayload",
    "KillSwitchChanged",
    "Malformed",
    "Parsed",
    "UnknownKind",
    "execution_payload",
    "kill_switch_payload",
    "parse_control_payload",
]
