"""Signal and approval validation: every rule of CONTRACT section 5, with section 4's reasons."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from trade_executor.domain.models import Action, Approval, Signal
from trade_executor.domain.validation import (
    Rejection,
    ValidSignal,
    check_approval,
    validate,
    validate_signal,
)

NOW = datetime(2024, 6, 3, 15, 0, tzinfo=UTC)
MAX_AGE = timedelta(seconds=300)
D = Decimal


def buy(**changes: object) -> Signal:
    signal = Signal(
        id=uuid4(),
        symbol="AAPL",
        signal_type="BUY",
        entry_price=D("150"),
        stop_loss=D("145"),
        take_profit=D("160"),
        strategy_id="rsi",
        expires_at=NOW + timedelta(hours=1),
    )
    return replace(signal, **changes)  # type: ignore[arg-type]


def sell(**changes: object) -> Signal:
    base = {"signal_type": "SELL", "stop_loss": D("155"), "take_profit": D("140")}
    return buy(**(base | changes))


def approval(**changes: object) -> Approval:
    base = Approval(
        id=uuid4(), signal_id=uuid4(), approved=True, approved_at=NOW - timedelta(seconds=10)
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def reason(signal: Signal) -> str:
    result = validate_signal(signal, NOW)
    assert isinstance(result, Rejection), result
    return result.reason


def test_valid_buy_is_normalised() -> None:
    signal = buy(symbol="  brk.b ", entry_price=D("150.004"), stop_loss=D("145.005"))
    result = validate_signal(signal, NOW)
    assert result == ValidSignal(
        signal_id=signal.id,
        symbol="BRK.B",
        action=Action.BUY,
        entry=D("150.00"),
        stop=D("145.00"),  # half to even
        take_profit=D("160.00"),
        strategy_id="rsi",
        expires_at=signal.expires_at,
    )
    assert str(result.entry) == "150.00"


def test_valid_sell() -> None:
    result = validate_signal(sell(signal_type=" sell "), NOW)
    assert isinstance(result, ValidSignal)
    assert (result.action, result.stop, result.take_profit) == (Action.SELL, D(155), D(140))


def test_int_or_float_prices_are_accepted() -> None:
    result = validate_signal(buy(entry_price=150, take_profit=160.1), NOW)
    assert isinstance(result, ValidSignal)
    assert result.take_profit == D("160.10")  # through repr, not binary float


# -- symbol -------------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", [None, "", "   ", "\t\n"])
def test_missing_symbol(symbol: str | None) -> None:
    assert reason(buy(symbol=symbol)) == "invalid_signal: symbol is missing"


@pytest.mark.parametrize("symbol", ["BRK B", "BRK.B", "BF-B", "EUR/USD", "A" * 20, "x1"])
def test_acceptable_symbols(symbol: str) -> None:
    result = validate_signal(buy(symbol=symbol), NOW)
    assert isinstance(result, ValidSignal)
    assert result.symbol == symbol.upper()


def test_overlong_symbol_is_rejected_with_a_short_detail() -> None:
    text = reason(buy(symbol="A" * 500))
    assert text == "invalid_signal: symbol is 500 characters long (at most 20)"
    assert reason(buy(symbol="A" * 21)).startswith("invalid_signal: symbol is 21 characters")


@pytest.mark.parametrize("symbol", ["AA\x00PL", "AAPL;DROP", "ÄPL", "A\nB", "MSFT\u200b", "$X"])
def test_odd_symbol_characters_are_rejected(symbol: str) -> None:
    text = reason(buy(symbol=symbol))
    assert text.startswith("invalid_signal: symbol ")
    assert "only letters, digits" in text
    assert "\x00" not in text and "\n" not in text  # rendered with repr, safe to log


def test_non_string_symbol() -> None:
    assert reason(buy(symbol=42)) == "invalid_signal: symbol is missing"


# -- signal type --------------------------------------------------------------------------------


def test_hold_is_not_executable() -> None:
    assert reason(buy(signal_type="HOLD")) == "invalid_signal: HOLD is not executable"
    assert reason(buy(signal_type="hold")) == "invalid_signal: HOLD is not executable"


@pytest.mark.parametrize("kind", ["SHORT", "buy!", "B"])
def test_unknown_signal_type_is_named(kind: str) -> None:
    assert reason(buy(signal_type=kind)) == (
        f"invalid_signal: unknown signal_type {kind!r} (expected BUY or SELL)"
    )


@pytest.mark.parametrize("kind", [None, "", "  "])
def test_missing_signal_type(kind: str | None) -> None:
    assert reason(buy(signal_type=kind)) == "invalid_signal: signal_type is missing"


# -- prices -------------------------------------------------------------------------------------

FIELDS = ["entry_price", "stop_loss", "take_profit"]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "{f} is missing"),
        (D("NaN"), "{f} NaN is not a finite number"),
        (D("sNaN"), "{f} sNaN is not a finite number"),
        (D("-NaN"), "{f} -NaN is not a finite number"),
        (D("Infinity"), "{f} Infinity is not a finite number"),
        (D("-Infinity"), "{f} -Infinity is not a finite number"),
        (float("nan"), "{f} NaN is not a finite number"),
        (float("inf"), "{f} Infinity is not a finite number"),
        (D("0"), "{f} 0 must be greater than 0"),
        (D("-5.00"), "{f} -5.00 must be greater than 0"),
        (-1, "{f} -1 must be greater than 0"),
        (D("0.004"), "{f} 0.004 rounds to 0.00"),
        (D("1000000.01"), "{f} 1000000.01 is above the sanity limit of 1000000 per share"),
        (D("1E+400"), "{f} 1E+400 is above the sanity limit of 1000000 per share"),
        ("150", "{f} is not a number"),
        (True, "{f} is not a number"),
    ],
)
def test_bad_prices(field: str, value: object, expected: str) -> None:
    assert reason(buy(**{field: value})) == "invalid_signal: " + expected.format(f=field)


def test_price_at_the_sanity_limit_is_accepted() -> None:
    signal = buy(entry_price=D("999999"), stop_loss=D("999000"), take_profit=D("1000000"))
    assert isinstance(validate_signal(signal, NOW), ValidSignal)


# -- sides --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        (buy(stop_loss=D("155")), "stop_loss 155.00 must be below entry 150.00 for BUY"),
        (buy(stop_loss=D("150")), "stop_loss 150.00 must be below entry 150.00 for BUY"),
        (buy(take_profit=D("145")), "take_profit 145.00 must be above entry 150.00 for BUY"),
        (buy(take_profit=D("150")), "take_profit 150.00 must be above entry 150.00 for BUY"),
        (sell(stop_loss=D("145")), "stop_loss 145.00 must be above entry 150.00 for SELL"),
        (sell(stop_loss=D("150")), "stop_loss 150.00 must be above entry 150.00 for SELL"),
        (sell(take_profit=D("160")), "take_profit 160.00 must be below entry 150.00 for SELL"),
        (sell(take_profit=D("150")), "take_profit 150.00 must be below entry 150.00 for SELL"),
        # Distinct raw prices equal after cent rounding: a zero stop distance.
        (
            buy(stop_loss=D("149.996"), entry_price=D("150.004")),
            "stop_loss 150.00 must be below entry 150.00 for BUY",
        ),
        (
            sell(stop_loss=D("150.001")),
            "stop_loss 150.00 must be above entry 150.00 for SELL",
        ),
    ],
)
def test_prices_on_the_wrong_side(signal: Signal, expected: str) -> None:
    assert reason(signal) == "invalid_signal: " + expected


def test_a_long_signal_labelled_sell_is_rejected() -> None:
    assert reason(buy(signal_type="SELL")).startswith("invalid_signal: stop_loss 145.00")


# -- expiry and approval ------------------------------------------------------------------------


def test_expired_signal() -> None:
    assert reason(buy(expires_at=NOW - timedelta(seconds=1))) == "expired"
    assert reason(buy(expires_at=NOW)) == "expired"  # "in the future" is strict
    assert isinstance(validate_signal(buy(expires_at=NOW + timedelta(seconds=1)), NOW), ValidSignal)


def test_no_expiry_means_generated_at_plus_24_hours_as_the_original_reads_it() -> None:
    fresh = validate_signal(buy(expires_at=None, generated_at=NOW - timedelta(minutes=1)), NOW)
    assert isinstance(fresh, ValidSignal)
    assert fresh.expires_at == NOW - timedelta(minutes=1) + timedelta(hours=24)
    old = validate_signal(buy(expires_at=None, generated_at=NOW - timedelta(hours=25)), NOW)
    assert isinstance(old, Rejection) and old.reason == "expired"
    assert "generated_at + SIGNAL_DEFAULT_TTL" in old.detail
    at_limit = buy(expires_at=None, generated_at=NOW - timedelta(hours=24))
    assert reason(at_limit) == "expired"  # the implied expiry is as strict as a written one


def test_the_default_ttl_is_a_setting_and_created_at_stands_in_for_generated_at() -> None:
    hour_old = buy(expires_at=None, created_at=NOW - timedelta(hours=1))
    assert isinstance(validate_signal(hour_old, NOW), ValidSignal)
    short = validate_signal(hour_old, NOW, default_ttl=timedelta(minutes=30))
    assert isinstance(short, Rejection) and short.reason == "expired"


def test_a_signal_of_unknown_age_and_no_expiry_is_refused() -> None:
    result = validate_signal(buy(expires_at=None), NOW)
    assert isinstance(result, Rejection) and result.reason == "expired"
    assert result.detail == "no expires_at and no generated_at: its age is unknown"


def test_naive_expiry_is_taken_as_utc() -> None:
    naive_past = (NOW - timedelta(minutes=1)).replace(tzinfo=None)
    assert reason(buy(expires_at=naive_past)) == "expired"
    naive_future = (NOW + timedelta(minutes=1)).replace(tzinfo=None)
    assert isinstance(validate_signal(buy(expires_at=naive_future), NOW), ValidSignal)


def test_invalid_beats_expired() -> None:
    signal = buy(expires_at=NOW - timedelta(days=1), entry_price=D("NaN"))
    assert reason(signal).startswith("invalid_signal: entry_price NaN")


def test_check_approval() -> None:
    assert check_approval(approval(), NOW, MAX_AGE) is None
    assert check_approval(approval(approved=False), NOW, MAX_AGE) == Rejection("not_approved")
    old = NOW - MAX_AGE - timedelta(seconds=1)
    stale = check_approval(approval(approved_at=old), NOW, MAX_AGE)
    assert stale is not None and stale.reason == "stale"
    assert stale.detail == "approved 301 s ago (max 300 s)"
    at_limit = approval(approved_at=NOW - MAX_AGE)
    assert check_approval(at_limit, NOW, MAX_AGE) is None


def test_approval_age_falls_back_to_created_at() -> None:
    fresh = approval(approved_at=None, created_at=NOW - timedelta(seconds=5))
    assert check_approval(fresh, NOW, MAX_AGE) is None
    old = approval(approved_at=None, created_at=NOW - timedelta(hours=1))
    assert check_approval(old, NOW, MAX_AGE) == Rejection(
        "stale", "approved 3600 s ago (max 300 s)"
    )


def test_approval_of_unknown_age_is_stale() -> None:
    result = check_approval(approval(approved_at=None, created_at=None), NOW, MAX_AGE)
    assert result is not None and result.reason == "stale"


def test_validate_orders_its_checks() -> None:
    stale = approval(approved_at=NOW - timedelta(hours=1))
    expired = buy(expires_at=NOW - timedelta(minutes=1))
    invalid = replace(expired, signal_type="HOLD")

    def outcome(signal: Signal, appr: Approval) -> str:
        result = validate(signal, appr, NOW, MAX_AGE)
        return result.reason if isinstance(result, Rejection) else "ok"

    assert outcome(invalid, replace(stale, approved=False)) == "not_approved"
    assert outcome(invalid, stale) == "invalid_signal: HOLD is not executable"
    assert outcome(expired, stale) == "expired"
    assert outcome(buy(), stale) == "stale"
    assert outcome(buy(), approval()) == "ok"
    assert isinstance(validate(sell(), approval(), NOW, MAX_AGE), ValidSignal)
