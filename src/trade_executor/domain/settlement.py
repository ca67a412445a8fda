"""Settling a ledger position from the broker's truth (CONTRACT section 5, "Positions follow the
broker"), as pure functions.

When the broker holds less of a symbol than the one open position the ledger has for it, the
difference left the position at the broker without this service seeing the fill (a stop that
filled while the bridge was down, a restart with another client id, a manual trade). It is
settled here:
- its exit price is that of the one finished order the list shows for the symbol on the
  closing side with exactly that quantity filled (`order_id` 0 entries, a previous bridge
  session's, included); several or none: the price is unknown;
- its exit reason is the child that filled (a stop at the position's stop price, a limit at its
  target, or an order whose id or parent is the position's), else `external`;
- P&L and R are computed on the settled quantity in Decimal (domain.pnl). Where the price is
  unknown the P&L booked is the worst plausible one, the stop's, so MAX_DAILY_REALIZED_LOSS
  never sees less loss than there may be; an operator settles the real price
  (`resolve-position SYMBOL --exit-price P`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import Action, BrokerOrder, BrokerStatus
from trade_executor.domain.pnl import CENT, Exit, add_exit_fill

EXTERNAL = "external"


@dataclass(frozen=True, slots=True)
class Settlement:
    """What to record: `changes` for Transition.POSITION, and what they mean."""

    changes: Changes
    quantity: int  # shares settled now
    price_known: bool
    exit_reason: str
    matched_order_id: int | None
    closed: bool
    realized_pnl: Decimal


def side_of(execution: Execution) -> Action:
    return Action.SELL if execution.action == Action.SELL.value else Action.BUY


def held(execution: Execution) -> int:
    """Unsigned shares the ledger holds for the position."""
    return max(0, execution.filled_qty - (execution.exit_qty or 0))


def signed_held(execution: Execution) -> int:
    shares = held(execution)
    return -shares if side_of(execution) is Action.SELL else shares


def shortfall(execution: Execution, broker_quantity: int) -> int:
    """Shares the ledger holds that the broker does not (0: the broker holds all of them, or
    more, or the other way round: that is an unexplained position, not a settlement)."""
    ledger = signed_held(execution)
    if ledger == 0:
        return 0
    if ledger > 0:
        return ledger - broker_quantity if 0 <= broker_quantity < ledger else 0
    return broker_quantity - ledger if ledger < broker_quantity <= 0 else 0


def _closing(execution: Execution) -> Action:
    return Action.BUY if side_of(execution) is Action.SELL else Action.SELL


def filled_quantity(order: BrokerOrder) -> int:
    """What a finished order filled. A restored row (order_id 0: a previous bridge session's
    order, as ib_insync's completed orders come back) carries no fills: `Filled` then means its
    whole quantity, at a price the list does not show."""
    if order.order_id == 0 and order.status is BrokerStatus.FILLED and order.filled_qty == 0:
        return order.quantity
    return order.filled_qty


def fill_price(order: BrokerOrder) -> Decimal | None:
    """The order's average fill price, None where the list does not show one (0 included)."""
    price = order.avg_fill_price
    return price if price is not None and price > 0 else None


def matching_fills(
    execution: Execution, orders: Iterable[BrokerOrder], quantity: int
) -> list[BrokerOrder]:
    """Finished orders of the symbol on the closing side that filled exactly `quantity`."""
    symbol = (execution.symbol or "").strip().upper()
    return [
        o
        for o in orders
        if o.symbol.strip().upper() == symbol
        and o.action is _closing(execution)
        and o.status is BrokerStatus.FILLED
        and filled_quantity(o) == quantity
        and (o.order_id == 0 or o.order_id != execution.order_id)
    ]


def _cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(CENT)


def reason_of(execution: Execution, order: BrokerOrder) -> str:
    """The child that filled, when the order is recognisably one; else `external`."""
    kind = order.order_type.strip().upper()
    ours = (order.order_id != 0 and order.order_id in execution.child_order_ids) or (
        execution.order_id is not None and order.parent_id == execution.order_id
    )
    if kind.startswith("STP") and (ours or _cents(order.stop_price) == _cents(execution.stop_loss)):
        return "stop_loss"
    if kind == "LMT" and (ours or _cents(order.limit_price) == _cents(execution.take_profit)):
        return "take_profit"
    return EXTERNAL


def _previous(execution: Execution) -> Exit | None:
    if not execution.exit_qty or execution.exit_avg_price is None:
        return None
    return Exit(
        execution.exit_qty,
        execution.exit_avg_price,
        execution.realized_pnl or Decimal(0),
        execution.r_multiple,
    )


def worst_price(execution: Execution) -> Decimal | None:
    """The worst plausible exit price of a position whose exit price is unknown: its stop."""
    return execution.stop_loss


def settle(
    execution: Execution,
    broker_quantity: int,
    orders: Iterable[BrokerOrder],
    now: datetime,
) -> Settlement | None:
    """The settlement of `execution` against the broker's quantity of its symbol (None: the
    broker holds at least what the ledger does, or the entry price is unknown)."""
    quantity = shortfall(execution, broker_quantity)
    entry = execution.avg_fill_price or execution.entry_price
    if quantity <= 0 or entry is None:
        return None
    matches = matching_fills(execution, orders, quantity)
    match = matches[0] if len(matches) == 1 else None
    closed = quantity >= held(execution)
    price = fill_price(match) if match is not None else None
    if match is not None and price is not None:
        reason = reason_of(execution, match)
        exit = add_exit_fill(
            _previous(execution),
            side=side_of(execution),
            entry_price=entry,
            quantity=quantity,
            price=price,
            planned_risk=execution.risk_amount,
        )
        changes = Changes(
            exit_reason=reason,
            exit_qty=exit.quantity,
            exit_avg_price=exit.avg_price,
            realized_pnl=exit.realized_pnl,
            r_multiple=exit.r_multiple,
            position_state="closed" if closed else None,
            closed_at=now if closed else None,
        )
        pnl = exit.realized_pnl
        return Settlement(changes, quantity, True, reason, match.order_id, closed, pnl)
    # No price: the child that filled when the list shows it (a restored row), else external;
    # the P&L booked is the stop's until an operator gives the price.
    reason = reason_of(execution, match) if match is not None else EXTERNAL
    worst = worst_price(execution) or entry
    direction = 1 if side_of(execution) is Action.BUY else -1
    loss = ((worst - entry) * quantity * direction).quantize(CENT)
    realized = (execution.realized_pnl or Decimal(0)) + loss
    changes = Changes(
        exit_reason=reason,
        exit_qty=(execution.exit_qty or 0) + quantity,
        realized_pnl=realized,
        position_state="closed" if closed else None,
        closed_at=now if closed else None,
    )
    matched = match.order_id if match is not None else None
    return Settlement(changes, quantity, False, reason, matched, closed, realized)


def price_unknown(execution: Execution) -> bool:
    """A position settled from the broker whose exit price no one has established yet: its P&L
    is the stop's until an operator gives the price."""
    return (
        execution.position_state == "closed"
        and bool(execution.exit_qty)
        and execution.exit_avg_price is None
    )


def with_exit_price(execution: Execution, price: Decimal) -> Changes:
    """An operator's exit price for a `price_unknown` position: its P&L and R recomputed."""
    entry = execution.avg_fill_price or execution.entry_price
    if entry is None:
        raise ValueError("the position has no entry price to compute P&L from")
    quantity = execution.exit_qty or execution.filled_qty
    exit = add_exit_fill(
        None,
        side=side_of(execution),
        entry_price=entry,
        quantity=quantity,
        price=price,
        planned_risk=execution.risk_amount,
    )
    return Changes(
        exit_qty=exit.quantity,
        exit_avg_price=exit.avg_price,
        realized_pnl=exit.realized_pnl,
        r_multiple=exit.r_multiple,
    )
