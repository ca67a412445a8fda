"""The broker's truth for `close` and `protect`, shared by the CLI (ops/), the HTTP API and
the console (CONTRACT section 5, "Exits"), as functions over a `Broker` (each with a variant
that opens its own client for a bridge URL): one read of the bridge's health, orders and positions
(never concluded from a bridge that is not connected to IB), the check of `domain.truth`
against the ledger's open positions, and the typed protect operation.

`protect_position` sends the bridge `POST /positions/{symbol}/protect` with
`{"stop_loss": P, "take_profit": P (optional), "quantity": N, "replace_existing": true}`:
`stop_loss` and `take_profit` default to the signal's stop and target, `quantity` is the
broker's (unsigned), and `replace_existing` makes the bridge cancel the position's working
protective orders first, so a repeat replaces, never doubles. The orders placed are recorded as
the position's exit orders (one guarded transition, the operator in its detail) and announced,
so the running service's exits follow them within a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.broker.protocol import Broker, BrokerReads
from trade_executor.clock import utcnow
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import BrokerOrder, Position
from trade_executor.domain.states import IllegalTransition, Transition
from trade_executor.domain.truth import TruthCheck, broker_quantity, check
from trade_executor.store.protocol import ProtectStore


class Disagreement(Exception):
    """One sentence naming both sides: the ledger and the broker disagree (or the broker
    cannot be read); nothing was done."""


def is_open(execution: Execution) -> bool:
    return execution.position_state in ("open", "unprotected")


BRIDGE_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class BrokerView:
    orders: tuple[BrokerOrder, ...]
    positions: tuple[Position, ...]


class BrokerUnreadable(Exception):
    """One sentence: why the broker's truth cannot be read now."""


async def read_view(broker: BrokerReads, url: str) -> BrokerView:
    """One read of `broker` (the bridge at `url`, named in the sentences): its health, orders
    and positions; `BrokerUnreadable` when it cannot be read or is not connected to IB."""
    try:
        health = await broker.health()
        if not health.connected:
            raise BrokerUnreadable(
                f"the bridge at {url} is not connected to IB: its positions and orders "
                "mean nothing now, nothing was done"
            )
        orders = await broker.orders()
        positions = await broker.positions()
    except BrokerError as error:
        raise BrokerUnreadable(
            f"cannot read the broker's positions and orders at {url} ({error}): nothing was done"
        ) from None
    return BrokerView(tuple(orders), tuple(positions))


async def read_broker(url: str, timeout: float = BRIDGE_TIMEOUT) -> BrokerView:
    """`read_view` of a client of its own for the bridge at `url`."""
    async with BrokerClient(url, timeout) as broker:
        return await read_view(broker, url)


def checks(
    symbols: Sequence[str], ledger: Sequence[Execution], view: BrokerView
) -> list[TruthCheck]:
    return [check(s, ledger, view.orders, view.positions) for s in symbols]


async def broker_positions(url: str) -> tuple[list[Position] | None, str | None]:
    """The bridge's open positions (quantity not 0) from a connected bridge, or None and why
    not (the console's broker column)."""
    try:
        view = await read_broker(url, 5.0)
    except BrokerUnreadable as error:
        return None, str(error)
    return [p for p in view.positions if p.quantity != 0], None


async def check_broker(
    wanted: list[Execution], bridge_url: str, force: bool, action: str
) -> list[str]:
    """`check_truth` with a client of its own for the bridge at `bridge_url`."""
    async with BrokerClient(bridge_url, BRIDGE_TIMEOUT) as broker:
        return await check_truth(broker, bridge_url, wanted, force, action)


async def check_truth(
    broker: BrokerReads, bridge_url: str, wanted: list[Execution], force: bool, action: str
) -> list[str]:
    """The broker's truth against the ledger's positions (`domain.truth`): raises
    Disagreement with one sentence naming both sides unless `force`; returns what `force`
    overrode (for the audit trail)."""
    try:
        view = await read_view(broker, bridge_url)
    except BrokerUnreadable as error:
        if force:
            return [str(error)]
        raise Disagreement(f"{action}: {error} (--force acts without the check)") from None
    symbols = sorted({e.symbol or "" for e in wanted})
    overridden: list[str] = []
    for found in checks(symbols, wanted, view):
        if found.agrees:
            continue
        if not force:
            raise Disagreement(found.refusal(action))
        overridden.append(found.refusal(action))
    return overridden


@dataclass(frozen=True, slots=True)
class ProtectOutcome:
    ok: bool
    message: str
    execution: Execution | None = None
    order_ids: tuple[int, ...] = ()


def protect_body(stop: Decimal, take_profit: Decimal | None, quantity: int) -> dict[str, Any]:
    """What is sent to the bridge (documented in the RUNBOOK)."""
    body: dict[str, Any] = {"stop_loss": stop, "quantity": quantity, "replace_existing": True}
    if take_profit is not None:
        body["take_profit"] = take_profit
    return body


async def protect_position(
    store: ProtectStore,
    bridge_url: str,
    symbol: str,
    stop: Decimal | None,
    take_profit: Decimal | None,
    force: bool,
    by: str,
    reason: str = "",
) -> ProtectOutcome:
    """The typed operation behind `protect`, the API's and the console's: `protect_with` a
    client of its own for the bridge at `bridge_url`."""
    async with BrokerClient(bridge_url, BRIDGE_TIMEOUT) as broker:
        return await protect_with(
            store, broker, bridge_url, symbol, stop, take_profit, force, by, reason
        )


async def protect_with(
    store: ProtectStore,
    broker: Broker,
    bridge_url: str,
    symbol: str,
    stop: Decimal | None,
    take_profit: Decimal | None,
    force: bool,
    by: str,
    reason: str = "",
) -> ProtectOutcome:
    """Protect the ledger's one open position of `symbol` through `broker` (the bridge at
    `bridge_url`), after the broker's truth agrees (or `force`)."""
    symbol = symbol.strip().upper()
    rows = await store.positions_to_follow(utcnow())
    mine = [e for e in rows if is_open(e) and e.symbol == symbol]
    if not mine:
        return ProtectOutcome(False, f"no open position for {symbol}")
    if len(mine) > 1:
        return ProtectOutcome(
            False, f"{len(mine)} open positions of {symbol} in the ledger: protect it at the broker"
        )
    [execution] = mine
    try:
        overridden = await check_truth(broker, bridge_url, mine, force, "protect")
        view = await read_view(broker, bridge_url)
    except Disagreement as refused:
        return ProtectOutcome(False, str(refused))
    except BrokerUnreadable as error:
        return ProtectOutcome(False, f"protect {symbol}: {error}")
    quantity = abs(broker_quantity(symbol, view.positions))
    if quantity == 0:
        return ProtectOutcome(False, f"protect {symbol} refused: the broker holds no {symbol}")
    stop_price = stop if stop is not None else execution.stop_loss
    target = take_profit if take_profit is not None else execution.take_profit
    if stop_price is None:
        return ProtectOutcome(False, f"protect {symbol}: give --stop P (the signal has none)")
    try:
        placed = await broker.protect_position(
            symbol,
            stop_loss=stop_price,
            take_profit=target,
            quantity=quantity,
            replace_existing=True,
        )
    except BrokerError as error:
        return ProtectOutcome(False, f"protect {symbol}: the bridge did not protect it ({error})")
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
        )
    except IllegalTransition:
        return ProtectOutcome(
            False,
            f"{symbol} protected at the bridge (orders {list(placed.order_ids)}) but its execution "
            "changed meanwhile: check `status`",
        )
    await store.announce_change(execution.id)
    tp = f", take-profit {target}" if target is not None else ""
    return ProtectOutcome(
        True,
        f"{symbol} protected: {quantity} shares, stop {stop_price}{tp} "
        f"(orders {', '.join(str(i) for i in placed.order_ids)})",
        updated,
        placed.order_ids,
    )
