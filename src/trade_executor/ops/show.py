"""`show ID`: one execution and its whole event trail, read from the ledger.

ID is an execution id, a signal id, or an unambiguous prefix of either (`ops.ids`). Event kinds
are shown by their dotted names whichever version wrote them (`domain.states.event_kind`).
Amounts stay Decimal from the database to the output: `--json` prints them as exact JSON numbers.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from trade_executor.broker.jsonnum import dumps
from trade_executor.config import Settings
from trade_executor.domain.execution import Execution
from trade_executor.domain.states import event_kind
from trade_executor.ops.common import OperationError, with_store
from trade_executor.ops.ids import IdPattern, parse_id, short
from trade_executor.store.postgres import PgStore
from trade_executor.store.protocol import Store, StoredEvent

# More matches than this are not listed one by one: the prefix is simply too short.
MATCH_LIMIT = 10


class NoSuchExecution(OperationError):
    """No execution has that id, signal id or prefix."""


class AmbiguousId(OperationError):
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


async def find_execution(store: Store, pattern: IdPattern) -> Execution:
    """The one execution whose id or signal id `pattern` names; `OperationError` with one
    sentence when there is none or several."""
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


async def load(store: Store, pattern: IdPattern) -> tuple[Execution, list[StoredEvent]]:
    execution = await find_execution(store, pattern)
    return execution, await store.execution_events(execution.id)


def _money(value: Decimal | None) -> str:
    return "-" if value is None else format(value, "f")


def render_text(execution: Execution, events: list[StoredEvent]) -> str:
    e = execution
    lines = [
        f"execution        {e.id}",
        f"signal           {e.signal_id}",
        f"approval         {e.approval_id or '-'} ({e.approval_source or 'trade_approvals'})",
        f"state            {e.state.value}" + (f": {e.reason}" if e.reason else ""),
        f"order            {e.action or '-'} {e.quantity if e.quantity is not None else '-'} "
        f"{e.symbol or '-'} {e.order_type or ''} @ {_money(e.entry_price)}"
        f"  stop {_money(e.stop_loss)}  target {_money(e.take_profit)}",
        f"risk             {_money(e.risk_amount)} (position value {_money(e.position_value)})",
        f"broker           order {e.order_id or '-'}"
        + (f", children {', '.join(map(str, e.child_order_ids))}" if e.child_order_ids else "")
        + f", status {e.broker_status or '-'}, client_order_id {e.client_order_id}",
        f"filled           {e.filled_qty}"
        + (f" @ {_money(e.avg_fill_price)}" if e.filled_qty else ""),
    ]
    if e.position_state is not None:
        lines.append(
            f"position         {e.position_state}"
            + (
                f", exit {e.exit_reason} {e.exit_qty} @ {_money(e.exit_avg_price)}"
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


def show(settings: Settings, args: argparse.Namespace) -> int:
    pattern = args.id if isinstance(args.id, IdPattern) else parse_id(str(args.id))

    async def work(store: PgStore) -> tuple[Execution, list[StoredEvent]]:
        return await load(store, pattern)

    execution, events = with_store(settings, work)
    if getattr(args, "json", False):
        body = {
            "execution": execution_view(execution),
            "events": [event_view(event) for event in events],
        }
        print(dumps(body))
    else:
        print(render_text(execution, events))
    return 0
