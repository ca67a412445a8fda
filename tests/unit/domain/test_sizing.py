"""Position sizing: the golden cases of issue 2 and properties over random inputs."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trade_executor.config.limits import risk_limits
from trade_executor.config.sources import Settings
from trade_executor.domain.models import Account
from trade_executor.domain.sizing import (
    POSITION_SIZE_CEILING,
    RiskGate,
    RiskLimits,
    RiskRejection,
    Sizing,
    size_position,
)

D = Decimal
DEFAULTS = RiskLimits(
    max_risk_per_trade=D("0.01"),
    min_position_size=1,
    max_position_size=1000,
    max_position_value_pct=D("0.20"),
    max_open_positions=5,
    max_daily_loss=D("1000.0"),
)
ACCOUNT = Account("DU1", net_liquidation=D("100000"), buying_power=D("100000"))
FULL_DAY = D("1000")


def sized(entry: str, stop: str, account: Account = ACCOUNT, **limits: object) -> Sizing:
    result = size_position(D(entry), D(stop), account, replace(DEFAULTS, **limits), FULL_DAY)  # type: ignore[arg-type]
    assert isinstance(result, Sizing), result
    return result


def rejected(
    entry: str, stop: str, account: Account = ACCOUNT, daily_left: str = "1000", **limits: object
) -> RiskRejection:
    lim = replace(DEFAULTS, **limits)  # type: ignore[arg-type]
    result = size_position(D(entry), D(stop), account, lim, D(daily_left))
    assert isinstance(result, RiskRejection), result
    return result


def test_limits_from_settings_defaults() -> None:
    assert risk_limits(Settings()) == DEFAULTS


def test_worked_example() -> None:
    s = sized("150", "145")
    assert (s.quantity, s.risk_amount, s.risk_percent, s.position_value) == (
        133,
        D("665.00"),
        D("0.00665"),
        D("19950.00"),
    )
    assert str(s.risk_amount) == "665.00" and str(s.position_value) == "19950.00"
    assert s.stop_distance == 5
    assert s.binding == "max_position_value"


def test_normal_long_is_bound_by_the_risk_budget() -> None:
    s = sized("20.00", "18.00")
    assert (s.quantity, s.risk_amount, s.position_value, s.binding) == (
        500,
        D("1000.00"),
        D("10000.00"),
        "risk_budget",
    )
    assert s.risk_percent == D("0.01")


def test_normal_short_mirrors_the_long() -> None:
    s = sized("20.00", "22.00")
    assert (s.quantity, s.risk_amount, s.stop_distance, s.binding) == (
        500,
        D("1000.00"),
        D("2.00"),
        "risk_budget",
    )


def test_capped_by_buying_power() -> None:
    s = sized("20.00", "18.00", replace(ACCOUNT, buying_power=D("5000")))
    assert (s.quantity, s.position_value, s.risk_amount, s.binding) == (
        250,
        D("5000.00"),
        D("500.00"),
        "buying_power",
    )


def test_capped_by_max_position_size() -> None:
    s = sized("10.00", "9.50")  # the budget alone would allow 2000 shares
    assert (s.quantity, s.risk_amount, s.binding) == (1000, D("500.00"), "max_position_size")


def test_floor_never_rounds_up() -> None:
    s = sized("30.00", "27.00")  # 1000 / 3 = 333.33...
    assert (s.quantity, s.risk_amount, s.binding) == (333, D("999.00"), "risk_budget")


def test_below_minimum_is_rejected_not_raised_to_it() -> None:
    r = rejected("500.00", "300.00", min_position_size=10)  # budget allows 5 shares
    assert r.gate is RiskGate.BELOW_MIN_SIZE and r.reason == "risk: below_min_size"
    assert "allows 5 shares" in r.detail
    # The default minimum of 1: a stop distance wider than the whole budget.
    assert rejected("2000.00", "400.00").gate is RiskGate.BELOW_MIN_SIZE


def test_zero_stop_distance_is_rejected() -> None:
    r = rejected("150.00", "150.00")
    assert r.gate is RiskGate.BELOW_MIN_SIZE and "zero stop distance" in r.detail


def test_daily_budget_shrinks_the_size() -> None:
    result = size_position(D("20"), D("18"), ACCOUNT, DEFAULTS, D("300"))
    assert isinstance(result, Sizing)
    assert (result.quantity, result.risk_amount, result.binding) == (
        150,
        D("300.00"),
        "max_daily_loss",
    )


@pytest.mark.parametrize("left", ["0", "-50", "NaN"])
def test_nothing_left_of_the_daily_budget(left: str) -> None:
    r = rejected("20.00", "18.00", daily_left=left)
    assert r.gate is RiskGate.MAX_DAILY_LOSS and r.reason == "risk: max_daily_loss"


def test_daily_budget_too_small_for_one_share() -> None:
    r = rejected("20.00", "18.00", daily_left="1.99")
    assert r.gate is RiskGate.MAX_DAILY_LOSS and "allows 0 shares" in r.detail


def test_rejected_by_position_value_cap() -> None:
    r = rejected("300.00", "299.99", replace(ACCOUNT, net_liquidation=D("1000")))
    assert r.gate is RiskGate.MAX_POSITION_VALUE


def test_rejected_by_buying_power() -> None:
    r = rejected("150.00", "145.00", replace(ACCOUNT, buying_power=D("100")))
    assert r.gate is RiskGate.BUYING_POWER


@pytest.mark.parametrize("value", ["0", "-1000", "NaN", "Infinity"])
def test_broken_accounts_are_rejected_not_crashed(value: str) -> None:
    no_equity = rejected("150", "145", replace(ACCOUNT, net_liquidation=D(value)))
    assert no_equity.gate is RiskGate.MAX_POSITION_VALUE
    no_power = rejected("150", "145", replace(ACCOUNT, buying_power=D(value)))
    assert no_power.gate is RiskGate.BUYING_POWER


@pytest.mark.parametrize(("entry", "stop"), [("NaN", "145"), ("150", "-1"), ("0", "1")])
def test_broken_prices_are_rejected_not_crashed(entry: str, stop: str) -> None:
    assert rejected(entry, stop).gate is RiskGate.BELOW_MIN_SIZE


# -- properties ---------------------------------------------------------------------------------

cents = st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2)
money = st.decimals(min_value=D("-1000"), max_value=D("10000000"), places=2)
fractions = st.decimals(min_value=D("0.001"), max_value=D("1"), places=3)


@st.composite
def limits(draw: st.DrawFn) -> RiskLimits:
    low = draw(st.integers(1, 50))
    return RiskLimits(
        max_risk_per_trade=draw(fractions),
        min_position_size=low,
        # 0 = no cap of its own (the ceiling applies), and 0 = no daily budget.
        max_position_size=draw(st.one_of(st.just(0), st.integers(low, 20_000))),
        max_position_value_pct=draw(fractions),
        max_open_positions=5,
        max_daily_loss=draw(st.sampled_from([D(0), D(1000)])),
    )


@settings(max_examples=300, deadline=None)
@given(
    entry=cents,
    stop=cents,
    net_liq=money,
    buying_power=money,
    lim=limits(),
    daily_left=money,
)
def test_sizing_respects_every_limit(
    entry: Decimal,
    stop: Decimal,
    net_liq: Decimal,
    buying_power: Decimal,
    lim: RiskLimits,
    daily_left: Decimal,
) -> None:
    account = Account("DU1", net_liquidation=net_liq, buying_power=buying_power)
    result = size_position(entry, stop, account, lim, daily_left)
    distance = abs(entry - stop)
    trade_budget = net_liq * lim.max_risk_per_trade
    value_cap = net_liq * lim.max_position_value_pct
    cap = lim.max_position_size if lim.max_position_size > 0 else POSITION_SIZE_CEILING
    budget = min(trade_budget, daily_left) if lim.max_daily_loss > 0 else trade_budget

    def fits(qty: int) -> bool:
        return (
            qty <= cap
            and qty * distance <= budget
            and qty * entry <= value_cap
            and qty * entry <= buying_power
        )

    if isinstance(result, RiskRejection):
        # A rejection is never spurious: the minimum size would break some limit.
        assert distance == 0 or net_liq <= 0 or buying_power <= 0 or not fits(lim.min_position_size)
        return
    q = result.quantity
    assert lim.min_position_size <= q <= cap <= POSITION_SIZE_CEILING
    assert result.risk_amount == q * distance
    assert result.risk_amount <= trade_budget
    assert lim.max_daily_loss == 0 or result.risk_amount <= daily_left
    assert result.position_value == q * entry
    assert result.position_value <= value_cap
    assert result.position_value <= buying_power
    assert fits(q)
    assert q == cap or not fits(q + 1)  # the largest size that fits


# -- 0 = off (CONTRACT v2 section 3) --------------------------------------------------------------

RICH = Account("DU1", net_liquidation=D("1000000000000"), buying_power=D("1000000000000"))


def test_max_position_size_zero_is_no_cap_of_its_own() -> None:
    s = sized("10.00", "9.50", max_position_size=0)  # capped at 1000 when on
    assert (s.quantity, s.binding) == (2000, "risk_budget")


@pytest.mark.parametrize("max_position_size", [0, POSITION_SIZE_CEILING])
def test_no_order_is_ever_above_the_ceiling(max_position_size: int) -> None:
    lim = replace(
        DEFAULTS,
        max_position_size=max_position_size,
        max_risk_per_trade=D(1),
        max_position_value_pct=D(1),
        max_daily_loss=D(0),
    )
    result = size_position(D("1.00"), D("0.99"), RICH, lim, None)
    assert isinstance(result, Sizing)
    assert (result.quantity, result.binding) == (POSITION_SIZE_CEILING, "max_position_size")


def test_max_position_size_above_the_ceiling_is_held_to_it() -> None:
    lim = replace(DEFAULTS, max_position_size=POSITION_SIZE_CEILING * 2)
    assert lim.position_size_cap == POSITION_SIZE_CEILING


@pytest.mark.parametrize("daily_left", [None, D(0), D("-5"), D("NaN")])
def test_max_daily_loss_zero_leaves_only_the_per_trade_budget(daily_left: Decimal | None) -> None:
    lim = replace(DEFAULTS, max_daily_loss=D(0))
    result = size_position(D("20"), D("18"), ACCOUNT, lim, daily_left)
    assert isinstance(result, Sizing)
    # budget = 100000 x 0.01 = 1000 -> 500 shares at a distance of 2, whatever is "left"
    assert (result.quantity, result.risk_amount, result.binding) == (
        500,
        D("1000.00"),
        "risk_budget",
    )


def test_max_daily_loss_zero_still_rejects_a_stop_wider_than_the_trade_budget() -> None:
    lim = replace(DEFAULTS, max_daily_loss=D(0))
    result = size_position(D("2000"), D("400"), ACCOUNT, lim, None)
    assert isinstance(result, RiskRejection) and result.gate is RiskGate.BELOW_MIN_SIZE


def test_unknown_daily_budget_fails_closed_while_the_limit_is_on() -> None:
    result = size_position(D("20"), D("18"), ACCOUNT, DEFAULTS, None)
    assert isinstance(result, RiskRejection) and result.gate is RiskGate.MAX_DAILY_LOSS


def test_caps_of_limits_that_are_on() -> None:
    lim = replace(DEFAULTS, max_daily_realized_loss=D(250))
    assert lim.position_size_cap == 1000
    assert lim.open_positions_cap == 5
    assert lim.daily_loss_cap == D(1000)
    assert lim.daily_realized_loss_cap == D(250)
    assert lim.daily_risk_left(D(400)) == D(600)
    assert lim.daily_risk_left(D(1400)) == D(0)
    assert lim.limits_off() == ()


def test_caps_of_limits_that_are_off() -> None:
    lim = replace(DEFAULTS, max_position_size=0, max_open_positions=0, max_daily_loss=D(0))
    assert lim.position_size_cap == POSITION_SIZE_CEILING
    assert lim.open_positions_cap is None
    assert lim.daily_loss_cap is None
    assert lim.daily_realized_loss_cap is None
    assert lim.daily_risk_left(D(400)) is None
    assert lim.limits_off() == (
        "MAX_POSITION_SIZE",
        "MAX_OPEN_POSITIONS",
        "MAX_DAILY_LOSS",
        "MAX_DAILY_REALIZED_LOSS",
    )


def test_limits_from_settings_carry_the_realized_loss_limit() -> None:
    settings = Settings(max_daily_realized_loss=D(300), max_open_positions=0)
    lim = risk_limits(settings)
    assert lim.daily_realized_loss_cap == D(300)
    assert lim.open_positions_cap is None
