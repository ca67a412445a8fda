"""Rows of asyncpg to the domain's dataclasses and back."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import fields
from decimal import Decimal
from typing import Any

import asyncpg

from trade_executor.domain.execution import CHANGE_FIELDS, EXECUTION_FIELDS, Changes, Execution
from trade_executor.domain.models import Approval, Signal
from trade_executor.domain.states import ExecutionState

_SIGNAL_FIELDS = tuple(field.name for field in fields(Signal))

# Columns whose database form differs from the dataclass's.
_FROM_DB: dict[str, Callable[[Any], Any]] = {
    "state": ExecutionState,
    "child_order_ids": lambda ids: tuple(ids or ()),
}


def execution_from_row(row: asyncpg.Record | Mapping[str, Any]) -> Execution:
    """Every field of `Execution` from the column of the same name (columns the dataclass does
    not know, added by a newer migration, are ignored)."""
    values = {name: row[name] for name in EXECUTION_FIELDS}
    for name, convert in _FROM_DB.items():
        values[name] = convert(values[name])
    return Execution(**values)


def changes_to_db(changes: Changes) -> dict[str, Any]:
    """The bind values of `Changes` (None keeps the column), in the database's form."""
    values = {name: getattr(changes, name) for name in CHANGE_FIELDS}
    if values["child_order_ids"] is not None:
        values["child_order_ids"] = list(values["child_order_ids"])
    return values


def signal_from_row(row: asyncpg.Record, prefix: str = "") -> Signal:
    """Every field of `Signal` from the column of the same name (after `prefix`)."""
    return Signal(**{name: row[f"{prefix}{name}"] for name in _SIGNAL_FIELDS})


def approval_from_row(row: asyncpg.Record, prefix: str = "") -> Approval:
    return Approval(
        id=row[f"{prefix}id"],
        signal_id=row[f"{prefix}signal_id"],
        approved=bool(row[f"{prefix}approved"]),
        approved_at=row[f"{prefix}approved_at"],
        approved_by=row[f"{prefix}approved_by"],
        created_at=row[f"{prefix}created_at"],
        order_id=row[f"{prefix}order_id"],
    )


def instance_config(text: str | None) -> dict[str, object]:
    """`strategy_instances.config` (jsonb as text); numbers exact. Not an object: empty (the
    guards then apply the original's defaults)."""
    try:
        value = json.loads(text or "{}", parse_float=Decimal)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
