"""What the operator hears of reconciliation's breaks (CONTRACT section 5): each break once when
it is new, then a reminder at most every `reminder_interval` while it lasts, and once when it
clears. A break is the same break from pass to pass by its `key` (kind, symbol, execution).

- new: `reconcile.break` at error, and `trade_executor_reconcile_breaks_total{kind}` counts it
  once (it counted every pass: the dashboard's "breaks by kind" read passes, and 54 error lines
  in 12 minutes flooded `journalctl -p err`);
- still open: `reconcile.break_open` at warning, at most once per `reminder_interval` per break,
  with `passes` (the passes that found it since the previous line);
- gone: `reconcile.break_cleared` at info;
- `trade_executor_reconcile_breaks_open{kind}`: the breaks open after the last pass, by kind.

A restart forgets which breaks were open: each still there is new again at the first pass (the
counter restarts at 0 with the process anyway).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from trade_executor.domain.breaks import ReconcileBreak
from trade_executor.observability.logging import get_logger
from trade_executor.observability.metrics import Metrics

log = get_logger("trade_executor.reconciler")

# A break that lasts is worth a line every quarter of an hour, not one per pass.
REMINDER_INTERVAL = 900.0


@dataclass(slots=True)
class _Open:
    found: ReconcileBreak
    reminded_at: float
    passes: int = 0  # passes that found it since its last line


def _fields(found: ReconcileBreak) -> dict[str, Any]:
    return {
        "kind": found.kind.value,
        "symbol": found.symbol,
        "execution_id": str(found.execution_id) if found.execution_id else None,
        "order_id": found.order_id,
        **{k: v for k, v in found.detail.items() if k not in ("symbol", "kind")},
    }


class BreakReport:
    """Told each pass's breaks (`report`); logs and counts them as the module says."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        reminder_interval: float = REMINDER_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._interval = reminder_interval
        self._clock = clock
        self._open: dict[tuple[str, str, UUID | None], _Open] = {}

    @property
    def open(self) -> tuple[ReconcileBreak, ...]:
        return tuple(entry.found for entry in self._open.values())

    def report(self, breaks: Sequence[ReconcileBreak]) -> None:
        now = self._clock()
        found = {b.key: b for b in breaks}
        for key in [key for key in self._open if key not in found]:
            gone = self._open.pop(key)
            log.info("reconcile.break_cleared", **_fields(gone.found))
        for key, current in found.items():
            entry = self._open.get(key)
            if entry is None:
                self._open[key] = _Open(current, now)
                log.error("reconcile.break", **_fields(current))
                self._metrics.reconcile_break(current.kind.value)
                continue
            entry.found = current  # its detail may have moved (a quantity)
            entry.passes += 1
            if now - entry.reminded_at >= self._interval:
                log.warning("reconcile.break_open", passes=entry.passes, **_fields(current))
                entry.reminded_at, entry.passes = now, 0
        self._metrics.set_open_breaks(Counter(b.kind.value for b in found.values()))
