"""A position's exit, computed from its exit orders' cumulative fills: a pure core, no I/O.

An entry that ended holding shares (`filled`, or `cancelled` after a fill) has a position. Its
exit orders are the bracket's children (or the protection that replaced them,
`child_order_ids`) and the close order this service placed (`exit_order_id`). The broker
reports each order's cumulative filled quantity and average price, so the exit is recomputed
from all of them at every look (`exit_of`): a repeated look changes nothing, and a partial exit
followed by more fills accumulates (domain/pnl.py). What the ledger holds never shrinks: an
order the bridge forgot (its restart) cannot undo a recorded exit.

Guarantees of `assess`: the position is `closed` only once the whole filled quantity exited;
its exit reason is the kind of the exit order that took the most shares (a stop-loss, a
take-profit, or this service's close/flatten); an exit order still working after the position
closed is a sibling to cancel; an open position whose every exit order is final with shares
left has lost its protection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import Action, BrokerOrder, BrokerStatus
from trade_executor.domain.pnl import Exit, add_exit_fill


class ExitReason(StrEnum):
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    CLOSE = "close"
    FLATTEN = "flatten"
    EXTERNAL = "external"


class PositionState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    UNPROTECTED = "unprotected"


CLOSING_REASONS = frozenset({ExitReason.CLOSE, ExitReason.FLATTEN})
# Order of preference when two exit orders took as many shares (the order placed last wins).
_TIE_RANK = {
    ExitReason.EXTERNAL: 0,
    ExitReason.TAKE_PROFIT: 1,
    ExitReason.STOP_LOSS: 2,
    ExitReason.FLATTEN: 3,
    ExitReason.CLOSE: 3,
}


@dataclass(frozen=True, slots=True)
class ExitOrder:
    """One exit order as one list read shows it, with what its fill would mean."""

    order_id: int
    kind: ExitReason
    status: BrokerStatus
    filled_qty: int
    avg_fill_price: Decimal | None
    filled_at: datetime | None = None  # the bridge's last update: when it (last) filled

    @property
    def working(self) -> bool:
        return not self.status.is_final and self.status is not BrokerStatus.UNKNOWN


def is_open(execution: Execution) -> bool:
    return execution.position_state in (PositionState.OPEN, PositionState.UNPROTECTED)


def side_of(execution: Execution) -> Action:
    return Action.SELL if execution.action == Action.SELL.value else Action.BUY


def remaining(execution: Execution) -> int:
    """Shares still held: the entry's fill less what has exited."""
    return max(0, execution.filled_qty - (execution.exit_qty or 0))


def close_kind(execution: Execution) -> ExitReason:
    """What the service's close order is for (its intent stored the kind in `exit_reason`)."""
    reason = execution.exit_reason
    return ExitReason(reason) if reason in CLOSING_REASONS else ExitReason.CLOSE


def exit_order_ids(execution: Execution) -> tuple[int, ...]:
    ids = tuple(execution.child_order_ids)
    # 0: a close sent whose answer is not recorded yet; -1: a close the bridge refused.
    if execution.exit_order_id is not None and execution.exit_order_id > 0:
        ids += (execution.exit_order_id,)
    return ids


def kind_of_child(order: BrokerOrder) -> ExitReason:
    """A bracket child or a protection order: its stop is the stop-loss, its limit the target."""
    kind = order.order_type.strip().upper()
    if kind.startswith("STP"):
        return ExitReason.STOP_LOSS
    if kind == "LMT":
        return ExitReason.TAKE_PROFIT
    return ExitReason.EXTERNAL


def exit_orders(execution: Execution, listed: Mapping[int, BrokerOrder]) -> list[ExitOrder]:
    """The position's exit orders present in one list read (an order missing from it is not
    known now: it is neither working nor final)."""
    found: list[ExitOrder] = []
    for order_id in execution.child_order_ids:
        order = listed.get(order_id)
        if order is not None:
            found.append(_exit_order(order, kind_of_child(order)))
    if execution.exit_order_id is not None and execution.exit_order_id > 0:
        order = listed.get(execution.exit_order_id)
        if order is not None:
            found.append(_exit_order(order, close_kind(execution)))
    return found


def _exit_order(order: BrokerOrder, kind: ExitReason) -> ExitOrder:
    return ExitOrder(
        order.order_id,
        kind,
        order.status,
        order.filled_qty,
        order.avg_fill_price,
        order.updated_at,
    )


def _by_fill_time(orders: Iterable[ExitOrder]) -> list[ExitOrder]:
    # The order that filled first exits the position first: by the bridge's time when every
    # filled one carries it, else by order id (a bracket's children are numbered as placed).
    listed = list(orders)
    if all(o.filled_at is not None for o in listed if o.filled_qty > 0):
        return sorted(listed, key=lambda o: (o.filled_at or datetime.min, o.order_id))
    return sorted(listed, key=lambda o: o.order_id)


def over_exit(execution: Execution, orders: Iterable[ExitOrder]) -> int:
    """Shares the exit orders filled beyond the position (both children of a bracket filled:
    no OCA at the bridge). They are a new position at the broker, not part of this one."""
    exited = sum(o.filled_qty for o in orders if o.filled_qty > 0)
    return max(0, exited - execution.filled_qty)


def exit_of(execution: Execution, orders: Iterable[ExitOrder]) -> tuple[Exit | None, ExitReason]:
    """The exit so far from every exit order's fills, and its reason. Fills are taken in the
    order they happened and capped at the position's quantity: an exit never exceeds the
    position, so P&L and R are on the position's own shares (`over_exit` is the rest)."""
    entry = execution.avg_fill_price or execution.entry_price
    total: Exit | None = None
    best: tuple[int, int, int] | None = None
    reason = ExitReason.EXTERNAL
    for order in _by_fill_time(orders):
        if order.filled_qty <= 0 or order.avg_fill_price is None or entry is None:
            continue
        room = execution.filled_qty - (total.quantity if total is not None else 0)
        quantity = min(order.filled_qty, room)
        if quantity <= 0:
            continue
        total = add_exit_fill(
            total,
            side=side_of(execution),
            entry_price=entry,
            quantity=quantity,
            price=order.avg_fill_price,
            planned_risk=execution.risk_amount,
        )
        rank = (quantity, _TIE_RANK[order.kind], order.order_id)
        if best is None or rank > best:
            best, reason = rank, order.kind
    return total, reason


@dataclass(frozen=True, slots=True)
class Assessment:
    """What one look at a position calls for."""

    record: Changes | None  # a new exit fill to write (POSITION)
    exit: Exit | None
    closed: bool  # closed by this look's record (or earlier)
    cancel: tuple[int, ...]  # siblings still working after the position closed
    lost_protection: bool  # open, shares left, and no exit order working any more
    settled: bool  # closed and every exit order final: nothing more to follow


def assess(
    execution: Execution, orders: list[ExitOrder], now: datetime, *, closing: bool
) -> Assessment:
    """Judge one position against one list read (see the module docstring). `closing` is True
    while this service closes the position (its exit orders are being replaced)."""
    recorded_qty = execution.exit_qty or 0
    exit, reason = exit_of(execution, orders)
    record: Changes | None = None
    closed = execution.position_state == PositionState.CLOSED
    if exit is not None and exit.quantity > recorded_qty:
        closed = exit.quantity >= execution.filled_qty
        record = Changes(
            exit_reason=reason.value,
            exit_qty=exit.quantity,
            exit_avg_price=exit.avg_price,
            realized_pnl=exit.realized_pnl,
            r_multiple=exit.r_multiple,
            position_state=PositionState.CLOSED.value if closed else None,
            closed_at=now if closed else None,
        )
    working = tuple(o.order_id for o in orders if o.working)
    known = {o.order_id for o in orders}
    expected = set(exit_order_ids(execution))
    exited = max(recorded_qty, exit.quantity if exit is not None else 0)
    lost = (
        not closed
        and not closing
        and execution.position_state == PositionState.OPEN
        and bool(expected)
        and expected <= known  # every exit order seen, none working
        and not working
        and execution.filled_qty - exited > 0
    )
    return Assessment(
        record=record,
        exit=exit if record is not None else None,
        closed=closed,
        cancel=working if closed else (),
        lost_protection=lost,
        settled=closed and not working,
    )


def trade_notes(execution: Execution) -> str | None:
    """The `trades.notes` text of an exit, for the original's UI (see exits/__init__.py)."""
    if execution.exit_qty is None or execution.realized_pnl is None:
        return None
    state = "closed" if execution.position_state == PositionState.CLOSED else "partly exited"
    r = f" ({execution.r_multiple} R)" if execution.r_multiple is not None else ""
    return (
        f"{state}: {execution.exit_reason} {execution.exit_qty} @ {execution.exit_avg_price}; "
        f"realized P&L {execution.realized_pnl}{r}"
    )
