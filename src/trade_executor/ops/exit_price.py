"""`resolve ID --exit-price P` and `resolve-position SYMBOL --exit-price P`: an operator gives
the exit price of a position the broker closed at a price the service could not establish
(CONTRACT section 5, "Positions follow the broker").

Such a position was closed by the reconciler with `exit_reason` `external`, no exit price and
the stop's P&L (`domain.settlement.price_unknown`). Given the price, its P&L and R are
recomputed in Decimal on its exit quantity, written by one guarded transition
(Transition.POSITION) with the operator in the audit trail, and announced in the same
transaction, so the running service's RiskBook books the real P&L against
MAX_DAILY_REALIZED_LOSS at its commit.
Anything else (an open position, a position whose price is known) is refused in one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from trade_executor.domain.execution import Execution
from trade_executor.domain.settlement import price_unknown, with_exit_price
from trade_executor.domain.states import IllegalTransition, Transition
from trade_executor.ops.common import Context, Refusal
from trade_executor.store.lookup import (
    ExecutionLookupError,
    IdPattern,
    NoSuchExecution,
    find_execution,
)
from trade_executor.store.protocol import Store

# How far back `resolve-position SYMBOL` looks for a position closed at an unknown price.
LOOKBACK = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class ExitPriceGiven:
    """A position's exit price given: the execution as now recorded."""

    execution: Execution

    @property
    def message(self) -> str:
        e = self.execution
        r = f" ({e.r_multiple} R)" if e.r_multiple is not None else ""
        return (
            f"{e.symbol} execution {e.id} closed: {e.exit_reason} {e.exit_qty} @ "
            f"{e.exit_avg_price}, realized P&L {e.realized_pnl}{r}"
        )


def parse_price(text: str) -> Decimal:
    """A positive, finite price (the command line's `--exit-price`/`--fill-price`)."""
    try:
        price = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a price") from None
    if not price.is_finite() or price <= 0:
        raise ValueError(f"a price must be a positive number, got {text!r}")
    return price


async def unknown_priced(store: Store, symbol: str, now: datetime) -> list[Execution]:
    """Positions of `symbol` closed at an unknown price (newest last)."""
    rows = await store.positions_to_follow(now - LOOKBACK)
    return [e for e in rows if e.symbol == symbol and price_unknown(e)]


async def give_exit_price(
    store: Store, execution: Execution, price: Decimal, by: str
) -> ExitPriceGiven | Refusal:
    """Set the exit price of one price-unknown position."""
    if not price_unknown(execution):
        state = execution.position_state or "no position"
        known = f" (exit price {execution.exit_avg_price})" if execution.exit_avg_price else ""
        return Refusal(
            f"execution {execution.id} ({execution.symbol}) is {state}{known}: only a position "
            "the broker closed at an unknown price takes --exit-price"
        )
    try:
        changes = with_exit_price(execution, price)
    except ValueError as error:
        return Refusal(f"execution {execution.id}: {error}")
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
            execution.id, Transition.POSITION, changes, detail, trade_notes=notes, announce=True
        )
    except IllegalTransition as moved:
        now_in = moved.current.value if moved.current is not None else "gone"
        return Refusal(f"execution {execution.id} changed meanwhile ({now_in})")
    await store.add_event(execution.id, "position.exit_price_given", detail)
    return ExitPriceGiven(updated)


async def resolve_exit_price(
    ctx: Context, pattern: IdPattern | None, symbol: str | None, price: Decimal, by: str
) -> ExitPriceGiven | Refusal:
    """By execution id (`resolve ID --exit-price P`) or by symbol (`resolve-position SYMBOL`)."""
    store = ctx.store
    if pattern is not None:
        try:
            execution = await find_execution(store, pattern)
        except NoSuchExecution as error:
            return Refusal(f"execution {pattern.text} not found: {error}", not_found=True)
        except ExecutionLookupError as error:
            return Refusal(str(error))
        return await give_exit_price(store, execution, price, by)
    assert symbol is not None
    found = await unknown_priced(store, symbol, ctx.clock())
    if not found:
        return Refusal(f"no position of {symbol} is waiting for an exit price", not_found=True)
    if len(found) > 1:
        ids = ", ".join(str(e.id) for e in found)
        return Refusal(
            f"{len(found)} positions of {symbol} wait for an exit price ({ids}): "
            "give one with `resolve ID --exit-price P`"
        )
    return await give_exit_price(store, found[0], price, by)


async def resolve_position(
    ctx: Context, symbol: str, exit_price: Decimal, *, by: str
) -> ExitPriceGiven | Refusal:
    """`resolve-position SYMBOL --exit-price P`: the one position of `symbol` the broker closed
    at an unknown price gets its exit price."""
    return await resolve_exit_price(ctx, None, symbol.strip().upper(), exit_price, by)


__all__ = [
    "ExitPriceGiven",
    "give_exit_price",
    "parse_price",
    "resolve_exit_price",
    "resolve_position",
    "unknown_priced",
]
