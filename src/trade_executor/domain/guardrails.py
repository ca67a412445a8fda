"""The original service's own guards (CONTRACT section 5, "guardrails of the original" and "live
or paper"), as pure rules: the caller reads the facts (the prepare step, I/O) and the serial
decide step applies these functions to them, so per-instance limits see every earlier decision.

Guarantees:
- they fail closed: facts that could not be read (`GuardrailFacts.read_error`) reject with the
  gate that was being read, never let through; a malformed `session_timezone` or
  `flatten_by_close_time` rejects `post_flatten`;
- the per-instance limits follow the original (jax-trading-assistant's
  `CheckInstanceExecutionAllowed`): `config.maxTradesPerDay` (default 1000) and
  `config.maxOpenPositions` (default 1000) count today's trades and open symbols of the
  instance, `config.maxDailyLoss` (default 0 = off) its risk at stake today; a value that is not
  a JSON number takes the default, as there. Unlike the original, the new trade's own risk is
  included in the daily-loss check (the budget is never exceeded, not only checked once spent);
- usage is the union, by key, of what was read (`trades` rows of the instance today and our
  executions without a trade row, such as dry runs) and what this process decided since
  (`InstanceTally`): nothing counted twice, nothing decided in between missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

INSTANCE_DISABLED = "instance_disabled"
POST_FLATTEN = "post_flatten"
ARTIFACT_NOT_APPROVED = "artifact_not_approved"
LIVE_TRADING_NOT_ALLOWED = "live_trading_not_allowed"
MAX_TRADES_PER_DAY = "risk: instance_max_trades_per_day"
MAX_OPEN_POSITIONS = "risk: instance_max_open_positions"
MAX_DAILY_LOSS = "risk: instance_max_daily_loss"

# The original's defaults (strategy_instances columns and CheckInstanceExecutionAllowed).
DEFAULT_TIMEZONE = "America/New_York"
DEFAULT_FLATTEN = "15:55"
DEFAULT_MAX_TRADES = 1000
DEFAULT_MAX_OPEN = 1000
APPROVED_ARTIFACT_STATES = frozenset({"APPROVED", "ACTIVE"})


@dataclass(frozen=True, slots=True)
class GuardrailRejection:
    """`reason` is exactly a CONTRACT section 4 string; `detail` is for the logs."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """A `strategy_instances` row (the columns the guards read)."""

    id: UUID
    enabled: bool
    session_timezone: str | None
    flatten_by_close_time: str | None
    config: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class UsageItem:
    """One trade of an instance today: a `trades` row (key: its id) or one of our executions
    that has no trade row (a dry run, an order being sent; key: the execution id as text)."""

    key: str
    symbol: str
    risk_amount: Decimal
    open: bool  # its symbol is held: an order working, a position open, a dry run of today


@dataclass(frozen=True, slots=True)
class GuardrailFacts:
    """What the prepare step read for one signal. `*_checked` False: that guard is off (or the
    signal names no instance, for the instance guards)."""

    instance_checked: bool = False
    instance_id: UUID | None = None
    instance: InstanceRow | None = None  # None while checked: the row does not exist
    usage: tuple[UsageItem, ...] = ()
    artifact_checked: bool = False
    artifact_id: UUID | None = None
    artifact_state: str | None = None  # None while checked: no artifact_approvals row
    read_error: GuardrailRejection | None = None  # reading failed: fail closed with this


NO_GUARDRAILS = GuardrailFacts()


def check_account_mode(paper_trading: bool | None, allow_live: bool) -> GuardrailRejection | None:
    """A live account (or one whose mode is unknown: never assumed paper) needs
    ALLOW_LIVE_TRADING."""
    if paper_trading is True or allow_live:
        return None
    mode = "unknown" if paper_trading is None else "live"
    return GuardrailRejection(
        LIVE_TRADING_NOT_ALLOWED, f"the bridge's account is {mode} and ALLOW_LIVE_TRADING is false"
    )


def check_entry(facts: GuardrailFacts, now: datetime) -> GuardrailRejection | None:
    """The guards that need no sizing: read errors, the artifact gate, the instance enabled and
    before its flatten time."""
    if facts.read_error is not None:
        return facts.read_error
    if facts.artifact_checked:
        if facts.artifact_id is None:
            return GuardrailRejection(ARTIFACT_NOT_APPROVED, "the signal names no artifact")
        if facts.artifact_state not in APPROVED_ARTIFACT_STATES:
            return GuardrailRejection(
                ARTIFACT_NOT_APPROVED,
                f"artifact {facts.artifact_id} is {facts.artifact_state or 'without approval'}",
            )
    if facts.instance_checked and facts.instance_id is not None:
        instance = facts.instance
        if instance is None:
            return GuardrailRejection(
                INSTANCE_DISABLED, f"no strategy_instances row {facts.instance_id}"
            )
        if not instance.enabled:
            return GuardrailRejection(INSTANCE_DISABLED, f"instance {instance.id} is disabled")
        return _check_flatten(instance, now)
    return None


def _check_flatten(instance: InstanceRow, now: datetime) -> GuardrailRejection | None:
    zone_name = instance.session_timezone or DEFAULT_TIMEZONE
    flatten_text = instance.flatten_by_close_time or DEFAULT_FLATTEN
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        return GuardrailRejection(POST_FLATTEN, f"unknown session_timezone {zone_name!r}")
    flatten = parse_clock(flatten_text)
    if flatten is None:
        return GuardrailRejection(
            POST_FLATTEN, f"unreadable flatten_by_close_time {flatten_text!r}"
        )
    local = (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).astimezone(zone)
    if local.time().replace(tzinfo=None) >= flatten:
        return GuardrailRejection(
            POST_FLATTEN,
            f"{local:%H:%M} {zone_name} is at or after the flatten time {flatten_text}",
        )
    return None


def parse_clock(text: str) -> time | None:
    """`H:MM` or `HH:MM` (24-hour), as the original's `%d:%d`; None if it is not one."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        return None
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        return None
    return time(h, m)


def _config_number(config: Mapping[str, object], key: str, default: Decimal) -> Decimal:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        return default
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    return number if number.is_finite() else default


@dataclass(frozen=True, slots=True)
class InstanceLimits:
    max_trades_per_day: int  # <= 0: off
    max_open_positions: int  # <= 0: off
    max_daily_loss: Decimal  # <= 0: off

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> InstanceLimits:
        # The original truncates to int (Go's int(float64)).
        trades = _config_number(config, "maxTradesPerDay", Decimal(DEFAULT_MAX_TRADES))
        positions = _config_number(config, "maxOpenPositions", Decimal(DEFAULT_MAX_OPEN))
        return cls(
            max_trades_per_day=int(trades),
            max_open_positions=int(positions),
            max_daily_loss=_config_number(config, "maxDailyLoss", Decimal(0)),
        )


@dataclass(slots=True)
class InstanceTally:
    """What this process decided per instance and trading day (owned by the decide step). An
    entry is added with the reservation and removed when the order never reached the broker."""

    _items: dict[tuple[UUID, date], dict[str, UsageItem]] = field(default_factory=dict)
    _where: dict[str, tuple[UUID, date]] = field(default_factory=dict)

    def add(self, instance_id: UUID, day: date, item: UsageItem) -> None:
        self._items.setdefault((instance_id, day), {})[item.key] = item
        self._where[item.key] = (instance_id, day)

    def remove(self, key: str) -> None:
        where = self._where.pop(key, None)
        if where is not None:
            self._items.get(where, {}).pop(key, None)

    def items(self, instance_id: UUID, day: date) -> Iterable[UsageItem]:
        return tuple(self._items.get((instance_id, day), {}).values())


def check_instance_limits(
    facts: GuardrailFacts,
    decided: Iterable[UsageItem],
    symbol: str,
    new_risk: Decimal,
) -> GuardrailRejection | None:
    """The instance's config limits, with the new trade (its `symbol` and `new_risk`) counted."""
    if not facts.instance_checked or facts.instance is None:
        return None
    limits = InstanceLimits.from_config(facts.instance.config)
    usage: dict[str, UsageItem] = {item.key: item for item in facts.usage}
    usage.update((item.key, item) for item in decided)
    trades = len(usage)
    if limits.max_trades_per_day > 0 and trades >= limits.max_trades_per_day:
        return GuardrailRejection(
            MAX_TRADES_PER_DAY, f"{trades} trades today (max {limits.max_trades_per_day})"
        )
    open_symbols = {item.symbol.strip().upper() for item in usage.values() if item.open}
    if (
        limits.max_open_positions > 0
        and symbol.strip().upper() not in open_symbols
        and len(open_symbols) >= limits.max_open_positions
    ):
        return GuardrailRejection(
            MAX_OPEN_POSITIONS,
            f"{len(open_symbols)} open positions (max {limits.max_open_positions})",
        )
    at_stake = sum((item.risk_amount for item in usage.values()), Decimal(0))
    if limits.max_daily_loss > 0 and at_stake + new_risk > limits.max_daily_loss:
        return GuardrailRejection(
            MAX_DAILY_LOSS,
            f"risk today {at_stake} + {new_risk} exceeds {limits.max_daily_loss}",
        )
    return None
