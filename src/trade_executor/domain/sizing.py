"""Position sizing (CONTRACT section 5): the largest size that respects every limit, or a rejection.

Unlike the original service, a size is never raised to the minimum: if the limits allow fewer than
MIN_POSITION_SIZE shares the trade is rejected, naming the gate that bound it.

A limit set to 0 is off, as in the original (CONTRACT section 3): MAX_POSITION_SIZE=0 leaves only
the hard ceiling of 10,000,000 shares, MAX_DAILY_LOSS=0 leaves the per-trade budget
(MAX_RISK_PER_TRADE x net liquidation), MAX_OPEN_POSITIONS=0 and MAX_DAILY_REALIZED_LOSS=0 gate
nothing. `RiskLimits` says which are off; its `*_cap` properties answer None for an off limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, localcontext
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trade_executor.domain.models import Account

CENT = Decimal("0.01")
# No order is ever larger, whatever MAX_POSITION_SIZE says (0 = "no cap" included): a bound on
# the damage of a bad price or a mistyped stop.
POSITION_SIZE_CEILING = 10_000_000
PERCENT_PLACES = Decimal("0.000001")
# Wide enough that products and integer divisions of realistic money values are exact, so
# floor(budget / distance) can never round up past the budget.
_CONTEXT = Context(prec=60)


class RiskGate(StrEnum):
    MAX_OPEN_POSITIONS = "max_open_positions"
    MAX_DAILY_LOSS = "max_daily_loss"
    MAX_POSITION_VALUE = "max_position_value"
    BUYING_POWER = "buying_power"
    BELOW_MIN_SIZE = "below_min_size"
    DUPLICATE_SYMBOL = "duplicate_symbol"
    MAX_DAILY_REALIZED_LOSS = "max_daily_realized_loss"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The risk settings the RiskBook and sizing apply; 0 turns a limit off (see the module)."""

    max_risk_per_trade: Decimal
    min_position_size: int
    max_position_size: int  # 0 = no cap of its own; POSITION_SIZE_CEILING always applies
    max_position_value_pct: Decimal
    max_open_positions: int  # 0 = off
    max_daily_loss: Decimal  # 0 = off
    max_daily_realized_loss: Decimal = Decimal(0)  # 0 = off

    @property
    def position_size_cap(self) -> int:
        """Most shares in one order: MAX_POSITION_SIZE, or the ceiling when it is 0 (or above)."""
        if self.max_position_size <= 0:
            return POSITION_SIZE_CEILING
        return min(self.max_position_size, POSITION_SIZE_CEILING)

    @property
    def open_positions_cap(self) -> int | None:
        """Most symbols open or in flight at once; None = no limit (MAX_OPEN_POSITIONS=0)."""
        return self.max_open_positions if self.max_open_positions > 0 else None

    @property
    def daily_loss_cap(self) -> Decimal | None:
        """Today's risk budget; None = no daily budget (MAX_DAILY_LOSS=0)."""
        return self.max_daily_loss if self.max_daily_loss > 0 else None

    @property
    def daily_realized_loss_cap(self) -> Decimal | None:
        """Realized losses today at which new entries stop; None = off."""
        return self.max_daily_realized_loss if self.max_daily_realized_loss > 0 else None

    def daily_risk_left(self, used: Decimal) -> Decimal | None:
        """What is left of today's budget after `used` (never negative); None when there is no
        daily budget, which `size_position` takes as "no daily limit"."""
        cap = self.daily_loss_cap
        return None if cap is None else max(Decimal(0), cap - used)

    def limits_off(self) -> tuple[str, ...]:
        """The settings among these limits that are 0 (off), by their variable names."""
        off = {
            "MAX_POSITION_SIZE": self.max_position_size <= 0,
            "MAX_OPEN_POSITIONS": self.open_positions_cap is None,
            "MAX_DAILY_LOSS": self.daily_loss_cap is None,
            "MAX_DAILY_REALIZED_LOSS": self.daily_realized_loss_cap is None,
        }
        return tuple(name for name, is_off in off.items() if is_off)


@dataclass(frozen=True, slots=True)
class Sizing:
    quantity: int
    risk_amount: Decimal  # quantity x stop distance, to the cent
    risk_percent: Decimal  # risk_amount / net liquidation, 6 decimal places
    position_value: Decimal  # quantity x entry, to the cent
    stop_distance: Decimal
    # What limited the size: "risk_budget", "max_daily_loss", "max_position_size",
    # "max_position_value" or "buying_power".
    binding: str


@dataclass(frozen=True, slots=True)
class RiskRejection:
    gate: RiskGate
    detail: str

    @property
    def reason(self) -> str:
        return f"risk: {self.gate.value}"


def _shares(amount: Decimal, price: Decimal, limit: int) -> int:
    """floor(amount / price) exactly, at most `limit` (so absurd inputs make no huge ints)."""
    if amount <= 0:
        return 0
    if amount >= price * limit:
        return limit
    return int(amount // price)  # positive operands: // truncates, which is floor


def _bad_number(value: Decimal) -> bool:
    return not value.is_finite() or value <= 0


def size_position(
    entry: Decimal,
    stop: Decimal,
    account: Account,
    limits: RiskLimits,
    daily_risk_left: Decimal | None,
) -> Sizing | RiskRejection:
    """Size a trade entering at `entry` with its stop at `stop`; total over its inputs.

    `daily_risk_left` is what is left of today's MAX_DAILY_LOSS budget. It is ignored when
    MAX_DAILY_LOSS is 0 (off); with the limit on, None or a non-finite value counts as nothing
    left (fail closed)."""
    with localcontext(_CONTEXT):
        return _size(entry, stop, account, limits, daily_risk_left)


def _size(
    entry: Decimal,
    stop: Decimal,
    account: Account,
    limits: RiskLimits,
    daily_left_or_none: Decimal | None,
) -> Sizing | RiskRejection:
    gate = RiskGate
    if _bad_number(entry) or _bad_number(stop):
        return RiskRejection(gate.BELOW_MIN_SIZE, f"entry {entry} and stop {stop} must be > 0")
    distance = abs(entry - stop)
    if distance == 0:
        return RiskRejection(gate.BELOW_MIN_SIZE, f"zero stop distance (entry = stop = {entry})")
    net_liq, buying_power = account.net_liquidation, account.buying_power
    if _bad_number(net_liq):
        # No equity means the position-value cap (a fraction of it) allows nothing.
        return RiskRejection(gate.MAX_POSITION_VALUE, f"net liquidation {net_liq} is not positive")
    if _bad_number(buying_power):
        return RiskRejection(gate.BUYING_POWER, f"buying power {buying_power} is not positive")
    daily_limited = limits.daily_loss_cap is not None
    daily_left = Decimal(0) if daily_left_or_none is None else daily_left_or_none
    if not daily_left.is_finite():
        daily_left = Decimal(0)  # unknown budget left: fail closed

    # min_position_size below 1 would allow a 0-share "trade".
    minimum, cap = max(1, limits.min_position_size), limits.position_size_cap
    trade_budget = net_liq * limits.max_risk_per_trade
    budget = min(trade_budget, max(Decimal(0), daily_left)) if daily_limited else trade_budget
    # Counts are clipped at cap + 1, not cap, so that a count equal to the cap really binds.
    by_trade_budget = _shares(trade_budget, distance, cap + 1)
    by_budget = _shares(budget, distance, cap + 1)
    value_cap = net_liq * limits.max_position_value_pct
    by_value = _shares(value_cap, entry, cap + 1)
    by_buying_power = _shares(buying_power, entry, cap + 1)
    quantity = min(by_budget, cap, by_value, by_buying_power)

    if quantity < minimum:
        if daily_limited and daily_left <= 0:
            return RiskRejection(gate.MAX_DAILY_LOSS, "daily risk budget exhausted")
        if daily_limited and by_budget < minimum <= by_trade_budget:
            return RiskRejection(
                gate.MAX_DAILY_LOSS,
                f"daily risk left {daily_left} allows {by_budget} shares at stop distance "
                f"{distance} (minimum {minimum})",
            )
        if by_value < minimum:
            return RiskRejection(
                gate.MAX_POSITION_VALUE,
                f"position value cap {value_cap.quantize(CENT)} allows {by_value} shares "
                f"at {entry} (minimum {minimum})",
            )
        if by_buying_power < minimum:
            return RiskRejection(
                gate.BUYING_POWER,
                f"buying power {buying_power} allows {by_buying_power} shares at {entry} "
                f"(minimum {minimum})",
            )
        return RiskRejection(
            gate.BELOW_MIN_SIZE,
            f"risk budget {budget.quantize(CENT)} allows {quantity} shares at stop distance "
            f"{distance} (minimum {minimum})",
        )

    if quantity == by_budget:
        binding = "max_daily_loss" if by_budget < by_trade_budget else "risk_budget"
    elif quantity == cap:
        binding = "max_position_size"
    elif quantity == by_value:
        binding = "max_position_value"
    else:
        binding = "buying_power"
    risk_amount = quantity * distance
    return Sizing(
        quantity=quantity,
        risk_amount=risk_amount.quantize(CENT),
        risk_percent=(risk_amount / net_liq).quantize(PERCENT_PLACES),
        position_value=(quantity * entry).quantize(CENT),
        stop_distance=distance,
        binding=binding,
    )
