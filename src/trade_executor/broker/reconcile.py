"""Finding the order an ambiguous POST may have placed (CONTRACT section 5), as a pure function."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from trade_executor.domain.models import Action, BrokerOrder

from .jsonnum import CENT

# The real bridge ignores the order_ref it is sent and stamps every entry order with this.
BRIDGE_STAMPED_REFS = frozenset({"manual-entry"})


@dataclass(frozen=True, slots=True)
class FindResult:
    """`found` is the one order that matched; `ambiguous` is True when several did."""

    found: BrokerOrder | None
    ambiguous: bool = False
    matched_by: Literal["order_ref", "fallback"] | None = None
    candidate_ids: tuple[int, ...] = ()


def _cents(price: Decimal | None) -> Decimal | None:
    return None if price is None else price.quantize(CENT)


def _price_matches(order: BrokerOrder, price: Decimal | None) -> bool:
    if price is None:  # a market order carries no price
        return order.limit_price is None and order.stop_price is None
    wanted = _cents(price)
    return wanted in (_cents(order.limit_price), _cents(order.stop_price))


def match_order(
    orders: Iterable[BrokerOrder],
    order_ref: str,
    *,
    symbol: str,
    action: Action,
    quantity: int,
    price: Decimal | None,
    placed_after: datetime,
) -> FindResult:
    """The order `order_ref` names, else the unique order that looks like it.

    Only top-level orders count (a bracket's children carry the parent's reference). The fallback
    considers orders without a reference of their own (none, or the bridge's stamp), for the same
    symbol, side, quantity and price, created at or after `placed_after` (an order without
    `created_at` cannot be shown to be recent and is skipped). Several matches are ambiguous: the
    caller must not guess.
    """
    parents = [o for o in orders if o.parent_id is None]
    by_ref = [o for o in parents if o.order_ref == order_ref]
    if by_ref:
        return _result(by_ref, "order_ref")
    lookalikes = [
        o
        for o in parents
        if (not o.order_ref or o.order_ref in BRIDGE_STAMPED_REFS)
        and o.symbol.upper() == symbol.upper()
        and o.action is action
        and o.quantity == quantity
        and _price_matches(o, price)
        and o.created_at is not None
        and o.created_at >= placed_after
    ]
    return _result(lookalikes, "fallback")


def _result(matches: list[BrokerOrder], how: Literal["order_ref", "fallback"]) -> FindResult:
    ids = tuple(o.order_id for o in matches)
    if len(matches) == 1:
        return FindResult(found=matches[0], matched_by=how, candidate_ids=ids)
    return FindResult(found=None, ambiguous=len(matches) > 1, candidate_ids=ids)
