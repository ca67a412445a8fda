"""Realized P&L and R multiple of exits: exact Decimal, long and short, partial exits."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trade_executor.domain.models import Action
from trade_executor.domain.pnl import add_exit_fill, r_multiple


def test_the_worked_example_stopped_out_is_minus_one_r() -> None:
    exit_ = add_exit_fill(
        None, side=Action.BUY, entry_price=D("150"), quantity=133, price=D("145"),
        planned_risk=D("665.00"),
    )  # fmt: skip
    assert exit_.realized_pnl == D("-665.00")
    assert exit_.r_multiple == D("-1.0000")
    assert (exit_.quantity, exit_.avg_price) == (133, D("145.0000"))


def test_the_worked_example_at_take_profit_is_two_r() -> None:
    exit_ = add_exit_fill(
        None, side=Action.BUY, entry_price=D("150"), quantity=133, price=D("160"),
        planned_risk=D("665.00"),
    )  # fmt: skip
    assert exit_.realized_pnl == D("1330.00") and exit_.r_multiple == D("2.0000")


def test_a_short_gains_when_the_price_falls() -> None:
    stop_out = add_exit_fill(
        None, side=Action.SELL, entry_price=D("100"), quantity=50, price=D("104"),
        planned_risk=D("200"),
    )  # fmt: skip
    target = add_exit_fill(
        None, side=Action.SELL, entry_price=D("100"), quantity=50, price=D("92"),
        planned_risk=D("200"),
    )  # fmt: skip
    assert (stop_out.realized_pnl, stop_out.r_multiple) == (D("-200.00"), D("-1.0000"))
    assert (target.realized_pnl, target.r_multiple) == (D("400.00"), D("2.0000"))


def test_partial_exits_accumulate() -> None:
    first = add_exit_fill(
        None, side=Action.BUY, entry_price=D("150"), quantity=33, price=D("160"),
        planned_risk=D("665.00"),
    )  # fmt: skip
    both = add_exit_fill(
        first, side=Action.BUY, entry_price=D("150"), quantity=100, price=D("145"),
        planned_risk=D("665.00"),
    )  # fmt: skip
    assert both.quantity == 133
    assert both.realized_pnl == D("330.00") + D("-500.00")
    assert both.avg_price == ((D(160) * 33 + D(145) * 100) / 133).quantize(D("0.0001"))
    assert both.r_multiple == (D("-170.00") / D("665.00")).quantize(D("0.0001"))


def test_no_planned_risk_gives_no_r() -> None:
    assert r_multiple(D("10"), None) is None
    assert r_multiple(D("10"), D(0)) is None


def test_an_empty_fill_is_refused() -> None:
    with pytest.raises(ValueError, match="positive quantity"):
        add_exit_fill(
            None, side=Action.BUY, entry_price=D(1), quantity=0, price=D(1), planned_risk=None
        )


prices = st.decimals(min_value=D("0.01"), max_value=D("10000"), places=2)


@given(entry=prices, exit_price=prices, qty=st.integers(1, 10_000), buy=st.booleans())
def test_pnl_is_exact_and_sign_follows_the_side(
    entry: D, exit_price: D, qty: int, buy: bool
) -> None:
    side = Action.BUY if buy else Action.SELL
    result = add_exit_fill(
        None, side=side, entry_price=entry, quantity=qty, price=exit_price, planned_risk=None
    )
    expected = (exit_price - entry) * qty * (1 if buy else -1)
    assert result.realized_pnl == expected  # cents times an integer: exact
