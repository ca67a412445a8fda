"""Order building: every order type, bracket or not, prices to the cent; reward:risk."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from trade_executor.domain.models import Action, BracketOrderRequest, OrderRequest, OrderType
from trade_executor.domain.orders import build_order, reward_risk, to_cent
from trade_executor.domain.validation import ValidSignal

D = Decimal


def signal(
    action: Action = Action.BUY, entry: str = "150", stop: str = "145", tp: str = "160"
) -> ValidSignal:
    return ValidSignal(uuid4(), "AAPL", action, D(entry), D(stop), D(tp), "rsi", None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("150", "150.00"),
        ("150.005", "150.00"),
        ("150.015", "150.02"),
        ("0.125", "0.12"),
        ("99.999", "100.00"),
        ("150.0049", "150.00"),
    ],
)
def test_to_cent_rounds_half_to_even(value: str, expected: str) -> None:
    assert str(to_cent(D(value))) == expected


def test_reward_risk_worked_example() -> None:
    ratio = reward_risk(D("150"), D("145"), D("160"))
    assert ratio == 2 and str(ratio) == "2.00"


def test_reward_risk_short_and_rounding() -> None:
    assert reward_risk(D("150"), D("155"), D("140")) == D("2.00")
    assert reward_risk(D("100"), D("97"), D("104")) == D("1.33")
    assert reward_risk(D("100"), D("97"), D("105")) == D("1.67")


def test_reward_risk_zero_distance_raises() -> None:
    with pytest.raises(ValueError, match="zero stop distance"):
        reward_risk(D("150"), D("150"), D("160"))


@pytest.mark.parametrize("protection", ["bracket", "none"])
def test_stop_entry_is_always_a_plain_order(protection: str) -> None:
    order = build_order(signal(), 10, OrderType.STP, protection, "ref-1")
    assert order == OrderRequest(
        "AAPL", Action.BUY, 10, OrderType.STP, None, D("150.00"), order_ref="ref-1"
    )


def test_plain_limit_and_market_orders() -> None:
    limit = build_order(signal(Action.SELL, "150", "155", "140"), 5, OrderType.LMT, "none", "r")
    assert limit == OrderRequest("AAPL", Action.SELL, 5, OrderType.LMT, D("150.00"), None, "r")
    market = build_order(signal(), 5, OrderType.MKT, "none", "r")
    assert market == OrderRequest("AAPL", Action.BUY, 5, OrderType.MKT, None, None, "r")


def test_bracket_limit_entry() -> None:
    order = build_order(signal(), 133, OrderType.LMT, "bracket", "exec-1")
    assert order == BracketOrderRequest(
        symbol="AAPL",
        action=Action.BUY,
        quantity=133,
        entry_order_type=OrderType.LMT,
        entry_limit_price=D("150.00"),
        stop_loss=D("145.00"),
        take_profit=D("160.00"),
        order_ref="exec-1",
    )


def test_bracket_market_entry_has_no_entry_price() -> None:
    order = build_order(signal(Action.SELL, "150", "155", "140"), 7, "MKT", "bracket", "x")
    assert isinstance(order, BracketOrderRequest)
    assert (order.entry_order_type, order.entry_limit_price) == (OrderType.MKT, None)
    assert (order.stop_loss, order.take_profit, order.action) == (D("155"), D("140"), Action.SELL)


def test_every_price_goes_to_the_cent() -> None:
    odd = signal(entry="150.005", stop="144.996", tp="160.0151")
    bracket = build_order(odd, 1, OrderType.LMT, "bracket", "r")
    assert isinstance(bracket, BracketOrderRequest)
    prices = (bracket.entry_limit_price, bracket.stop_loss, bracket.take_profit)
    assert [str(p) for p in prices] == ["150.00", "145.00", "160.02"]
    stop_order = build_order(odd, 1, OrderType.STP, "none", "r")
    assert isinstance(stop_order, OrderRequest) and str(stop_order.stop_price) == "150.00"


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="quantity"):
        build_order(signal(), 0, OrderType.LMT, "none", "r")
    with pytest.raises(ValueError, match="protection"):
        build_order(signal(), 1, OrderType.LMT, "trailing", "r")
    with pytest.raises(ValueError):
        build_order(signal(), 1, "FOK", "none", "r")
