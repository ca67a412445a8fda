"""Breaks found by reconciliation with the broker (CONTRACT section 5), as plain values.

A break is identified by its kind, its symbol and the execution it concerns (None for a position
no execution explains): the same break seen again at a later pass is the same break, so the
store keeps when it was first and last seen and when it cleared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


class BreakKind(StrEnum):
    # A position at the broker that the ledger does not explain (an orphan, or a quantity the
    # ledger's executions cannot add up to).
    UNEXPLAINED_POSITION = "unexplained_position"
    # The ledger holds shares for a symbol (a filled entry) but the broker shows no position.
    MISSING_POSITION = "missing_position"
    # A position the ledger explains, with no working stop at the broker (ORDER_PROTECTION=
    # bracket): its bracket's DAY children expired at the close, or were cancelled.
    UNPROTECTED_POSITION = "unprotected_position"
    # The ledger recorded the entry `cancelled` but the broker lists fills for it (IB's error
    # 10349): the ledger is corrected through the executor.
    FILL_AFTER_CANCEL = "fill_after_cancel"


@dataclass(frozen=True, slots=True)
class ReconcileBreak:
    kind: BreakKind
    symbol: str
    execution_id: UUID | None = None
    order_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str, UUID | None]:
        return (self.kind.value, self.symbol, self.execution_id)


@dataclass(frozen=True, slots=True)
class RecordedBreak:
    """A break as stored: what `status` lists while `cleared_at` is None."""

    kind: str
    symbol: str
    execution_id: UUID | None
    order_id: int | None
    detail: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    cleared_at: datetime | None = None
