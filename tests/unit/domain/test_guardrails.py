"""The original's guardrails as pure rules (domain.guardrails), and the ledger's drop-in rules:
dry runs and the original's trades in the RiskBook (domain.ledger)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from tests.support.builders import an_execution
from trade_executor.domain.execution import Execution
from trade_executor.domain.guardrails import (
    GuardrailFacts,
    GuardrailRejection,
    InstanceLimits,
    InstanceRow,
    InstanceTally,
    UsageItem,
    check_account_mode,
    check_entry,
    check_instance_limits,
    parse_clock,
)
from trade_executor.domain.ledger import (
    OriginalTrade,
    counts_against_budget,
    holds_symbol,
    rebuild_riskbook,
)
from trade_executor.domain.models import Account, Action
from trade_executor.domain.riskbook import Decision, RiskBook
from trade_executor.domain.sizing import RiskGate, RiskLimits, RiskRejection
from trade_executor.domain.states import ExecutionState
from trade_executor.domain.validation import ValidSignal

NY = ZoneInfo("America/New_York")
# 10:00 in New York on a weekday.
MORNING = datetime(2026, 3, 12, 15, 0, tzinfo=UTC)
AFTER_CLOSE = datetime(2026, 3, 12, 20, 56, tzinfo=UTC)  # 15:56 in New York


def instance(**changes: object) -> InstanceRow:
    values: dict[str, object] = {
        "id": uuid4(),
        "enabled": True,
        "session_timezone": "America/New_York",
        "flatten_by_close_time": "15:55",
        "config": {},
    }
    values.update(changes)
    return InstanceRow(**values)  # type: ignore[arg-type]


def facts(row: InstanceRow | None = None, **changes: object) -> GuardrailFacts:
    row = row if row is not None else instance()
    values: dict[str, object] = {
        "instance_checked": True,
        "instance_id": row.id,
        "instance": row,
    }
    values.update(changes)
    return GuardrailFacts(**values)  # type: ignore[arg-type]


def reason(result: GuardrailRejection | None) -> str | None:
    return None if result is None else result.reason


# -- entry guards -----------------------------------------------------------------------------


def test_an_enabled_instance_before_its_flatten_time_passes() -> None:
    assert check_entry(facts(), MORNING) is None


def test_a_disabled_or_missing_instance_is_refused() -> None:
    assert reason(check_entry(facts(instance(enabled=False)), MORNING)) == "instance_disabled"
    missing = GuardrailFacts(instance_checked=True, instance_id=uuid4(), instance=None)
    assert reason(check_entry(missing, MORNING)) == "instance_disabled"


def test_no_entries_at_or_after_the_flatten_time_in_the_session_zone() -> None:
    assert reason(check_entry(facts(), AFTER_CLOSE)) == "post_flatten"
    exactly = datetime(2026, 3, 12, 19, 55, tzinfo=UTC)  # 15:55 EDT
    assert reason(check_entry(facts(), exactly)) == "post_flatten"
    just_before = exactly - timedelta(minutes=1)
    assert check_entry(facts(), just_before) is None
    # The same instant is still morning in Los Angeles.
    west = instance(session_timezone="America/Los_Angeles")
    assert check_entry(facts(west), AFTER_CLOSE) is None


def test_the_originals_defaults_apply_to_empty_columns() -> None:
    blank = instance(session_timezone="", flatten_by_close_time="")
    assert reason(check_entry(facts(blank), AFTER_CLOSE)) == "post_flatten"
    assert check_entry(facts(blank), MORNING) is None


@pytest.mark.parametrize(
    "changes",
    [{"session_timezone": "Mars/Olympus"}, {"flatten_by_close_time": "soon"}],
)
def test_unreadable_session_settings_fail_closed(changes: dict[str, str]) -> None:
    assert reason(check_entry(facts(instance(**changes)), MORNING)) == "post_flatten"


def test_a_signal_without_an_instance_is_not_held_by_instance_guards() -> None:
    no_instance = GuardrailFacts(instance_checked=True, instance_id=None)
    assert check_entry(no_instance, AFTER_CLOSE) is None


@pytest.mark.parametrize("state", ["APPROVED", "ACTIVE"])
def test_an_approved_or_active_artifact_passes(state: str) -> None:
    gate = GuardrailFacts(artifact_checked=True, artifact_id=uuid4(), artifact_state=state)
    assert check_entry(gate, MORNING) is None


@pytest.mark.parametrize("state", ["DRAFT", "VALIDATED", "REVIEWED", "DEPRECATED", "REVOKED", None])
def test_any_other_artifact_state_is_refused(state: str | None) -> None:
    gate = GuardrailFacts(artifact_checked=True, artifact_id=uuid4(), artifact_state=state)
    assert reason(check_entry(gate, MORNING)) == "artifact_not_approved"


def test_a_signal_without_an_artifact_is_refused_when_the_gate_is_on() -> None:
    gate = GuardrailFacts(artifact_checked=True, artifact_id=None)
    assert reason(check_entry(gate, MORNING)) == "artifact_not_approved"
    assert check_entry(GuardrailFacts(artifact_checked=False), MORNING) is None


def test_a_read_error_rejects_with_its_gate() -> None:
    failed = GuardrailRejection("instance_disabled", "could not read")
    assert check_entry(GuardrailFacts(read_error=failed), MORNING) == failed


# -- live or paper ----------------------------------------------------------------------------


def test_live_or_unknown_accounts_need_allow_live_trading() -> None:
    assert check_account_mode(True, allow_live=False) is None
    assert reason(check_account_mode(False, allow_live=False)) == "live_trading_not_allowed"
    assert reason(check_account_mode(None, allow_live=False)) == "live_trading_not_allowed"
    assert check_account_mode(False, allow_live=True) is None
    assert check_account_mode(None, allow_live=True) is None


# -- instance limits --------------------------------------------------------------------------


def item(key: str, symbol: str = "X", risk: str = "100", open_: bool = True) -> UsageItem:
    return UsageItem(key, symbol, Decimal(risk), open_)


def test_config_limits_follow_the_original() -> None:
    assert InstanceLimits.from_config({}) == InstanceLimits(1000, 1000, Decimal(0))
    parsed = InstanceLimits.from_config(
        {
            "maxTradesPerDay": 5,
            "maxOpenPositions": Decimal("3.7"),
            "maxDailyLoss": Decimal("2500.5"),
        }
    )
    assert parsed == InstanceLimits(5, 3, Decimal("2500.5"))
    # Not a JSON number: the default, as its intFromAny / floatFromAny do.
    odd = InstanceLimits.from_config({"maxTradesPerDay": "2", "maxDailyLoss": True})
    assert odd == InstanceLimits(1000, 1000, Decimal(0))


def test_max_trades_per_day_counts_read_and_decided_once_each() -> None:
    row = instance(config={"maxTradesPerDay": 3})
    read = facts(row, usage=(item("t1"), item("e2")))
    # "e2" was decided by this process and is already in the read: counted once.
    assert check_instance_limits(read, [item("e2")], "NEW", Decimal(1)) is None
    refused = check_instance_limits(read, [item("e3")], "NEW", Decimal(1))
    assert reason(refused) == "risk: instance_max_trades_per_day"


def test_max_open_positions_counts_open_symbols_only() -> None:
    row = instance(config={"maxOpenPositions": 2})
    usage = (item("a", "AAA"), item("b", "BBB", open_=False), item("c", "AAA"))
    assert check_instance_limits(facts(row, usage=usage), [], "CCC", Decimal(1)) is None
    refused = check_instance_limits(facts(row, usage=usage), [item("d", "DDD")], "CCC", Decimal(1))
    assert reason(refused) == "risk: instance_max_open_positions"


def test_max_daily_loss_includes_the_new_trade() -> None:
    row = instance(config={"maxDailyLoss": 1000})
    usage = (item("a", risk="335"),)
    assert check_instance_limits(facts(row, usage=usage), [], "N", Decimal(665)) is None
    refused = check_instance_limits(facts(row, usage=usage), [], "N", Decimal("665.01"))
    assert reason(refused) == "risk: instance_max_daily_loss"


def test_zero_limits_are_off() -> None:
    row = instance(config={"maxTradesPerDay": 0, "maxOpenPositions": 0, "maxDailyLoss": 0})
    many = tuple(item(str(i), f"S{i}", "1000") for i in range(2000))
    assert check_instance_limits(facts(row, usage=many), [], "NEW", Decimal(10**6)) is None


def test_the_tally_keeps_what_was_decided_until_released() -> None:
    tally = InstanceTally()
    inst, day = uuid4(), date(2026, 3, 12)
    tally.add(inst, day, item("e1"))
    tally.add(inst, day, item("e2"))
    tally.remove("e1")
    tally.remove("never-added")
    assert [i.key for i in tally.items(inst, day)] == ["e2"]
    assert list(tally.items(inst, day + timedelta(days=1))) == []


def test_parse_clock() -> None:
    assert parse_clock("15:55") == time(15, 55)
    assert parse_clock("9:30") == time(9, 30)
    for bad in ("", "15", "24:00", "12:60", "12:5", "noon", "1a:00"):
        assert parse_clock(bad) is None, bad


# -- the ledger: dry runs and the original's trades -------------------------------------------

LIMITS = RiskLimits(
    max_risk_per_trade=Decimal("0.01"),
    min_position_size=1,
    max_position_size=1000,
    max_position_value_pct=Decimal("0.20"),
    max_open_positions=5,
    max_daily_loss=Decimal(1000),
)
ACCOUNT = Account("DU1", Decimal(100000), Decimal(100000))


def valid(symbol: str) -> ValidSignal:
    return ValidSignal(
        uuid4(), symbol, Action.BUY, Decimal(150), Decimal(145), Decimal(160), None, None
    )


def test_a_dry_run_holds_its_budget_and_symbol_for_its_day_only() -> None:
    book = RiskBook(LIMITS, NY)
    first = uuid4()
    decision = book.decide(first, valid("DRY"), ACCOUNT, MORNING)
    assert isinstance(decision, Decision)
    book.hold_for_day(first)
    book.set_broker_positions([])  # a broker snapshot does not free it
    again = book.decide(uuid4(), valid("DRY"), ACCOUNT, MORNING)
    assert isinstance(again, RiskRejection) and again.gate is RiskGate.DUPLICATE_SYMBOL
    assert book.daily_risk_used(MORNING) == Decimal(665)
    tomorrow = MORNING + timedelta(days=1)
    assert isinstance(book.decide(uuid4(), valid("DRY"), ACCOUNT, tomorrow), Decision)


def execution(state: ExecutionState, day: date, symbol: str = "DRY") -> Execution:
    return an_execution(state, symbol=symbol, risk_amount=Decimal(665), trading_day=day)


def test_the_ledger_counts_dry_runs_and_rebuilds_them() -> None:
    today = RiskBook(LIMITS, NY).trading_day(MORNING)
    dry = execution(ExecutionState.DRY_RUN, today)
    assert counts_against_budget(dry)
    assert holds_symbol(dry, today) and not holds_symbol(dry, today + timedelta(days=1))
    book = rebuild_riskbook(LIMITS, NY, [dry], MORNING)
    assert book.daily_risk_used(MORNING) == Decimal(665)
    assert book.is_open("DRY") and book.in_flight() == 0  # held, not an order in flight
    old = execution(ExecutionState.DRY_RUN, today - timedelta(days=1), "OLD")
    assert not rebuild_riskbook(LIMITS, NY, [old], MORNING).is_open("OLD")


def test_the_originals_trades_of_today_count_and_its_working_orders_hold() -> None:
    trades = [
        OriginalTrade("t1", "MSFT", Decimal(500), "Filled", MORNING - timedelta(minutes=5)),
        OriginalTrade("t2", "NVDA", Decimal(220), "Submitted", MORNING - timedelta(minutes=3)),
        OriginalTrade("t3", "GOOGL", Decimal(399), "Filled", MORNING - timedelta(days=1)),
        OriginalTrade("t4", "AAPL", Decimal(330), None, MORNING - timedelta(minutes=1)),
    ]
    book = rebuild_riskbook(LIMITS, NY, [], MORNING, original_trades=[*trades, trades[0]])
    assert book.daily_risk_used(MORNING) == Decimal(1050)  # each once; yesterday's not
    assert book.is_open("NVDA")  # its order may still work
    assert not book.is_open("MSFT")  # a position: the broker's positions say so
    assert not book.is_open("AAPL")  # a setup without an order
