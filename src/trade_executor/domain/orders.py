"""Order building (CONTRACT section 5): the bridge request for a validated, sized signal."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import TYPE_CHECKING

from trade_executor.domain.models import BracketOrderRequest, OrderRequest, OrderType

if TYPE_CHECKING:
    from trade_executor.domain.validation import ValidSignal

CENT = Decimal("0.01")
_CONTEXT = Context(prec=28)
PROTECTIONS = ("bracket", "none")


def to_cent(value: Decimal) -> Decimal:
    """Round a price to the cent, half to even (the bridge and IB take cents)."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN, context=_CONTEXT)


def reward_risk(entry: Decimal, stop: Decimal, take_profit: Decimal) -> Decimal:
    """|take_profit - entry| / |entry - stop| to 0.01; raises ValueError on a zero stop distance."""
    risk = abs(entry - stop)
    if risk == 0:
        raise ValueError(f"zero stop distance (entry = stop = {entry})")
    return to_cent(_CONTEXT.divide(abs(take_profit - entry), risk))


def build_order(
    signal: ValidSignal,
    quantity: int,
    order_type: OrderType | str,
    protection: str,
    order_ref: str,
) -> OrderRequest | BracketOrderRequest:
    """LMT: limit = entry; STP: stop = entry; MKT: no price. `bracket` protection attaches the
    stop-loss and take-profit to an LMT or MKT entry; a STP entry is always sent alone."""
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
    if protection not in PROTECTIONS:
        raise ValueError(f"unknown order protection {protection!r} (expected bracket or none)")
    kind = OrderType(order_type)
    entry = to_cent(signal.entry)
    if protection == "bracket" and kind in (OrderType.LMT, OrderType.MKT):
        return BracketOrderRequest(
            symbol=signal.symbol,
            action=signal.action,
            quantity=quantity,
            entry_order_type=kind,
            entry_limit_price=entry if kind is OrderType.LMT else None,
            stop_loss=to_cent(signal.stop),
            take_profit=to_cent(signal.take_profit),
            order_ref=order_ref,
        )
    return OrderRequest(
        symbol=signal.symbol,
        action=signal.action,
        quantity=quantity,
        order_type=kind,
        limit_price=entry if kind is OrderType.LMT else None,
        stop_price=entry if kind is OrderType.STP else None,
        order_ref=order_ref,
    )
