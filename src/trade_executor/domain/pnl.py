"""Realized P&L of a trade's exit, in Decimal (CONTRACT section 5, "exits").

A position is entered at the entry's average fill price and left in one or more exit fills;
each exit fill realizes (exit - entry) x quantity for a long, (entry - exit) x quantity for a
short. The R multiple is the realized P&L over the risk planned when the trade was sized
(`risk_amount`): a stop-out exactly at the planned stop is -1 R.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from trade_executor.domain.models import Action

CENT = Decimal("0.01")
R_PLACES = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Exit:
    """What has left the position so far: quantity, average price, realized P&L, R."""

    quantity: int
    avg_price: Decimal
    realized_pnl: Decimal
    r_multiple: Decimal | None


def add_exit_fill(
    previous: Exit | None,
    *,
    side: Action,
    entry_price: Decimal,
    quantity: int,
    price: Decimal,
    planned_risk: Decimal | None,
) -> Exit:
    """`previous` plus one exit fill of `quantity` shares at `price`. Partial exits accumulate:
    the average exit price is volume-weighted, the P&L summed, the R recomputed on the total."""
    if quantity <= 0:
        raise ValueError(f"an exit fill needs a positive quantity, got {quantity}")
    direction = 1 if side is Action.BUY else -1
    pnl = (price - entry_price) * quantity * direction
    total_qty = quantity + (previous.quantity if previous else 0)
    total_pnl = pnl + (previous.realized_pnl if previous else Decimal(0))
    value = price * quantity + (previous.avg_price * previous.quantity if previous else 0)
    realized = total_pnl.quantize(CENT, rounding=ROUND_HALF_UP)
    return Exit(
        quantity=total_qty,
        avg_price=(value / total_qty).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
        realized_pnl=realized,
        r_multiple=r_multiple(realized, planned_risk),
    )


def r_multiple(realized_pnl: Decimal, planned_risk: Decimal | None) -> Decimal | None:
    """P&L in units of the planned risk; None when no risk was planned (nothing to divide by)."""
    if planned_risk is None or planned_risk <= 0:
        return None
    return (realized_pnl / planned_risk).quantize(R_PLACES, rounding=ROUND_HALF_UP)
