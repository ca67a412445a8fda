"""What the demo prints: progress lines, one human line per ledger event, and the tables.

Pure text from rows already read: nothing here touches the database, the bridge or the clock
(but `Terminal`'s stamp). Money is shown from its Decimal text, never through a float.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TextIO

from trade_executor.domain.states import event_kind

from .samples import Outcome

REASON_WIDTH = 44  # the summary table's reason column (the full reason is printed above it)


class Terminal:
    """Progress lines, each stamped with the seconds since the demo started."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._started = time.monotonic()

    def line(self, text: str = "", *, stamp: bool = True) -> None:
        prefix = f"[{time.monotonic() - self._started:6.2f}s] " if stamp and text else ""
        print(prefix + text, file=self._out, flush=True)


def describe_event(kind: str, detail: dict[str, Any], row: dict[str, Any]) -> str:
    """One human line for an execution_events row (`row`: the execution as it is now)."""
    order_id = detail.get("order_id") or row.get("order_id")
    match event_kind(kind):
        case "execution.claimed":
            return f"claimed by the executor: execution {short(row['id'])}"
        case "order.submitting":
            binding = str(detail.get("binding", "?")).replace("_", " ")
            return (
                f"risk gates passed; sized {detail.get('quantity')} shares, risk "
                f"{money(detail.get('risk_amount'))}, position value "
                f"{money(detail.get('position_value'))} (bound by {binding})"
            )
        case "order.submitted" | "order.adopted":
            children = detail.get("child_order_ids") or []
            kids = f" + stop-loss/take-profit {', '.join(map(str, children))}" if children else ""
            verb = "placed" if kind == "order.submitted" else "adopted"
            return (
                f"order {order_id} {verb}: {row.get('action')} {row.get('quantity')} "
                f"{row.get('symbol')} {row.get('order_type')} @ "
                f"{money(row.get('entry_price'))}{kids}"
            )
        case "order.progress" | "order.partially_filled":
            status = detail.get("broker_status", row.get("broker_status"))
            return f"order {row.get('order_id')}: {status}, filled {_fill(row)}"
        case "order.filled":
            return f"order {row.get('order_id')} filled: {_fill(row)}"
        case "order.cancelled":
            return f"order {row.get('order_id')} cancelled ({row.get('reason')}): {_fill(row)}"
        case "execution.rejected":
            return f"rejected: {row.get('reason')}"
        case "execution.failed":
            return f"failed: {row.get('reason')}"
        case "execution.dry_run":
            return "dry run: sized and recorded, not sent"
        case "order.unknown":
            return f"UNKNOWN at the broker: {row.get('reason')} (needs `trade-executor resolve`)"
        case _:
            return kind


def summary_table(outcomes: list[Outcome]) -> list[str]:
    """Every sample: its case, the execution's state and reason, and its fill."""
    headers = ("case", "signal", "symbol", "side", "state", "reason", "qty", "order", "filled")
    rows = []
    for outcome in outcomes:
        row = outcome.row or {}
        rows.append(
            (
                outcome.sample.case,
                short(outcome.signal_id),
                outcome.sample.symbol,
                outcome.sample.side,
                str(row.get("state", "(none)")),
                _clip(str(row.get("reason") or "-"), REASON_WIDTH),
                str(row.get("quantity") or "-"),
                str(row.get("order_id") or "-"),
                _fill(row) if row.get("quantity") else "-",
            )
        )
    return _table(headers, rows)


def exits_table(outcomes: list[Outcome]) -> list[str]:
    """The trades that reached their exit: how, at what price, and what they made."""
    headers = ("exit", "symbol", "side", "qty", "entry", "exit price", "realized P&L", "R")
    rows = [
        (
            str(row["exit_reason"]),
            str(row["symbol"]),
            str(row["action"]),
            str(row["exit_qty"]),
            money(row["avg_fill_price"]),
            money(row["exit_avg_price"]),
            money(row["realized_pnl"]),
            r_multiple(row["r_multiple"]),
        )
        for row in (outcome.exit for outcome in outcomes)
        if row is not None
    ]
    return _table(headers, rows) if rows else []


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns as wide as their widest cell, a rule under the headers; trailing
    blanks stripped."""
    widths = [max(len(r[i]) for r in (headers, *rows)) for i in range(len(headers))]

    def render(cells: tuple[str, ...]) -> str:
        line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return line.rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [render(headers), rule, *(render(r) for r in rows)]


def r_multiple(value: Any) -> str:
    return "? R" if value is None else f"{Decimal(str(value)):+.2f} R"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _fill(row: dict[str, Any]) -> str:
    filled, quantity = row.get("filled_qty") or 0, row.get("quantity") or 0
    price = row.get("avg_fill_price")
    at = f" @ {money(price)}" if filled and price is not None else ""
    return f"{filled}/{quantity}{at}"


def money(value: Any) -> str:
    if value is None:
        return "?"
    try:
        return f"{Decimal(str(value)):,.2f}"
    except ArithmeticError:
        return str(value)


def short(value: uuid.UUID | str) -> str:
    return str(value)[:8]
