"""Issue 20, finding 3: both children of a bracket fill (no OCA at the bridge). The exit is the
child that filled first, capped at the position's quantity; the excess is a new position at
the broker (the reconciler's `unexplained_position` break), never booked as a profit."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from trade_executor.actors.exits.positions import exit_of, exit_orders, over_exit
from trade_executor.actors.reconciler import compare
from trade_executor.domain.breaks import BreakKind
from trade_executor.domain.models import Action, BrokerOrder, BrokerStatus, Position

from .test_exits_core import SL, TP, listing, look, order, position

EARLY = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
LATE = datetime(2026, 3, 10, 15, 5, tzinfo=UTC)


def filled(order_id: int, kind: str, price: str, at: datetime) -> BrokerOrder:
    o = order(order_id, kind, "Filled", 133, price)
    return BrokerOrder(**{**{f: getattr(o, f) for f in o.__slots__}, "updated_at": at})


def test_both_children_fill_books_the_stop_that_filled_first() -> None:
    execution = position()
    stop = filled(SL, "STP", "145", EARLY)
    target = filled(TP, "LMT", "160", LATE)
    verdict = look(execution, target, stop)
    record = verdict.record
    assert record is not None and verdict.closed
    assert record.exit_reason == "stop_loss"
    assert record.exit_qty == 133
    assert record.exit_avg_price == Decimal("145.0000")
    assert record.realized_pnl == Decimal("-665.00")
    assert record.r_multiple == Decimal("-1.0000")
    assert over_exit(execution, exit_orders(execution, listing(target, stop))) == 133


def test_the_excess_is_an_unexplained_position_at_the_broker() -> None:
    execution = position(
        position_state="closed", exit_qty=133, exit_reason="stop_loss", entry_price=Decimal(150)
    )
    orders = [
        BrokerOrder(10, "AAPL", Action.BUY, "LMT", 133, BrokerStatus.FILLED, 133),
        filled(SL, "STP", "145", EARLY),
        filled(TP, "LMT", "160", LATE),
    ]
    found = compare([execution], orders, [Position("AAPL", -133)], protection=True)
    kinds = {(b.kind, b.symbol, b.detail["broker_quantity"]) for b in found.breaks}
    assert (BreakKind.UNEXPLAINED_POSITION, "AAPL", -133) in kinds


def test_an_exit_of_exactly_the_position_is_no_over_exit() -> None:
    execution = position()
    stop = filled(SL, "STP", "145", EARLY)
    total, _ = exit_of(execution, exit_orders(execution, listing(stop)))
    assert total is not None and total.quantity == 133
    assert over_exit(execution, exit_orders(execution, listing(stop))) == 0
