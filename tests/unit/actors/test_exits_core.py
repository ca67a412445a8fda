"""The exits' pure core: a position's exit from its exit orders' fills, what a look calls for,
when flatten is due, and the `close` payload. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.support.builders import a_broker_order, an_execution
from trade_executor.actors.exits import close_payload, parse_close_request
from trade_executor.actors.exits.flatten import FlattenRule, FlattenSchedule, instance_rule
from trade_executor.actors.exits.positions import assess, exit_orders, trade_notes
from trade_executor.domain.execution import Execution
from trade_executor.domain.models import Action, BrokerOrder, BrokerStatus
from trade_executor.domain.states import ExecutionState

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
TP, SL, CLOSE = 11, 12, 20


def position(**overrides: Any) -> Execution:
    values: dict[str, Any] = {
        "client_order_id": "te-x",
        "symbol": "AAPL",
        "action": "BUY",
        "order_id": 10,
        "child_order_ids": (TP, SL),
        "quantity": 133,
        "entry_price": Decimal(150),
        "stop_loss": Decimal(145),
        "take_profit": Decimal(160),
        "risk_amount": Decimal("665.00"),
        "filled_qty": 133,
        "avg_fill_price": Decimal(150),
        "position_state": "open",
        **overrides,
    }
    return an_execution(values.pop("state", ExecutionState.FILLED), **values)


def order(
    order_id: int, kind: str, status: str, filled: int = 0, price: str | None = None
) -> BrokerOrder:
    return a_broker_order(
        order_id,
        action=Action.SELL,
        order_type=kind,
        quantity=133,
        status=BrokerStatus(status),
        filled_qty=filled,
        avg_fill_price=Decimal(price) if price else None,
        parent_id=10 if order_id in (TP, SL) else None,
    )


def listing(*orders: BrokerOrder) -> MappingProxyType[int, BrokerOrder]:
    return MappingProxyType({o.order_id: o for o in orders})


def look(execution: Execution, *orders: BrokerOrder, closing: bool = False) -> Any:
    return assess(execution, exit_orders(execution, listing(*orders)), NOW, closing=closing)


def test_a_stop_out_at_the_planned_stop_is_minus_one_r() -> None:
    verdict = look(
        position(), order(TP, "LMT", "Cancelled"), order(SL, "STP", "Filled", 133, "145")
    )
    record = verdict.record
    assert record is not None and verdict.closed and verdict.settled
    assert (record.exit_reason, record.exit_qty, record.position_state) == (
        "stop_loss",
        133,
        "closed",
    )
    assert (record.realized_pnl, record.r_multiple) == (Decimal("-665.00"), Decimal("-1.0000"))
    assert record.closed_at == NOW


def test_a_partial_exit_keeps_the_position_open_and_accumulates() -> None:
    first = look(
        position(), order(TP, "LMT", "Submitted", 33, "160"), order(SL, "STP", "Submitted")
    )
    assert first.record is not None and not first.closed
    assert (first.record.exit_qty, first.record.position_state) == (33, None)
    assert first.record.realized_pnl == Decimal("330.00")
    recorded = position(exit_qty=33, exit_avg_price=Decimal(160), realized_pnl=Decimal("330.00"))
    second = look(recorded, order(TP, "LMT", "Filled", 133, "160"), order(SL, "STP", "Cancelled"))
    assert second.record is not None and second.closed
    assert (second.record.exit_qty, second.record.realized_pnl) == (133, Decimal("1330.00"))
    assert second.record.r_multiple == Decimal("2.0000")


def test_a_repeated_look_records_nothing_and_a_forgotten_order_never_shrinks_the_exit() -> None:
    done = position(exit_qty=133, realized_pnl=Decimal("-665.00"), position_state="closed")
    again = look(done, order(TP, "LMT", "Cancelled"), order(SL, "STP", "Filled", 133, "145"))
    assert again.record is None and again.settled
    forgotten = look(position(exit_qty=33, realized_pnl=Decimal("330.00")))  # nothing listed
    assert forgotten.record is None and not forgotten.lost_protection


def test_a_sibling_still_working_after_the_exit_is_to_be_cancelled() -> None:
    verdict = look(
        position(), order(TP, "LMT", "Submitted"), order(SL, "STP", "Filled", 133, "145")
    )
    assert verdict.closed and verdict.cancel == (TP,) and not verdict.settled


def test_exit_reason_is_the_order_that_took_most_shares_and_a_close_counts() -> None:
    closing = position(exit_order_id=CLOSE, exit_reason="close")
    verdict = look(
        closing,
        order(TP, "LMT", "Cancelled"),
        order(SL, "STP", "Cancelled", 33, "145"),
        order(CLOSE, "MKT", "Filled", 100, "151"),
        closing=True,
    )
    assert verdict.record is not None and verdict.closed
    assert verdict.record.exit_reason == "close"
    assert verdict.record.realized_pnl == Decimal("-65.00")  # 33 x -5 + 100 x +1
    assert verdict.record.exit_avg_price == Decimal("149.5113")  # (33 x 145 + 100 x 151) / 133


def test_open_with_every_exit_order_final_has_lost_its_protection_unless_closing() -> None:
    expired = (order(TP, "LMT", "Cancelled"), order(SL, "STP", "Cancelled"))
    assert look(position(), *expired).lost_protection
    assert not look(position(), *expired, closing=True).lost_protection
    assert not look(position(position_state="unprotected"), *expired).lost_protection
    assert not look(position(), order(TP, "LMT", "Cancelled")).lost_protection  # SL not listed
    assert not look(position(child_order_ids=())).lost_protection  # ORDER_PROTECTION=none


def test_a_short_exits_the_other_way_round() -> None:
    short = position(action="SELL", stop_loss=Decimal(155), take_profit=Decimal(140))
    buy_back = BrokerOrder(
        SL, "AAPL", Action.BUY, "STP", 133, BrokerStatus.FILLED, 133, 0, None, None,
        Decimal("155.5"), 10,
    )  # fmt: skip
    verdict = look(short, buy_back)
    assert verdict.record is not None
    assert verdict.record.realized_pnl == Decimal(
        "-731.50"
    )  # slipped past the stop: worse than 1 R
    assert verdict.record.r_multiple == Decimal("-1.1000")


def test_the_trade_notes_say_how_the_position_ended() -> None:
    closed = position(
        position_state="closed", exit_reason="take_profit", exit_qty=133,
        exit_avg_price=Decimal("160.0000"), realized_pnl=Decimal("1330.00"),
        r_multiple=Decimal("2.0000"),
    )  # fmt: skip
    assert trade_notes(closed) == (
        "closed: take_profit 133 @ 160.0000; realized P&L 1330.00 (2.0000 R)"
    )
    assert trade_notes(position()) is None


# -- flatten --------------------------------------------------------------------------------------

NY = ZoneInfo("America/New_York")


def test_flatten_is_due_once_for_positions_open_at_the_time() -> None:
    rule = FlattenRule("FLATTEN_AT", time(15, 55), NY)
    before = datetime(2026, 3, 10, 15, 54, tzinfo=NY)
    overnight = position(created_at=datetime(2026, 3, 9, 14, 0, tzinfo=NY))
    late = position(created_at=datetime(2026, 3, 10, 15, 57, tzinfo=NY))
    schedule = FlattenSchedule()
    rules = {overnight.id: [rule], late.id: [rule]}
    assert schedule.due(before, [overnight, late], rules) == []
    at = before + timedelta(minutes=1)
    assert schedule.due(at, [overnight, late], rules) == [(overnight, rule)]
    assert schedule.due(at + timedelta(minutes=5), [overnight, late], rules) == []  # once


def test_an_instance_rule_is_read_from_its_row_or_refused() -> None:
    rule = instance_rule("i-1", "15:30", "Europe/London")
    assert rule is not None and (rule.at, rule.timezone.key) == (time(15, 30), "Europe/London")
    assert instance_rule("i-1", "half past three", "Europe/London") is None
    assert instance_rule("i-1", "15:30", "Mars/Olympus") is None
    assert instance_rule("i-1", None, None) is None


# -- close requests over the control channel ------------------------------------------------------


@pytest.mark.parametrize("symbol", ["aapl ", None])
def test_a_close_request_survives_its_payload(symbol: str | None) -> None:
    parsed = parse_close_request(close_payload(symbol, "news", "ops"))
    assert parsed is not None
    assert (parsed.symbol, parsed.reason, parsed.requested_by) == (
        symbol.strip().upper() if symbol else None, "news", "ops")  # fmt: skip


@pytest.mark.parametrize(
    "payload",
    ['{"execution_id": "x"}', '{"close": {"symbol": 5, "reason": "r", "by": "o"}}',
     '{"close": {"symbol": "A", "reason": " ", "by": "o"}}', "[[[", "x" * 9000],
)  # fmt: skip
def test_anything_else_is_not_a_close_request(payload: str) -> None:
    assert parse_close_request(payload) is None
