"""`show ID`: one execution and its whole event trail, read from the ledger.

ID is an execution id, a signal id, or an unambiguous prefix of either
(`trade_executor.store.lookup`).
Event kinds are shown by their dotted names whichever version wrote them. Amounts stay Decimal
from the database to the output: `--json` prints them as exact JSON numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from trade_executor.broker.jsonnum import dumps
from trade_executor.domain.execution import Execution
from trade_executor.domain.models import Signal
from trade_executor.domain.states import event_kind
from trade_executor.ops.common import Context, Refusal
from trade_executor.store.lookup import (
    AmbiguousId,
    ExecutionLookupError,
    IdPattern,
    IdSyntaxError,
    NoSuchExecution,
    event_view,
    execution_view,
    load,
    parse_id,
    plain,
)
from trade_executor.store.protocol import StoredEvent

__all__ = [
    "AmbiguousId",
    "NoSuchExecution",
    "Shown",
    "event_view",
    "execution_view",
    "plain",
    "show",
]


# An average fill price is a double at IB and at the bridge (210.18447916666668 for fills whose
# exact average is 210.184479166...): the text view shows it to IB's finest price step.
AVERAGE_PRICE_STEP = Decimal("0.0001")


def _money(value: Decimal | None) -> str:
    return "-" if value is None else format(value, "f")


def _average(value: Decimal | None) -> str:
    """An average fill price: to AVERAGE_PRICE_STEP when the bridge sent more digits (`--json`
    keeps the stored value)."""
    if value is None:
        return "-"
    rounded = value.quantize(AVERAGE_PRICE_STEP, rounding=ROUND_HALF_EVEN)
    return format(rounded if rounded != value else value, "f")


def _signal_line(signal: Signal | None) -> str:
    if signal is None:
        return "signal prices    - (the signal row is gone)"
    return (
        f"signal prices    {signal.signal_type or '-'} {signal.symbol or '-'} "
        f"entry {_money(signal.entry_price)}  stop {_money(signal.stop_loss)}  "
        f"target {_money(signal.take_profit)}  (strategy {signal.strategy_id or '-'})"
    )


def _order_line(e: Execution) -> str:
    if e.quantity is None and e.entry_price is None:
        return "order            none (nothing was sized or placed)"
    return (
        f"order            {e.action or '-'} {e.quantity if e.quantity is not None else '-'} "
        f"{e.symbol or '-'} {e.order_type or ''} @ {_money(e.entry_price)}"
        f"  stop {_money(e.stop_loss)}  target {_money(e.take_profit)}"
    )


def render_text(
    execution: Execution, events: list[StoredEvent], signal: Signal | None = None
) -> str:
    """The text view; `signal` (the execution's signal row) gives the prices it asked for, the
    only ones a rejection before sizing has."""
    e = execution
    lines = [
        f"execution        {e.id}",
        f"signal           {e.signal_id}",
        _signal_line(signal),
        f"approval         {e.approval_id or '-'} ({e.approval_source or 'trade_approvals'})",
        f"state            {e.state.value}" + (f": {e.reason}" if e.reason else ""),
        _order_line(e),
        f"risk             {_money(e.risk_amount)} (position value {_money(e.position_value)})",
        f"broker           order {e.order_id or '-'}"
        + (f", children {', '.join(map(str, e.child_order_ids))}" if e.child_order_ids else "")
        + f", status {e.broker_status or '-'}, client_order_id {e.client_order_id}",
        f"filled           {e.filled_qty}"
        + (f" @ {_average(e.avg_fill_price)}" if e.filled_qty else ""),
    ]
    if e.position_state is not None:
        lines.append(
            f"position         {e.position_state}"
            + (
                f", exit {e.exit_reason} {e.exit_qty} @ {_average(e.exit_avg_price)}"
                if e.exit_reason
                else ""
            )
            + (f", realized {_money(e.realized_pnl)}" if e.realized_pnl is not None else "")
        )
    lines.append(f"trading day      {e.trading_day.isoformat() if e.trading_day else '-'}")
    for label, moment in (
        ("created", e.created_at),
        ("attempted", e.attempted_at),
        ("submitted", e.submitted_at),
        ("finished", e.finished_at),
    ):
        if moment is not None:
            lines.append(f"{label:<17}{moment.isoformat()}")
    lines.append("")
    lines.append(f"events ({len(events)})")
    for event in events:
        detail = " ".join(f"{k}={dumps(plain(v))}" for k, v in event.detail.items())
        lines.append(f"  {event.at.isoformat()}  {event_kind(event.kind):<24} {detail}".rstrip())
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Shown:
    """One execution, its audit trail in the order written, and its signal (None: gone)."""

    execution: Execution
    events: list[StoredEvent]
    signal: Signal | None

    def to_json(self) -> dict[str, Any]:
        return {
            "execution": execution_view(self.execution),
            "events": [event_view(event) for event in self.events],
        }

    def text(self) -> str:
        return render_text(self.execution, self.events, self.signal)


async def show(ctx: Context, ref: IdPattern | str) -> Shown | Refusal:
    """The execution `ref` names (an id, a signal id, or an unambiguous prefix of either)."""
    try:
        pattern = ref if isinstance(ref, IdPattern) else parse_id(ref)
        execution, events = await load(ctx.store, pattern)
    except IdSyntaxError as error:
        return Refusal(str(error))
    except ExecutionLookupError as error:
        return Refusal(str(error), not_found=isinstance(error, NoSuchExecution))
    return Shown(execution, events, await ctx.store.get_signal(execution.signal_id))
