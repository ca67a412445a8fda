"""Signal and approval validation (CONTRACT section 5) with the reasons of section 4.

Pure functions: the caller passes `now`. Every check is total: a malformed row (a NaN price, a
500-character symbol, a naive timestamp) yields a `Rejection`, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from uuid import UUID

from trade_executor.domain.models import Action, Approval, Signal

MAX_SYMBOL_LENGTH = 20
# Anything above this per share is a data error (a price in cents, a misplaced digit), not a trade.
MAX_PRICE = Decimal(1_000_000)
CENT = Decimal("0.01")
# A private context: quantizing must not depend on whatever the thread's decimal context is.
_CONTEXT = Context(prec=28)
_SYMBOL_RE = re.compile(r"[A-Za-z0-9./ -]+")

NOT_APPROVED = "not_approved"
STALE = "stale"
EXPIRED = "expired"
# The original reads a NULL expires_at as generated_at + 24 hours (cmd/trader/frontend_api.go:
# COALESCE(expires_at, generated_at + INTERVAL '24 hours')); SIGNAL_DEFAULT_TTL overrides it.
DEFAULT_TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class ValidSignal:
    """A signal that passed every rule; prices are to the cent and on the right sides of entry."""

    signal_id: UUID
    symbol: str
    action: Action
    entry: Decimal
    stop: Decimal
    take_profit: Decimal
    strategy_id: str | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """`reason` is exactly a CONTRACT section 4 string; `detail` is extra context for logs."""

    reason: str
    detail: str = ""


def _invalid(detail: str) -> Rejection:
    return Rejection(f"invalid_signal: {detail}")


def _show(text: str, limit: int = 24) -> str:
    """A short, printable rendering of untrusted text for a rejection detail."""
    shown = repr(text[:limit])
    return shown + "..." if len(text) > limit else shown


def _aware(moment: datetime) -> datetime:
    """Naive timestamps (e.g. a `timestamp without time zone` column) are taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _check_symbol(raw: object) -> str | Rejection:
    if not isinstance(raw, str) or not raw.strip():
        return _invalid("symbol is missing")
    symbol = raw.strip()
    if len(symbol) > MAX_SYMBOL_LENGTH:
        return _invalid(f"symbol is {len(symbol)} characters long (at most {MAX_SYMBOL_LENGTH})")
    if not _SYMBOL_RE.fullmatch(symbol):
        bad = next(ch for ch in symbol if not _SYMBOL_RE.fullmatch(ch))
        return _invalid(
            f"symbol {_show(symbol)} contains {bad!r} "
            "(only letters, digits, '.', '-', '/' and spaces are allowed)"
        )
    return symbol.upper()


def _check_action(raw: object) -> Action | Rejection:
    if not isinstance(raw, str) or not raw.strip():
        return _invalid("signal_type is missing")
    kind = raw.strip().upper()
    if kind == "HOLD":
        return _invalid("HOLD is not executable")
    if kind not in Action.__members__:
        return _invalid(f"unknown signal_type {_show(raw)} (expected BUY or SELL)")
    return Action(kind)


def _check_price(name: str, raw: object) -> Decimal | Rejection:
    if raw is None:
        return _invalid(f"{name} is missing")
    if isinstance(raw, bool) or not isinstance(raw, Decimal | int | float):
        return _invalid(f"{name} is not a number")
    # A float (from a DOUBLE PRECISION column) goes through its shortest repr, never float math.
    value = Decimal(str(raw)) if isinstance(raw, float) else Decimal(raw)
    # is_finite() first: ordering comparisons on NaN raise InvalidOperation.
    if not value.is_finite():
        return _invalid(f"{name} {value} is not a finite number")
    if value <= 0:
        return _invalid(f"{name} {value} must be greater than 0")
    if value > MAX_PRICE:
        return _invalid(f"{name} {value} is above the sanity limit of {MAX_PRICE} per share")
    cents = value.quantize(CENT, rounding=ROUND_HALF_EVEN, context=_CONTEXT)
    if cents <= 0:
        return _invalid(f"{name} {value} rounds to 0.00")
    return cents


def _check_sides(action: Action, entry: Decimal, stop: Decimal, tp: Decimal) -> Rejection | None:
    # Equal after rounding fails too: a zero stop distance cannot be sized.
    if action is Action.BUY:
        if not stop < entry:
            return _invalid(f"stop_loss {stop} must be below entry {entry} for BUY")
        if not tp > entry:
            return _invalid(f"take_profit {tp} must be above entry {entry} for BUY")
    else:
        if not stop > entry:
            return _invalid(f"stop_loss {stop} must be above entry {entry} for SELL")
        if not tp < entry:
            return _invalid(f"take_profit {tp} must be below entry {entry} for SELL")
    return None


def effective_expiry(signal: Signal, default_ttl: timedelta = DEFAULT_TTL) -> datetime | None:
    """When the signal expires: its `expires_at`, else `generated_at` (else the row's
    `created_at`) plus `default_ttl`; None when the row says neither (its age is unknown)."""
    if signal.expires_at is not None:
        return _aware(signal.expires_at)
    born = signal.generated_at or signal.created_at
    return None if born is None else _aware(born) + default_ttl


def _check_expiry(signal: Signal, now: datetime, default_ttl: timedelta) -> Rejection | None:
    expires_at = effective_expiry(signal, default_ttl)
    if expires_at is None:
        # Neither an expiry nor a birth time: refuse rather than trade a signal of unknown age.
        return Rejection(EXPIRED, "no expires_at and no generated_at: its age is unknown")
    if expires_at <= _aware(now):
        implied = "" if signal.expires_at is not None else " (generated_at + SIGNAL_DEFAULT_TTL)"
        return Rejection(EXPIRED, f"expired at {expires_at.isoformat()}{implied}")
    return None


def validate_signal(
    signal: Signal, now: datetime, default_ttl: timedelta = DEFAULT_TTL
) -> ValidSignal | Rejection:
    """Every signal rule of section 5 (the first failure is reported), then expiry (a NULL
    `expires_at` meaning `generated_at` + `default_ttl`, as the original reads it)."""
    symbol = _check_symbol(signal.symbol)
    if isinstance(symbol, Rejection):
        return symbol
    action = _check_action(signal.signal_type)
    if isinstance(action, Rejection):
        return action
    entry = _check_price("entry_price", signal.entry_price)
    if isinstance(entry, Rejection):
        return entry
    stop = _check_price("stop_loss", signal.stop_loss)
    if isinstance(stop, Rejection):
        return stop
    take_profit = _check_price("take_profit", signal.take_profit)
    if isinstance(take_profit, Rejection):
        return take_profit
    sides = _check_sides(action, entry, stop, take_profit)
    if sides is not None:
        return sides
    expired = _check_expiry(signal, now, default_ttl)
    if expired is not None:
        return expired
    return ValidSignal(
        signal_id=signal.id,
        symbol=symbol,
        action=action,
        entry=entry,
        stop=stop,
        take_profit=take_profit,
        strategy_id=signal.strategy_id,
        expires_at=effective_expiry(signal, default_ttl),
    )


def _stale(approval: Approval, now: datetime, max_age: timedelta) -> Rejection | None:
    stamp = approval.approved_at or approval.created_at
    if stamp is None:
        # No way to tell its age: refuse rather than trade on an approval of unknown vintage.
        return Rejection(STALE, "approval has neither approved_at nor created_at")
    age = _aware(now) - _aware(stamp)
    if age > max_age:
        return Rejection(
            STALE, f"approved {age.total_seconds():.0f} s ago (max {max_age.total_seconds():.0f} s)"
        )
    return None


def check_approval(approval: Approval, now: datetime, max_age: timedelta) -> Rejection | None:
    """`not_approved` if not approved; `stale` if approved_at (else created_at) is too old."""
    if not approval.approved:
        return Rejection(NOT_APPROVED)
    return _stale(approval, now, max_age)


def validate(
    signal: Signal,
    approval: Approval,
    now: datetime,
    max_age: timedelta,
    default_ttl: timedelta = DEFAULT_TTL,
) -> ValidSignal | Rejection:
    """The whole check, in the contract's order: not_approved, invalid_signal, expired, stale."""
    if not approval.approved:
        return Rejection(NOT_APPROVED)
    result = validate_signal(signal, now, default_ttl)
    if isinstance(result, Rejection):
        return result
    return _stale(approval, now, max_age) or result
