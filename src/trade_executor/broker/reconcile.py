"""Finding the order an ambiguous POST may have placed (CONTRACT section 5), as pure functions.

Matching rules:
- By reference first: a top-level order whose `order_ref` is the submission's `client_order_id`.
- Else a unique look-alike: a top-level order without a reference of its own (none, or the real
  bridge's stamp "manual-entry"), same symbol, side, quantity and (when the submission's type is
  known) order type, created at or after the attempt minus a clock-skew allowance, and with the
  price of its type: a market order matches an order whose limit and stop prices are both unset;
  LMT compares the limit price to the cent; STP the stop price.
- A bracket is matched by its parent (the entry); children never count.
- Several matches, or a match without an order id (order id 0: a previous bridge session's
  order), is ambiguous: the caller must not guess.

Prices the bridge left unset (IB's 1.797e+308) are "no price" here too, never rounded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from trade_executor.domain.models import (
    Action,
    AnyOrderRequest,
    BracketOrderRequest,
    BrokerOrder,
    OrderType,
)

from .jsonnum import CENT
from .unset import value_or_none

# The real bridge ignores the order_ref it is sent and stamps every entry order with
# "manual-entry", and every close of a position (`/positions/{symbol}/close`, which takes no
# reference at all) with "manual-close": an exit whose answer was lost is found the same way.
BRIDGE_STAMPED_REFS = frozenset({"manual-entry", "manual-close"})


@dataclass(frozen=True, slots=True)
class FindResult:
    """`found` is the one order that matched; `ambiguous` is True when several did, or when the
    only match has no order id to follow (`candidate_ids` then holds a 0)."""

    found: BrokerOrder | None
    ambiguous: bool = False
    matched_by: Literal["order_ref", "fallback"] | None = None
    candidate_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SubmissionKey:
    """What identifies a submission in the bridge's order list.

    `price` is the entry's price: the limit price of an LMT, the stop price of an STP, None for an
    MKT. `order_type` None means "unknown": the price may then be either listed price.
    """

    order_ref: str
    symbol: str
    action: Action
    quantity: int
    order_type: OrderType | None
    price: Decimal | None

    @classmethod
    def of(cls, request: AnyOrderRequest, order_ref: str | None = None) -> SubmissionKey:
        """The key of a request as sent (a bracket is found by its entry)."""
        ref = order_ref if order_ref is not None else request.order_ref or ""
        if isinstance(request, BracketOrderRequest):
            kind = request.entry_order_type
            price = None if kind is OrderType.MKT else request.entry_limit_price
        else:
            kind = request.order_type
            price = {
                OrderType.MKT: None,
                OrderType.LMT: request.limit_price,
                OrderType.STP: request.stop_price,
            }[kind]
        return cls(ref, request.symbol, request.action, request.quantity, kind, price)


def _cents(price: Decimal | None) -> Decimal | None:
    price = value_or_none(price)  # defence in depth: an unset price is never quantized
    return None if price is None else price.quantize(CENT)


def _price_matches(order: BrokerOrder, order_type: OrderType | None, price: Decimal | None) -> bool:
    limit, stop = _cents(order.limit_price), _cents(order.stop_price)
    if order_type is OrderType.MKT or price is None:
        return limit is None and stop is None
    wanted = _cents(price)
    if order_type is OrderType.LMT:
        return limit == wanted
    if order_type is OrderType.STP:
        return stop == wanted
    return wanted in (limit, stop)


def _type_matches(order: BrokerOrder, order_type: OrderType | None) -> bool:
    return order_type is None or order.order_type.strip().upper() == order_type.value


def match_submission(
    orders: Iterable[BrokerOrder], key: SubmissionKey, *, placed_after: datetime
) -> FindResult:
    """The order `key.order_ref` names, else the unique look-alike (see the module docstring).

    `placed_after` is compared with the bridge's clock: pass the attempt time minus an allowance
    for clock skew. An order without `created_at` cannot be shown to be recent and is skipped.
    """
    parents = [o for o in orders if o.parent_id is None]
    by_ref = [o for o in parents if key.order_ref and o.order_ref == key.order_ref]
    if by_ref:
        return _result(by_ref, "order_ref")
    symbol = key.symbol.strip().upper()
    lookalikes = [
        o
        for o in parents
        if (not o.order_ref or o.order_ref in BRIDGE_STAMPED_REFS)
        and o.symbol.strip().upper() == symbol
        and o.action is key.action
        and o.quantity == key.quantity
        and _type_matches(o, key.order_type)
        and _price_matches(o, key.order_type, key.price)
        and o.created_at is not None
        and o.created_at >= placed_after
    ]
    return _result(lookalikes, "fallback")


def match_order(
    orders: Iterable[BrokerOrder],
    order_ref: str,
    *,
    symbol: str,
    action: Action,
    quantity: int,
    price: Decimal | None,
    placed_after: datetime,
    order_type: OrderType | None = None,
) -> FindResult:
    """`match_submission` with the key given field by field (the executor's original call)."""
    key = SubmissionKey(order_ref, symbol, action, quantity, order_type, price)
    return match_submission(orders, key, placed_after=placed_after)


def _result(matches: list[BrokerOrder], how: Literal["order_ref", "fallback"]) -> FindResult:
    ids = tuple(o.order_id for o in matches)
    if len(matches) == 1 and matches[0].order_id != 0:
        return FindResult(found=matches[0], matched_by=how, candidate_ids=ids)
    return FindResult(found=None, ambiguous=bool(matches), candidate_ids=ids)


def children_of(orders: Iterable[BrokerOrder], parent_id: int) -> tuple[int, ...]:
    """The ids of the orders attached to `parent_id` (a bracket's take-profit and stop-loss)."""
    return tuple(o.order_id for o in orders if o.parent_id == parent_id and o.order_id != 0)
