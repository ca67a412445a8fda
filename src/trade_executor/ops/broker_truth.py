"""The broker's truth for `close` and `protect` (`ops.close`, `ops.protect`) and the console's
broker column (CONTRACT section 5, "Exits"): one read of the bridge's health, orders and
positions (never concluded from a bridge that is not connected to IB), and the check of
`domain.truth` against the ledger's open positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.broker.protocol import BrokerReads
from trade_executor.domain.execution import Execution
from trade_executor.domain.models import BrokerOrder, Position
from trade_executor.domain.truth import TruthCheck, check


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
