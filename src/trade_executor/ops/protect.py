"""`protect SYMBOL [--stop P] [--take-profit P] [--force]`, `POST /api/v1/protect` and the
console's protect: protect an open position again through the bridge's
`POST /positions/{symbol}/protect` (CONTRACT sections 2 and 5, "Exits").

The body sent to the bridge: `{"stop_loss": P, "take_profit": P (optional), "quantity": N,
"replace_existing": true}`: `stop_loss` and `take_profit` default to the signal's stop and
target, `quantity` is the broker's (unsigned), and `replace_existing` makes the bridge cancel
the position's working protective orders first, so a repeat replaces, never doubles.

The same checks as `close` (`domain.truth`): the broker's quantity must equal the ledger's
and every protective order the ledger believes works must be listed working, else one
sentence naming both sides (a Refusal) unless `force`. The orders placed are recorded as the
position's exit orders (one guarded transition, the operator in its detail) and announced in
the same transaction, so the running service's exits follow them from its commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.states import IllegalTransition, Transition
from trade_executor.domain.truth import broker_quantity
from trade_executor.ops.broker_truth import (
    BRIDGE_TIMEOUT,
    BrokerUnreadable,
    Disagreement,
    check_broker,
    is_open,
    read_broker,
)
from trade_executor.ops.common import Context, Refusal


@dataclass(frozen=True, slots=True)
class Protected:
    """The position protected: the sentence said, the execution as recorded, the orders."""

    message: str
    execution: Execution
    order_ids: tuple[int, ...]


def protect_body(stop: Decimal, take_profit: Decimal | None, quantity: int) -> dict[str, Any]:
    """What is sent to the bridge (documented in the RUNBOOK)."""
    body: dict[str, Any] = {"stop_loss": stop, "quantity": quantity, "replace_existing": True}
    if take_profit is not None:
        body["take_profit"] = take_profit
    return body


async def protect(
    ctx: Context,
    symbol: str,
    *,
    by: str,
    stop: Decimal | None = None,
    take_profit: Decimal | None = None,
    force: bool = False,
    reason: str = "",
) -> Protected | Refusal:
    """Protect the one open position of `symbol` at the broker's quantity; a Refusal (one
    sentence; `not_found` when no position of `symbol` is open) otherwise."""
    store, bridge_url = ctx.store, ctx.bridge_url
    symbol = symbol.strip().upper()
    rows = await store.positions_to_follow(ctx.clock())
    mine = [e for e in rows if is_open(e) and e.symbol == symbol]
    if not mine:
        return Refusal(f"no open position for {symbol}", not_found=True)
    if len(mine) > 1:
        return Refusal(
            f"{len(mine)} open positions of {symbol} in the ledger: protect it at the broker"
        )
    [execution] = mine
    try:
        overridden = await check_broker(mine, bridge_url, force, "protect")
        view = await read_broker(bridge_url)
    except Disagreement as refused:
        return Refusal(str(refused))
    except BrokerUnreadable as error:
        return Refusal(f"protect {symbol}: {error}")
    quantity = abs(broker_quantity(symbol, view.positions))
    if quantity == 0:
        return Refusal(f"protect {symbol} refused: the broker holds no {symbol}")
    stop_price = stop if stop is not None else execution.stop_loss
    target = take_profit if take_profit is not None else execution.take_profit
    if stop_price is None:
        return Refusal(f"protect {symbol}: give --stop P (the signal has none)")
    try:
        async with BrokerClient(bridge_url, BRIDGE_TIMEOUT) as broker:
            placed = await broker.protect_position(
                symbol,
                stop_loss=stop_price,
                take_profit=target,
                quantity=quantity,
                replace_existing=True,
            )
    except BrokerError as error:
        return Refusal(f"protect {symbol}: the bridge did not protect it ({error})")
    detail: dict[str, Any] = {
        "protection": "operator",
        "by": by,
        "reason": reason,
        "quantity": quantity,
        "stop_loss": str(stop_price),
        "take_profit": None if target is None else str(target),
        "order_ids": list(placed.order_ids),
        "cancelled_order_ids": list(placed.cancelled_order_ids),
    }
    if overridden:
        detail["forced_over"] = overridden
    try:
        updated = await store.apply(
            execution.id,
            Transition.POSITION,
            Changes(position_state="open", child_order_ids=placed.order_ids),
            detail,
            announce=True,
        )
    except IllegalTransition:
        return Refusal(
            f"{symbol} protected at the bridge (orders {list(placed.order_ids)}) but its execution "
            "changed meanwhile: check `status`"
        )
    tp = f", take-profit {target}" if target is not None else ""
    return Protected(
        f"{symbol} protected: {quantity} shares, stop {stop_price}{tp} "
        f"(orders {', '.join(str(i) for i in placed.order_ids)})",
        updated,
        placed.order_ids,
    )


__all__ = ["Protected", "protect", "protect_body"]
