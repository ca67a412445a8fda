"""What `close` and `protect` check against the broker's truth before acting (CONTRACT section
5, "Exits"), as pure functions.

The ledger and the broker must agree on two things, else the command refuses with one sentence
naming both sides (exit 1) unless `--force`:
- the quantity: the broker's position in the symbol equals what the ledger's open positions of
  the symbol hold (signed);
- the protection: every protective order the ledger believes works for the symbol (its open
  positions' `child_order_ids`) is listed working by the bridge (one it cannot find, a restart
  with another client id, cannot be cancelled either, and would fill against a flat account).

The orders acted on are every working order of the symbol the list shows (the children by
`parent_id`, and any other of ours): `working_orders_of`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trade_executor.domain.execution import Execution
from trade_executor.domain.models import Action, BrokerOrder, BrokerStatus, Position


def _symbol(text: str | None) -> str:
    return (text or "").strip().upper()


def signed_remaining(execution: Execution) -> int:
    held = max(0, execution.filled_qty - (execution.exit_qty or 0))
    return -held if execution.action == Action.SELL.value else held


def is_working(order: BrokerOrder) -> bool:
    return not order.status.is_final and order.status is not BrokerStatus.UNKNOWN


def working_orders_of(symbol: str, orders: Iterable[BrokerOrder]) -> list[BrokerOrder]:
    """Every working order of `symbol` the list shows that can be cancelled (an id)."""
    wanted = _symbol(symbol)
    return [o for o in orders if _symbol(o.symbol) == wanted and is_working(o) and o.order_id]


def broker_quantity(symbol: str, positions: Iterable[Position]) -> int:
    wanted = _symbol(symbol)
    return sum(p.quantity for p in positions if _symbol(p.symbol) == wanted)


@dataclass(frozen=True, slots=True)
class TruthCheck:
    """One symbol's comparison: what the ledger holds and believes, what the broker shows."""

    symbol: str
    ledger_quantity: int
    broker_quantity: int
    invisible_orders: tuple[int, ...]  # protective orders the ledger believes work, not listed
    working: tuple[int, ...]  # every working order of ours for the symbol at the broker

    @property
    def agrees(self) -> bool:
        return self.ledger_quantity == self.broker_quantity and not self.invisible_orders

    def refusal(self, action: str) -> str:
        """One sentence naming both sides (for a check that does not agree)."""
        parts: list[str] = []
        if self.ledger_quantity != self.broker_quantity:
            parts.append(
                f"the ledger holds {self.ledger_quantity} and the broker holds "
                f"{self.broker_quantity}"
            )
        if self.invisible_orders:
            ids = ", ".join(str(i) for i in self.invisible_orders)
            parts.append(
                f"the ledger believes protective order {ids} works and the bridge cannot find it"
            )
        return (
            f"{action} {self.symbol} refused: {' and '.join(parts)} (check the broker; --force "
            f"acts on the broker's {self.broker_quantity})"
        )


def check(
    symbol: str,
    ledger: Sequence[Execution],
    orders: Sequence[BrokerOrder],
    positions: Sequence[Position],
) -> TruthCheck:
    """Compare the ledger's open positions of `symbol` with the broker's reads."""
    wanted = _symbol(symbol)
    mine = [e for e in ledger if _symbol(e.symbol) == wanted]
    listed_working = {o.order_id for o in orders if is_working(o) and o.order_id}
    believed = [i for e in mine if e.position_state == "open" for i in e.child_order_ids if i > 0]
    # A position the ledger believes protected needs at least one of its orders working.
    invisible = tuple(i for i in believed if i not in listed_working)
    if believed and len(invisible) < len(believed):
        invisible = ()  # one child is listed working (its sibling may have been replaced)
    return TruthCheck(
        wanted,
        sum(signed_remaining(e) for e in mine),
        broker_quantity(wanted, positions),
        invisible,
        tuple(o.order_id for o in working_orders_of(wanted, orders)),
    )
