"""`resolve ID --exit-price P` and `resolve-position SYMBOL --exit-price P`: an operator gives
the exit price of a position the broker closed at a price the service could not establish
(CONTRACT section 5, "Positions follow the broker").

Such a position was closed by the reconciler with `exit_reason` `external`, no exit price and
the stop's P&L (`domain.settlement.price_unknown`). Given the price, its P&L and R are
recomputed in Decimal on its exit quantity, written by one guarded transition
(Transition.POSITION) with the operator in the audit trail, and announced, so the running
service's RiskBook books the real P&L against MAX_DAILY_REALIZED_LOSS within a second.
Anything else (an open position, a position whose price is known) is refused in one sentence.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from trade_executor.config.sources import Settings
from trade_executor.domain.execution import Execution
from trade_executor.domain.settlement import price_unknown, with_exit_price
from trade_executor.domain.states import IllegalTransition, Transition
from trade_executor.ops.common import fail, who, with_store
from trade_executor.ops.exit_codes import EX_USAGE, CommandError
from trade_executor.store.lookup import (
    ExecutionLookupError,
    IdPattern,
    IdSyntaxError,
    NoSuchExecution,
    find_execution,
    parse_id,
)
from trade_executor.store.postgres import PgStore

# How far back `resolve-position SYMBOL` looks for a position closed at an unknown price.
LOOKBACK = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class ExitPriceOutcome:
    problem: str
    execution: Execution | None


def parse_price(text: str) -> Decimal:
    """A positive, finite price (the command line's `--exit-price`/`--fill-price`)."""
    try:
        price = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a price") from None
    if not price.is_finite() or price <= 0:
        raise ValueError(f"a price must be a positive number, got {text!r}")
    return price


async def unknown_priced(store: PgStore, symbol: str) -> list[Execution]:
    """Positions of `symbol` closed at an unknown price (newest last)."""
    since = datetime.now(UTC) - LOOKBACK
    rows = await store.positions_to_follow(since)
    return [e for e in rows if e.symbol == symbol and price_unknown(e)]


async def give_exit_price(
    store: PgStore, execution: Execution, price: Decimal, by: str
) -> ExitPriceOutcome:
    """The typed operation: set the exit price of one price-unknown position."""
    if not price_unknown(execution):
        state = execution.position_state or "no position"
        known = f" (exit price {execution.exit_avg_price})" if execution.exit_avg_price else ""
        return ExitPriceOutcome(
            f"execution {execution.id} ({execution.symbol}) is {state}{known}: only a position "
            "the broker closed at an unknown price takes --exit-price",
            None,
        )
    try:
        changes = with_exit_price(execution, price)
    except ValueError as error:
        return ExitPriceOutcome(f"execution {execution.id}: {error}", None)
    detail = {
        "by": by,
        "exit_price": str(price),
        "stop_pnl_was": str(execution.realized_pnl),
        "realized_pnl": str(changes.realized_pnl),
    }
    notes = (
        f"closed: {execution.exit_reason} {changes.exit_qty} @ {changes.exit_avg_price} "
        f"(given by {by}); "
        f"realized P&L {changes.realized_pnl}"
        + (f" ({changes.r_multiple} R)" if changes.r_multiple is not None else "")
    )
    try:
        updated = await store.apply(
            execution.id, Transition.POSITION, changes, detail, trade_notes=notes
        )
    except IllegalTransition as moved:
        now_in = moved.current.value if moved.current is not None else "gone"
        return ExitPriceOutcome(f"execution {execution.id} changed meanwhile ({now_in})", None)
    await store.add_event(execution.id, "position.exit_price_given", detail)
    await store.announce_change(execution.id)
    return ExitPriceOutcome("", updated)


async def resolve_exit_price(
    store: PgStore, pattern: IdPattern | None, symbol: str | None, price: Decimal, by: str
) -> ExitPriceOutcome:
    """By execution id (`resolve ID`) or by symbol (`resolve-position SYMBOL`)."""
    if pattern is not None:
        try:
            execution = await find_execution(store, pattern)
        except NoSuchExecution as error:
            return ExitPriceOutcome(f"execution {pattern.text} not found: {error}", None)
        except ExecutionLookupError as error:
            return ExitPriceOutcome(str(error), None)
        return await give_exit_price(store, execution, price, by)
    assert symbol is not None
    found = await unknown_priced(store, symbol)
    if not found:
        return ExitPriceOutcome(f"no position of {symbol} is waiting for an exit price", None)
    if len(found) > 1:
        ids = ", ".join(str(e.id) for e in found)
        return ExitPriceOutcome(
            f"{len(found)} positions of {symbol} wait for an exit price ({ids}): "
            "give one with `resolve ID --exit-price P`",
            None,
        )
    return await give_exit_price(store, found[0], price, by)


def describe(execution: Execution) -> str:
    r = f" ({execution.r_multiple} R)" if execution.r_multiple is not None else ""
    return (
        f"{execution.symbol} execution {execution.id} closed: {execution.exit_reason} "
        f"{execution.exit_qty} @ "
        f"{execution.exit_avg_price}, realized P&L {execution.realized_pnl}{r}"
    )


def exit_price_args(
    args: argparse.Namespace,
) -> tuple[IdPattern | None, str | None, Decimal]:
    try:
        price = parse_price(str(args.exit_price))
    except ValueError as error:
        raise CommandError(f"--exit-price: {error}", EX_USAGE) from None
    if getattr(args, "execution_id", None):
        try:
            return parse_id(str(args.execution_id)), None, price
        except IdSyntaxError as error:
            raise CommandError(str(error), EX_USAGE) from None
    return None, str(args.symbol).strip().upper(), price


def resolve_position(settings: Settings, args: argparse.Namespace) -> int:
    """`resolve-position SYMBOL --exit-price P` (and `resolve ID --exit-price P`)."""
    pattern, symbol, price = exit_price_args(args)
    by = who(args)
    result = with_store(settings, lambda s: resolve_exit_price(s, pattern, symbol, price, by))
    if result.problem or result.execution is None:
        return fail(result.problem or "not settled")
    print(describe(result.execution))
    return 0


__all__ = [
    "ExitPriceOutcome",
    "give_exit_price",
    "parse_price",
    "resolve_exit_price",
    "resolve_position",
    "unknown_priced",
]
