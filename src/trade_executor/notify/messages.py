"""What a person is told, built from the structured log events that already exist (pure).

Each notification is one of the NOTIFY_EVENTS kinds (CONTRACT section 3). `note_for(event)`
turns one log event (its dictionary, as structlog hands it over) into a `Note`, or None when the
event is no notification. Messages are short and exact: the symbol, Decimal figures as the
service recorded them (never through a float), the reason, and the id to look the rest up with
(`trade-executor show ID`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from trade_executor.config.settings import NotifyEvent

Severity = Literal["info", "success", "warning", "failure"]


@dataclass(frozen=True, slots=True)
class Note:
    """One notification: its kind (a NOTIFY_EVENTS name, or `test`), a title and a body."""

    kind: NotifyEvent | Literal["test"]
    title: str
    body: str
    severity: Severity = "info"


# The log events that become notifications, by the NOTIFY_EVENTS kind they belong to. Some are
# notifications only with a given field (see `note_for`).
TAPPED_EVENTS: Mapping[str, NotifyEvent] = {
    "order.filled": "filled",
    "position.closed": "closed",
    "executor.halted": "halted",
    "executor.resumed": "halted",
    "executor.breaker_tripped": "breaker",
    "execution.unknown": "needs_operator",
    "order.status_lost": "needs_operator",
    "position.close_ambiguous": "needs_operator",
    "position.close_failed": "needs_operator",
    "position.sibling_not_cancelled": "needs_operator",
    # A crash-left intent whose absence could not be proven: failed, never re-sent (issue 19).
    "recovery.absence_unproven": "needs_operator",
    # The broker closed a position at a price no one could establish (resolve-position).
    "position.settled_price_unknown": "needs_operator",
    # Both exits filled: the excess is a new position at the broker (issue 20).
    "position.over_exit": "needs_operator",
    "reconcile.break": "reconcile_break",
    "guardrail.refused": "live_refused",
}
LIVE_REFUSAL = "live_trading_not_allowed"


def _text(value: Any) -> str:
    """A figure as recorded: a Decimal (or its string) in plain notation, anything else as is."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        try:
            return format(Decimal(value), "f")
        except InvalidOperation:
            return value
    return str(value)


def _signed(value: Any) -> str:
    text = _text(value)
    return text if text.startswith("-") or text in ("-", "None", "0") else f"+{text}"


def _short(value: Any) -> str:
    return str(value)[:8] if value else "-"


def note_for(event: Mapping[str, Any]) -> Note | None:
    """The notification a log event stands for, or None."""
    name = str(event.get("event", ""))
    kind = TAPPED_EVENTS.get(name)
    if kind is None:
        return None
    symbol = event.get("symbol") or "-"
    execution = _short(event.get("execution_id"))
    match name:
        case "order.filled":
            side = event.get("side") or ""
            what = f"{side} {symbol}".strip()
            return Note(
                kind,
                f"Filled: {what} {_text(event.get('filled_qty'))} @ "
                f"{_text(event.get('avg_fill_price'))}",
                f"order {event.get('order_id', '-')}, execution {execution}",
                "success",
            )
        case "position.closed":
            pnl = event.get("realized_pnl")
            severity: Severity = "success"
            try:
                if Decimal(str(pnl)) < 0:
                    severity = "warning"
            except InvalidOperation:
                pass
            return Note(
                kind,
                f"Closed {symbol} ({event.get('exit_reason') or '-'}): P&L {_signed(pnl)}, "
                f"R {_signed(event.get('r_multiple'))}",
                f"{_text(event.get('exit_qty'))} @ {_text(event.get('exit_avg_price'))}, "
                f"entry {_text(event.get('entry_price'))}, planned risk "
                f"{_text(event.get('risk_amount'))}; execution {execution}",
                severity,
            )
        case "executor.halted":
            return Note(
                kind,
                f"Halted by {event.get('by') or 'unknown'}: {event.get('reason') or '-'}",
                "new entries are rejected until `trade-executor resume`; exits go on",
                "warning",
            )
        case "executor.resumed":
            previous = event.get("previous_reason")
            return Note(
                kind,
                f"Resumed by {event.get('by') or 'unknown'}",
                f"halted before: {previous}" if previous else "new entries are taken again",
                "info",
            )
        case "executor.breaker_tripped":
            return Note(
                kind,
                f"Breaker halted the service: {event.get('reason') or '-'}",
                f"{_text(event.get('failures'))} failed or unknown outcomes in a row; "
                "look at `trade-executor status`, then `trade-executor resume`",
                "failure",
            )
        case "reconcile.break":
            return Note(
                kind,
                f"Reconcile break: {event.get('kind') or '-'} {symbol}",
                ", ".join(
                    f"{field} {_text(event[field])}"
                    for field in ("broker_quantity", "ledger_min", "ledger_max", "order_id")
                    if event.get(field) is not None
                )
                or "the broker and the ledger disagree",
                "failure",
            )
        case "guardrail.refused":
            if event.get("reason") != LIVE_REFUSAL:
                return None
            return Note(
                kind,
                f"Live trading refused: {symbol}",
                str(event.get("detail") or LIVE_REFUSAL),
                "warning",
            )
        case _:  # needs an operator
            reason = event.get("reason") or event.get("error") or name
            return Note(
                kind,
                f"Needs an operator: {symbol} ({name})",
                f"{reason}; see `trade-executor show {execution}`",
                "failure",
            )


def break_key(event: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes a reconcile break the same break on the next pass."""
    return tuple(event.get(f) for f in ("kind", "symbol", "execution_id", "order_id"))


__all__ = ["LIVE_REFUSAL", "TAPPED_EVENTS", "Note", "break_key", "note_for"]
