"""The paper bridge's brokerage: orders, fills, positions and cash, with no I/O.

Fill model:
- MKT fills at once, whole quantity, at the symbol's reference price.
- LMT fills when the price trades at or through the limit (BUY: price <= limit), at that price;
  STP triggers when the price reaches the stop (BUY: price >= stop) and fills at the price.
- A symbol seen for the first time starts at the order's own price (a bracket's MKT entry: midway
  between its stop-loss and take-profit; a plain MKT order: `default_price`).
- A bracket is an entry plus a take-profit LMT and a stop-loss STP child. The children stay
  PreSubmitted until the entry fills, then work as one-cancels-other: when one fills, the other is
  Cancelled. Cancelling the entry cancels its children. Orders of one OCA group (the jax bridge's
  protection orders) cancel each other the same way when one fills.
- Partial fills (`fill_slice` > 0): each price event fills at most that many shares of an order;
  the order stays working until its whole quantity filled (a bracket's children start then).
- Time in force: orders are `default_tif` ("GTC" or "DAY"); `expire_day_orders` (a simulated
  session close) cancels every open DAY order, as IB does at the close.
- Sessions: `restart` starts a new bridge session. Orders that had finished are listed by
  `listing` as restored rows (the real bridge shows them with order_id 0) and are no longer
  `visible` by id. By default (the same client id) the working ones move to the new session under
  their ids; with `client_id_changed` they stay in the old one: still working at the simulated
  exchange (they can fill: `fill_now`), but invisible to the bridge.

Accounting: see `account.PaperAccount`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from trade_executor.broker.jsonnum import CENT
from trade_executor.clock import Clock, utcnow
from trade_executor.domain.models import Action, BrokerStatus, OrderType

from .account import PaperAccount
from .config import PaperConfig
from .market import Market
from .orders import (
    DAY,
    GTC,
    OPEN,
    WORKING,
    AccountView,
    Holding,
    OrderError,
    PaperOrder,
    PositionView,
    Report,
    fill_price,
)

__all__ = [
    "DAY",
    "GTC",
    "OPEN",
    "WORKING",
    "AccountView",
    "OrderError",
    "PaperBroker",
    "PaperOrder",
    "PositionView",
    "Report",
]


class PaperBroker(PaperAccount):
    """All state of the paper bridge. Not thread-safe: call it from the event loop only."""

    def __init__(
        self,
        config: PaperConfig,
        *,
        clock: Clock = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._clock = clock
        self._monotonic = monotonic
        self.fill_mode = "normal"
        self.fill_slice = 0  # > 0: partial fills of at most this many shares per price event
        self.default_tif = GTC
        self.reset()

    def reset(self) -> None:
        self.market = Market(self.config.seed, self.config.volatility)
        self.orders: dict[int, PaperOrder] = {}
        self.holdings: dict[str, Holding] = {}
        self.cash = self.config.net_liquidation
        self._cash_base = self.cash
        self._buying_power_base = self.config.buying_power
        self._next_id = 1
        self.fill_mode = self.config.faults.fill_mode
        self.fill_slice = self.config.faults.partial_fill_qty
        self.session = 1
        self.account_id = self.config.account_id
        self.restored: list[PaperOrder] = []  # finished orders of earlier sessions, by age
        self.qualified: set[str] = set()  # symbols identified once (the gateway caches them)

    # ---- orders ------------------------------------------------------------------------------

    def place(
        self,
        symbol: str,
        action: Action,
        quantity: int,
        order_type: OrderType,
        *,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        order_ref: str | None = None,
        oca_group: str | None = None,
    ) -> PaperOrder:
        order = self.stage(
            symbol,
            action,
            quantity,
            order_type,
            limit_price,
            stop_price,
            order_ref,
            status=BrokerStatus.PRE_SUBMITTED,
        )
        order.oca_group = oca_group
        self._start(order, limit_price or stop_price or self.config.default_price)
        return order

    def place_bracket(
        self,
        symbol: str,
        action: Action,
        quantity: int,
        entry_order_type: OrderType,
        *,
        entry_limit_price: Decimal | None,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        order_ref: str | None = None,
    ) -> tuple[PaperOrder, list[PaperOrder]]:
        if entry_order_type is OrderType.STP:
            raise OrderError("a bracket entry must be MKT or LMT")
        if stop_loss is None and take_profit is None:
            raise OrderError("Bracket orders require at least a stop loss or take profit")
        parent = self.stage(
            symbol, action, quantity, entry_order_type, entry_limit_price, None, order_ref
        )
        children = self.attach_children(parent, take_profit, stop_loss, order_ref)
        self.transmit_bracket(parent, entry_limit_price, stop_loss, take_profit)
        return parent, children

    def stage(
        self,
        symbol: str,
        action: Action,
        quantity: int,
        order_type: OrderType,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
        order_ref: str | None,
        *,
        status: BrokerStatus = BrokerStatus.PENDING_SUBMIT,
    ) -> PaperOrder:
        """A new order recorded but not transmitted: it cannot fill yet. `PendingSubmit` (a
        bracket entry before its children) unless `status` says otherwise (`PreSubmitted`: an
        order `place` starts at once, a child waiting for its entry)."""
        if quantity <= 0:
            raise OrderError("quantity must be positive")
        if order_type is OrderType.LMT and limit_price is None:
            raise OrderError("Limit price required for limit orders")
        if order_type is OrderType.STP and stop_price is None:
            raise OrderError("Stop price required for stop orders")
        now = self._clock()
        order = PaperOrder(
            order_id=self._next_id,
            symbol=symbol.upper(),
            action=action,
            order_type=order_type,
            quantity=quantity,
            limit_price=limit_price.quantize(CENT) if limit_price is not None else None,
            stop_price=stop_price.quantize(CENT) if stop_price is not None else None,
            status=status,
            order_ref=order_ref,
            created_at=now,
            received_at=self._monotonic(),
            updated_at=now,
            tif=self.default_tif,
            session=self.session,
        )
        self._next_id += 1
        self.orders[order.order_id] = order
        return order

    def attach_children(
        self,
        parent: PaperOrder,
        take_profit: Decimal | None,
        stop_loss: Decimal | None,
        order_ref: str | None,
    ) -> list[PaperOrder]:
        """The exits of a staged entry, take-profit LMT first, then stop-loss STP (the real
        bridge's order); they wait (`PreSubmitted`) until the entry has filled."""
        exit_action = parent.action.opposite
        specs: list[tuple[OrderType, Decimal | None, Decimal | None]] = []
        if take_profit is not None:
            specs.append((OrderType.LMT, take_profit, None))
        if stop_loss is not None:
            specs.append((OrderType.STP, None, stop_loss))
        children = []
        for order_type, limit, stop in specs:
            child = self.stage(
                parent.symbol,
                exit_action,
                parent.quantity,
                order_type,
                limit,
                stop,
                order_ref,
                status=BrokerStatus.PRE_SUBMITTED,
            )
            child.parent_id = parent.order_id
            parent.child_ids.append(child.order_id)
            children.append(child)
        return children

    def transmit_bracket(
        self,
        parent: PaperOrder,
        entry_limit_price: Decimal | None,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
    ) -> None:
        """Send a staged entry with its children (a new symbol starts at the entry's price, or for
        a MKT entry midway between its exits)."""
        start = entry_limit_price
        if start is None:
            start = (stop_loss + take_profit) / 2 if stop_loss and take_profit else None
        self._start(parent, start or stop_loss or take_profit or self.config.default_price)

    def cancel(self, order_id: int) -> PaperOrder:
        order = self.visible(order_id)
        if order is None:
            raise OrderError(f"Order {order_id} not found")
        if order.status not in WORKING:
            raise OrderError(f"Order {order_id} is not cancellable from status {order.status}")
        self.confirm_cancel(order)
        return order

    def request_cancel(self, order: PaperOrder) -> None:
        """IB has been asked to cancel: `PendingCancel` (it no longer fills) until confirmed."""
        self._finish(order, BrokerStatus.PENDING_CANCEL)

    def confirm_cancel(self, order: PaperOrder) -> None:
        """The order (unless it filled meanwhile) and its open children are `Cancelled`."""
        if order.status in OPEN:
            self._finish(order, BrokerStatus.CANCELLED)
        for child_id in order.child_ids:
            child = self.orders[child_id]
            if child.status in OPEN:
                self._finish(child, BrokerStatus.CANCELLED)

    def reject(self, order: PaperOrder) -> None:
        """IB refused the order after it was placed: ib_insync marks it `Cancelled`."""
        self.confirm_cancel(order)

    # ---- sessions, the close, lookups --------------------------------------------------------

    def visible(self, order_id: int) -> PaperOrder | None:
        """The order with this id if the current bridge session knows it."""
        order = self.orders.get(order_id)
        return order if order is not None and order.session == self.session else None

    def listing(self) -> list[tuple[PaperOrder, bool]]:
        """What the bridge lists, oldest first: (order, restored). Restored rows (finished orders
        of earlier sessions, as IB re-sends them at connection) come first, then the session's."""
        rows = [(order, True) for order in self.restored]
        rows += [(o, False) for o in self.orders.values() if o.session == self.session]
        return rows

    def read(self, order: PaperOrder) -> Report:
        """The order's state for one status read. While it has phantom reads left, a read sees
        `Cancelled` with nothing filled, whatever the order really did, and uses one up."""
        if order.phantom_reads > 0:
            order.phantom_reads -= 1
            return Report(BrokerStatus.CANCELLED, 0, None, phantom=True)
        return Report(order.status, order.filled_qty, order.avg_fill_price)

    def restart(self, *, client_id_changed: bool = False) -> None:
        """A new bridge session. Positions, cash and prices are kept (they live at IB).

        As ib_insync's `connectAsync` does on every connect: finished orders come back as restored
        rows (order_id 0); with the same client id the working ones are re-read under their own
        ids (still cancellable), with another client id the new session cannot see them."""
        now = self._clock()
        self.session += 1
        self.restored = [o for o in self.orders.values() if o.status.is_final]
        if not client_id_changed:
            for order in self.orders.values():
                if not order.status.is_final:
                    order.session = self.session
                    order.listed_since = now

    def fill_now(self, order_id: int, price: Decimal | None = None) -> PaperOrder:
        """An IB-side fill of a working order, whole, whatever the bridge session can see (IB
        fills orders while the bridge is down): at `price`, else its limit or stop price, else
        the market's. Siblings and OCA partners are cancelled as for any fill."""
        order = self.orders.get(order_id)
        if order is None:
            raise OrderError(f"no order {order_id}")
        if order.status is not BrokerStatus.SUBMITTED:
            raise OrderError(f"order {order_id} is {order.status.value}, not working")
        at = price or order.limit_price or order.stop_price or self.market.price(order.symbol)
        if at is None:
            raise OrderError(f"no price for {order.symbol}: give one")
        whole, self.fill_slice = self.fill_slice, 0
        try:
            self._fill(order, at)
        finally:
            self.fill_slice = whole
        return order

    def expire_day_orders(self) -> list[int]:
        """The session closes: every open DAY order is `Cancelled`; the expired ids."""
        expired = [o for o in self.orders.values() if o.tif == DAY and o.status in OPEN]
        for order in expired:
            self._finish(order, BrokerStatus.CANCELLED)
        return [o.order_id for o in expired]

    def position_of(self, symbol: str) -> int:
        holding = self.holdings.get(symbol.upper())
        return 0 if holding is None else holding.quantity

    def _start(self, order: PaperOrder, reference: Decimal) -> None:
        """Submit a new top-level order; a new symbol's price path starts at `reference`.

        On a new symbol a LMT or STP order sits exactly at the price, so it waits for the path's
        first move instead of filling on the spot; a MKT order fills at once either way.
        """
        new_symbol = self.market.price(order.symbol) is None
        self.market.ensure(order.symbol, reference)
        self._activate(order)
        if not new_symbol or order.order_type is OrderType.MKT:
            self.match(order.symbol)

    def _activate(self, order: PaperOrder) -> None:
        order.status = BrokerStatus.SUBMITTED
        order.updated_at = self._clock()

    def _finish(self, order: PaperOrder, status: BrokerStatus) -> None:
        order.status = status
        order.updated_at = self._clock()

    # ---- the fill model ----------------------------------------------------------------------

    def step(self, ticks: int = 1) -> list[int]:
        """Advance the market `ticks` times, filling what each tick crosses; the filled ids."""
        filled: list[int] = []
        for _ in range(ticks):
            self.market.tick()
            for symbol in self.market.symbols():
                filled += self.match(symbol)
        return filled

    def set_price(self, symbol: str, price: Decimal) -> list[int]:
        self.market.set(symbol.upper(), price)
        return self.match(symbol.upper())

    def match(self, symbol: str) -> list[int]:
        """Fill every working order of `symbol` the current price crosses, until none is left.

        Repeats because a fill can arm more orders (an entry's children) at the same price. With
        partial fills an order takes at most one slice per call. The ids that filled (wholly or
        in part).
        """
        filled: list[int] = []
        if self.fill_mode == "never":
            return filled
        price = self.market.price(symbol)
        if price is None:
            return filled
        sliced: set[int] = set()
        while True:
            crossed = [
                (o, fill)
                for o in self.orders.values()
                if o.symbol == symbol
                and o.status is BrokerStatus.SUBMITTED
                and o.order_id not in sliced
                and (fill := fill_price(o, price)) is not None
            ]
            if not crossed:
                return filled
            order, fill = crossed[0]
            self._fill(order, fill)
            sliced.add(order.order_id)
            filled.append(order.order_id)

    def _fill(self, order: PaperOrder, price: Decimal) -> None:
        left = order.quantity - order.filled_qty
        quantity = min(left, self.fill_slice) if self.fill_slice > 0 else left
        before = order.filled_qty
        order.filled_qty += quantity
        if before == 0 or order.avg_fill_price is None:
            order.avg_fill_price = price
        else:  # volume-weighted, as IB reports avgFillPrice
            total = order.avg_fill_price * before + price * quantity
            order.avg_fill_price = total / order.filled_qty
        signed = quantity if order.action is Action.BUY else -quantity
        self.cash -= signed * price
        self.holdings.setdefault(order.symbol, Holding()).book(signed, price)
        if order.filled_qty < order.quantity:
            order.updated_at = self._clock()
            return
        self._finish(order, BrokerStatus.FILLED)
        for child_id in order.child_ids:  # the entry filled: its children start working
            self._activate(self.orders[child_id])
        if order.parent_id is not None:  # one-cancels-other
            for sibling_id in self.orders[order.parent_id].child_ids:
                sibling = self.orders[sibling_id]
                if sibling is not order and sibling.status in WORKING:
                    self._finish(sibling, BrokerStatus.CANCELLED)
        if order.oca_group is not None:
            for other in self.orders.values():
                if (
                    other is not order
                    and other.oca_group == order.oca_group
                    and other.status in WORKING
                ):
                    self._finish(other, BrokerStatus.CANCELLED)
